// Package shop is the five services behind the ecommerce example's edge:
// orders, catalogue, payment, inventory and shipping, each a set of
// hexagonal components on a listener of its own with /livez, /readyz and
// /health.
//
// The order service takes PlaceOrder through a cqrs command bus that
// de-duplicates it by its Idempotency-Key, keeps the order aggregate in an
// eventsource store, and runs the order saga (reserve inventory, charge
// the payment as the pivot, create the shipment) over HTTP clients
// wrapped in circuit breaker and retry transports. An outbox relay
// publishes the order's events to the cqrs event bus, and a projection
// builds the read model that GET /orders/{id} serves through a cqrs
// query. The catalogue reads its products through a cache.Cache, with
// Redis as the second level when it is given.
//
// [Faults] scripts the failures the example shows: a declined payment
// (compensation), a flaky inventory (retries) and a shipping outage (the
// breaker opens).
package shop
