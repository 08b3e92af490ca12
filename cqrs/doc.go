// Package cqrs separates the commands that change a system from the queries
// that read it, and carries the events between them.
//
// A [Bus] dispatches commands and queries to the one handler registered
// for their type, through middleware ([Validation], [Logging],
// [Retrying]):
//
//	bus := cqrs.NewBus()
//	err := bus.Use(cqrs.Validation(), cqrs.Retrying(retry.New()))
//	// accounts.Withdraw: func(ctx, Withdraw) error
//	err = cqrs.HandleCommand(bus, accounts.Withdraw)
//	// balances.Get: func(ctx, GetBalance) (Money, error)
//	err = cqrs.HandleQuery(bus, balances.Get)
//	err = bus.Dispatch(ctx, Withdraw{Account: "acc-1", Amount: 30})
//	b, err := cqrs.Ask[GetBalance, Money](ctx, bus, GetBalance{"acc-1"})
//
// # From a command to a read model
//
// A command changes an aggregate, which the event store keeps as events
// (package eventsource). The [Relay] publishes the committed events to an
// [EventBus], whose consumer groups update read models and call other
// services; or a [Runner] feeds the events straight from the store to
// projections ([Projection]). Queries read the read models.
//
//	Dispatch(cmd)
//	     |
//	     v
//	+---------+  load, decide  +-----------+   Append    +-------------+
//	|   Bus   | -------------> | aggregate | ----------> | event store |
//	+---------+  (handler)     +-----------+   (events)  +-------------+
//	                                                       |        |
//	                            Subscribe(from checkpoint) |        |
//	                         +-----------------------------+        |
//	                         v                                      v
//	                   +-----------+  Publish  +----------+  +----------+
//	                   |   Relay   | --------> | EventBus |  |  Runner  |
//	                   | (outbox)  |           +----------+  +----------+
//	                   +-----------+                |              |
//	                                     Subscribe  |              | Handle
//	                                 (consumer group)              |
//	                                                v              v
//	                                        +--------------------------+
//	Ask(query) --> Bus --> query handler -->|  projection / read model |
//	                                        +--------------------------+
//
// Each of the Relay and the Runner keeps its place in a [CheckpointStore]
// ([MemoryCheckpoints] here,
// [github.com/otelpatterns/patterns/cqrs/pgcheckpoint] in PostgreSQL,
// which can also commit a read model and its checkpoint together). The
// package example runs the whole flow in memory.
//
// # Commands that arrive twice
//
// A sender that times out sends its command again, and a message broker
// redelivers. [Deduplication] makes such a command take effect once: a
// command that is [Identified] (or dispatched with
// [eventsource.WithCommandID], the ID then qualified by the command's
// type) has its ID recorded by the event store in the transaction that
// appends its events, and a second copy appends nothing and succeeds.
// Given the store as command log, the middleware also skips the handler of
// a command that has taken effect in the stream it names ([Targeted]), so
// that the copy is not decided again on the state the first one changed:
//
//	err := bus.Use(cqrs.Retrying(retry.New()), cqrs.Deduplication(store))
//
// The record is per (command, stream): a command that appends to several
// streams is not made atomic by it; coordinate those with a saga. Queries
// are left alone, and a command dispatched from a handler is a command of
// its own.
//
// # Events between processes
//
// An [EventBus] carries messages to named, durable consumer groups, at
// least once, redelivering failures with backoff up to a limit and then
// handing them to a dead-letter function. The in-memory [MemoryBus] is
// here; [github.com/otelpatterns/patterns/cqrs/natsbus] runs on NATS
// JetStream. Writing a bus of your own:
// [github.com/otelpatterns/patterns/cqrs/buskit] holds the helpers the
// buses share, and [github.com/otelpatterns/patterns/cqrs/bustest] the
// conformance tests every bus passes.
//
// The [Relay] is the transactional outbox: it reads the event store's
// global order from a checkpoint and publishes every committed event, so
// that nothing is published that was not committed and nothing committed
// is lost; an event that the bus can never carry stops it, unless a
// dead-letter function takes it ([WithRelayDeadLetter]). The [Runner]
// feeds events to projections, each from its own checkpoint, and rebuilds
// them from the start on request.
//
// # Bad input
//
// Invalid arguments are errors that name them, never panics: a nil
// middleware ([Bus.Use]), a nil bus or handler ([HandleCommand],
// [HandleQuery], [Bus.Dispatch], [Ask]), nil or empty arguments and bad
// options of [NewRelay], [NewRunner] and Subscribe. A nil option is an
// error of NewRelay and NewRunner ("opts[i] is nil"); [NewBus] and
// [NewMemoryBus], which return no error, and Subscribe ignore it. The
// zero [Bus] and [MemoryBus] are ready to use.
//
// # One trace per business operation
//
// The event store records the trace context of each append in the event.
// The relay publishes the event in that context, and the message keeps it
// as its creation context: the publish span continues it and links to it.
// Buses carry the creation context in message headers, and the span that
// processes a message is its child and links to it; projections link to
// it. A command, the events it appends, their publication and their
// processing elsewhere therefore form one trace.
//
// # Telemetry
//
// Spans and metrics come from the tracer and meter named [ScopeName] of
// the [WithTracerProvider] and [WithMeterProvider] providers (the global
// ones by default), and follow the semantic conventions of OpenTelemetry
// v1.40 where these have a convention.
//
// Spans:
//
//   - cqrs.command and cqrs.query (internal): a [Bus] handling a command
//     or query, with cqrs.command.type or cqrs.query.type (the Go type);
//     cqrs.command.duplicate=true on a command that [Deduplication] found
//     handled already. A bus whose tracer can only make non-recording
//     spans (a no-op provider, or the global one before a provider is
//     set) starts none under a caller's span that is not recording
//     either: the handler's ctx carries the caller's span context as it
//     would, and a dispatch allocates nothing of its own.
//   - publish {destination} (producer): a [MemoryBus] publication, with
//     messaging.system "memory", messaging.operation.name "publish",
//     messaging.operation.type "send", messaging.destination.name (the
//     topic, which {destination} is), and messaging.message.id for one
//     message with an ID or messaging.batch.message_count for several.
//     It links to the creation context a message carries of its own in
//     its Metadata (an event from the [Relay] does), and is a
//     client span, not a producer one, when every message carries one:
//     its context is then none's.
//   - process {destination} (consumer): the handling of a delivery, with
//     messaging.system, messaging.operation.name and
//     messaging.operation.type "process", messaging.destination.name,
//     messaging.consumer.group.name, cqrs.delivery ([Message.Delivery])
//     and, for a message with an ID, messaging.message.id. It is a child
//     of the message's creation context and links to it. An event says
//     how the delivery was settled: ack (handled, removed), nak (failed,
//     delivered again after the backoff) or term (failed for the last
//     time: given to DeadLetter and removed).
//   - project {name} (internal): an event handled by a projection that a
//     [Runner] runs, with cqrs.projection and eventsource.position, linked
//     to the context of the append that recorded the event.
//
// A failure sets the span's status to Error and its error.type. With
// [WithOptInAttributes], publish spans of one message and process spans
// carry messaging.message.body.size (the length of [Message.Data]) too.
//
// Metrics:
//
//   - cqrs.handled (counter, {message}): commands and queries handled, by
//     cqrs.command.type or cqrs.query.type and cqrs.outcome (success or
//     failure), with error.type on failures.
//   - cqrs.handle.duration (histogram, s): the duration of the handling,
//     with the attributes of cqrs.handled.
//   - messaging.client.operation.duration (histogram, s): the duration of
//     a publication (messaging.operation.name "publish",
//     messaging.operation.type "send") or a settlement (ack, nak or
//     term; type "settle"), by messaging.system,
//     messaging.destination.name and, for a settlement,
//     messaging.consumer.group.name; error.type when it failed.
//   - messaging.client.sent.messages (counter, {message}): messages
//     published, by messaging.system, messaging.operation.name
//     "publish" and messaging.destination.name; error.type when the
//     publication failed.
//   - messaging.client.consumed.messages (counter, {message}): deliveries
//     to a handler, by messaging.system, messaging.operation.name
//     "process", messaging.destination.name and
//     messaging.consumer.group.name.
//   - messaging.process.duration (histogram, s): the duration of a
//     delivery, from its start to its settlement, with the attributes of
//     messaging.client.consumed.messages, and error.type when the handler
//     failed.
//   - cqrs.redeliveries (counter, {message}): deliveries of a message to
//     its consumer group after its first (those whose [Message.Delivery]
//     is above 1), counted when they start, by messaging.system,
//     messaging.destination.name and messaging.consumer.group.name. On a
//     [MemoryBus] only a failed delivery leads to one;
//     [github.com/otelpatterns/patterns/cqrs/natsbus]
//     counts the same, and there a message a subscription held when it
//     closed or its process died comes again too.
//   - cqrs.dead_letters (counter, {message}): messages given to the
//     DeadLetter function of their subscription, by the attributes of
//     cqrs.redeliveries.
//   - cqrs.relay.dead_letters (counter, {event}): events a [Relay] moved
//     past without publishing them, because the bus could never carry
//     them and its dead-letter function took them
//     ([WithRelayDeadLetter]), by cqrs.relay (the relay's name) and
//     error.type (the publish error's).
//   - cqrs.projection.lag (gauge, {event}): for each projection a [Runner]
//     runs, by cqrs.projection, how many committed events it has not
//     handled yet: counted by the store when it is an
//     [eventsource.EventCounter] (pgstore, whose positions are sparse),
//     up to 100,000, else the store's head minus the projection's
//     checkpoint. It needs a store that is an [eventsource.HeadReader].
//
// The duration histograms have the bucket boundaries the semantic
// conventions advise for messaging, from 5ms to 10s.
// [github.com/otelpatterns/patterns/cqrs/natsbus] records
// the same messaging metrics, cqrs.redeliveries and cqrs.dead_letters,
// with messaging.system "nats", the NATS subject as
// messaging.destination.name, and the attributes of its server.
//
// error.type is the value of the error's ErrorType method where it has
// one ("cqrs.bus_closed" for [ErrBusClosed], "cqrs.invalid_message" for
// [ErrInvalidMessage]; a handler's error may have one),
// "context.DeadlineExceeded" or "context.Canceled", the canonical name of
// an exported error type in its chain (such as "net.OpError"), or else
// "_OTHER".
//
// A [MemoryBus] keeps the attributes of each topic and consumer group it
// has seen, built once, for as long as it lives, as it keeps the topics.
package cqrs
