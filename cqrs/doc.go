// Package cqrs separates the commands that change a system from the queries
// that read it, and carries the events between them.
//
// A [Bus] dispatches commands and queries to the one handler registered
// for their type, through middleware ([Validation], [Logging],
// [Retrying]):
//
//	bus := cqrs.NewBus()
//	bus.Use(cqrs.Validation(), cqrs.Retrying(retry.New()))
//	cqrs.HandleCommand(bus, accounts.Withdraw)     // func(ctx, Withdraw) error
//	cqrs.HandleQuery(bus, balances.Get)            // func(ctx, GetBalance) (Money, error)
//	err := bus.Dispatch(ctx, Withdraw{Account: "acc-1", Amount: 30})
//	b, err := cqrs.Ask[GetBalance, Money](ctx, bus, GetBalance{"acc-1"})
//
// # Commands that arrive twice
//
// A sender that times out sends its command again, and a message broker
// redelivers. [Deduplication] makes such a command take effect once: a
// command that is [Identified] (or dispatched with
// eventsource.WithCommandID) has its ID recorded by the event store in
// the transaction that appends its events, and a second copy appends
// nothing and succeeds. Given the store as command log, the middleware
// also skips the handler of a command that has taken effect, so that the
// copy is not decided again on the state the first one changed:
//
//	bus.Use(cqrs.Retrying(retry.New()), cqrs.Deduplication(store))
//
// The record is per (command, stream): a command that appends to several
// streams is not made atomic by it; coordinate those with a saga.
//
// # Events between processes
//
// An [EventBus] carries messages to named, durable consumer groups, at
// least once, redelivering failures with backoff up to a limit and then
// handing them to a dead-letter function. The in-memory [MemoryBus] is
// here; cqrs/natsbus runs on NATS JetStream. The conformance tests every
// bus passes are in cqrs/bustest.
//
// The [Relay] is the transactional outbox: it reads the event store's
// global order from a checkpoint and publishes every committed event, so
// that nothing is published that was not committed and nothing committed
// is lost. The [Runner] feeds events to [Projection]s, each from its own
// checkpoint, and rebuilds them from the start on request.
//
// # One trace per business operation
//
// The event store records the trace context of each append in the event;
// the relay publishes in that context; buses carry it in message headers
// and continue it when processing; projections link to it. A command, the
// events it appends, their publication and their processing elsewhere
// therefore form one trace.
//
// # Telemetry
//
// Metrics, from the meter named [ScopeName]:
//
//	| name                     | kind      | unit      | attributes                                                                  |
//	|--------------------------|-----------|-----------|-----------------------------------------------------------------------------|
//	| cqrs.handled             | counter   | {message} | cqrs.command.type or cqrs.query.type, cqrs.outcome                          |
//	| cqrs.handle.duration     | histogram | s         | cqrs.command.type or cqrs.query.type, cqrs.outcome                          |
//	| cqrs.messages.published  | counter   | {message} | messaging.system, messaging.destination.name                                |
//	| cqrs.messages.processed  | counter   | {message} | messaging.system, messaging.destination.name, messaging.consumer.group.name, cqrs.outcome |
//	| cqrs.redeliveries        | counter   | {message} | messaging.system, messaging.destination.name, messaging.consumer.group.name |
//	| cqrs.dead_letters        | counter   | {message} | messaging.system, messaging.destination.name, messaging.consumer.group.name |
//	| cqrs.projection.lag      | gauge     | {event}   | cqrs.projection                                                             |
//
// cqrs.projection.lag is observed at each collection for every projection a
// [Runner] runs: the store's last position minus the projection's
// checkpoint. It needs a store that is an [eventsource.HeadReader].
//
// messaging.system is "memory" for [MemoryBus] and "nats" for cqrs/natsbus,
// whose destination is the NATS subject.
//
// Spans: cqrs.command and cqrs.query (attribute cqrs.command.type or
// cqrs.query.type) around each handling, with cqrs.command.duplicate=true
// on a command that [Deduplication] found handled already; "publish <topic>" (producer) and
// "process <topic>" (consumer) in the buses, with messaging.system,
// messaging.destination.name and messaging.message.id; "project <name>"
// per event handled by a projection, linked to the append.
package cqrs
