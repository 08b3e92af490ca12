// Package infra is the outer ring of the bank example's onion: the
// event store the accounts live in (eventsource.MemoryStore, or
// eventsource/pgstore on PostgreSQL), the repository that implements the
// application's port (appsvc.AccountRepository) on it, the registry of
// the stored event types with the upcaster of an old one, and the
// projection that keeps the balances as a read model.
//
// It depends on the inner layers, never the other way round: the
// application defines the port and its errors, and this package adapts
// the store's errors to them.
package infra
