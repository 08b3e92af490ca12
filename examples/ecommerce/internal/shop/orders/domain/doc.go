// Package domain is the ecommerce order: its lines, its status and the
// facts (events) that move it from placed to completed, rejected or
// compensated. It imports nothing of the infrastructure; the event store
// adapter wraps it in an aggregate, as examples/orders does.
package domain
