// Package appsvc is the bank example's application services: the use
// cases (open an account, deposit, withdraw, transfer between two
// accounts) that load accounts through a port, run the domain's rules and
// save what they raised.
//
// Dependencies point inwards: this package uses the domain model (package
// model) and the domain service (package domainsvc), and defines the port
// it needs from the outer ring, [AccountRepository], which the
// infrastructure (package infra) implements. It imports no store, driver
// or telemetry: main wires an implementation in, and wraps the calls in
// spans.
package appsvc
