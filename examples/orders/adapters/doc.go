// Package adapters holds the order system's adapters, a package each:
// httpapi drives the application (an HTTP API); eventstore, payment and
// memory are driven by it, implementing the ports.
package adapters
