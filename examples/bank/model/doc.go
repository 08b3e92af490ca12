// Package model is the core of the bank example's onion: the Account
// aggregate, the Money value object, the events an account raises and the
// rules a single account enforces.
//
// It depends on nothing but the standard library and
// [github.com/otelpatterns/patterns/eventsource], whose Base and Raise are
// the aggregate's modelling kit (no I/O: the stores live in the outer
// ring). It knows nothing of telemetry, storage or transports; the
// dependency-rule test (examples/bank/arch_test.go) keeps it so.
//
// Its errors are domain errors: each has a DomainKind method, which
// package hexagonal reads (without this package importing it) to count
// them as the caller's mistakes rather than failures.
package model
