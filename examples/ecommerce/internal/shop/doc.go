// Package shop is the five services behind the ecommerce example's edge:
// orders, catalogue, payment, inventory and shipping. Each listens on a
// port of its own and serves /livez, /readyz and /health (a
// hexagonal.Health per service); [New] binds the listeners and
// [Shop.Components] returns the hexagonal components to run, in start
// order. [Config.Only] runs one service alone, the others reached at
// their [Config.Remote] URLs, so that one binary deploys as five
// processes.
//
// # The order service
//
// It is hexagonal (orders/domain, orders/ports, orders/app,
// orders/adapters, with the dependency rule checked by archtest):
//
//	POST /orders --> cqrs.Bus (Validation, Deduplication) --> app.Place
//	                   |  prices the lines (catalogue), appends OrderPlaced
//	                   v
//	             event store --> outbox relay --> event bus, topic "orders"
//	                                                 |             |
//	                                   group order-saga      group order-views
//	                                   starts the saga       projects the read model
//	                                                 |             |
//	          open -> reserve -> charge (pivot) -> ship     GET /orders/{id}
//	                                                        (cqrs query)
//
// PlaceOrder is identified by the request's Idempotency-Key (and the
// customer), which also derives the order's ID: a request sent twice is
// answered with the same ID and places one order, cqrs.Deduplication
// finding the command recorded by the event store in the transaction of
// its append. The saga is started by the consumer of OrderPlaced with the
// order's ID as its own, so a redelivery starts nothing.
//
// The saga's steps call the other services over HTTP through a retry
// transport around a circuit breaker per service (see
// adapters.NewClients), and record each outcome on the order:
//
//   - reserve: POST {inventory}/reservations; compensated by DELETE
//     /reservations/{order_id}. A shortage (409) is a refusal.
//   - charge, the pivot: POST {payment}/charges with the step's
//     idempotency key. A decline (402) is a refusal; the refund (POST
//     /refunds) only compensates a charge whose outcome is unknown.
//   - ship, retriable: POST {shipping}/shipments, retried until shipping
//     answers (about a minute and a half by default), waiting out its
//     breaker; then the order needs attention.
//
// A refusal is recorded as the order's reason and compensates at once;
// the compensation of the first step, "open", marks the order
// compensated, whichever step failed. So an order ends completed,
// compensated (reason set) or needs_attention, through pending, reserved,
// paid (and rejected, between a refusal and its compensation). The read
// model keeps the latest status of an order by rank, so events delivered
// twice or out of order leave it right.
//
// # Faults
//
// [Faults] script the failures of the example:
//
//   - [Faults.DeclineCustomer]: payment answers 402; the saga releases
//     the stock and the order ends compensated.
//   - [Faults.FlakyInventory]: the next n inventory calls answer 503; the
//     retry transport sends them again and the order completes.
//   - [Faults.ShippingDown]: shipping answers 503; the breaker on it
//     opens after 5 failures in a row, the order stays paid (the charge is
//     the pivot) while the ship step waits out the breaker, and completes
//     once shipping is back.
//
// # Backends
//
// By default everything is in memory: eventsource.MemoryStore,
// saga.MemoryLog, cqrs.MemoryCheckpoints, cqrs.MemoryBus, an in-memory
// read model and an L1-only catalogue cache. [Backends.Postgres] puts the
// event store (pgstore), the saga log (pglog), the relay's checkpoint
// (pgcheckpoint, when the bus is JetStream: with the in-memory bus, which
// loses what it holds at a restart, the relay publishes the store again
// at each start) and the read model (table order_views) in
// [Backends.Schema]; [Backends.NATS] carries the bus on JetStream (stream
// and subject prefix named from [Backends.StreamPrefix]);
// [Backends.Redis] is the catalogue cache's second level (keys prefixed
// with StreamPrefix). The payment, inventory and shipping services stand
// for third parties and keep their state in memory.
package shop
