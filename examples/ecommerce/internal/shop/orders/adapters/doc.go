// Package adapters holds the order service's adapters: the repository on
// an eventsource store (driven), the HTTP clients of the catalogue,
// inventory, payment and shipping services behind circuit breaker and
// retry transports (driven), the in-memory and PostgreSQL read models
// (driven), the projection's bus consumer and the HTTP API (driving).
package adapters
