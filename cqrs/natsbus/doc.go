// Package natsbus is a [cqrs.EventBus] on NATS JetStream: events published
// by one service are stored in a stream and delivered, at least once, to
// durable consumer groups in others, so projections, process managers and
// integrations keep up with the event store without polling it.
//
// Use it when events must cross process boundaries and survive restarts of
// publishers and consumers alike; within one process, [cqrs.NewMemoryBus]
// does the same without a server.
//
// # Use
//
// Connect with nats.go, build a bus on the JetStream context and create its
// stream once at start-up:
//
//	nc, err := nats.Connect("nats://nats:4222")
//	...
//	js, err := jetstream.New(nc)
//	...
//	bus, err := natsbus.New(js,
//		natsbus.WithStream("ORDERS"), natsbus.WithSubjectPrefix("orders."))
//	...
//	err = bus.Setup(ctx) // idempotent: every instance may call it
//
//	err = bus.Publish(ctx, "placed",
//		cqrs.Message{ID: eventID, Type: "order.placed.v1", Data: body})
//
//	sub, err := bus.Subscribe(ctx, "placed", "billing", handle,
//		cqrs.WithMaxDeliver(10),
//		cqrs.WithDeadLetter(park))
//	...
//	defer sub.Close() // before nc.Close
//
// A dead-letter function may park a message on a topic of its own, as it
// is, for inspection and replay:
//
//	park := func(ctx context.Context, m cqrs.Message, err error) {
//		if err := bus.Publish(ctx, "placed-parked", m); err != nil {
//			log.Printf("parking %s: %v", m.ID, err)
//		}
//	}
//
// # Set-up
//
// A bus owns one stream ([WithStream], default "CQRS") capturing the
// subjects under its prefix ([WithSubjectPrefix], default "cqrs."): topic t
// is subject prefix+t, so topics must be valid subject tokens (dots make
// levels; no wildcards or spaces). [Bus.Setup] creates the stream, or adds
// the bus's subjects and duplicate window to an existing one, keeping its
// other settings so that operators can set retention, limits and replicas
// with the NATS tools. Each group of a topic is a durable pull consumer,
// named by [ConsumerName] and created (or updated) by [Bus.Subscribe].
// Removing a group is an operator's job: delete its consumer.
//
// # Upgrading: consumer names
//
// Earlier versions named a group's consumer group+"-"+topic whenever that
// was a valid name, so that the groups "billing-eu" of "orders" and
// "billing" of "eu-orders" shared one consumer and stole each other's
// messages. [ConsumerName] now keeps that name only for groups without
// '-', and gives the others a hashed one. On its first Subscribe, such a
// group's new consumer starts after the last message that its old
// consumer acknowledged in order (when the old consumer's description and
// filter say it was last this group's and topic's) or else with the
// oldest message in the stream. Members of the old and new versions
// running at once each get every message, as two groups would; handlers
// idempotent on [cqrs.Message.ID] make that harmless. Once no member of
// the old version runs, delete the old consumer (nats consumer rm STREAM
// OLD-NAME): the bus leaves it alone, and a stream with interest or
// work-queue retention keeps messages for it.
//
// # Delivery guarantees
//
//   - Publish returns once the stream stored every message. The stream
//     drops a message published again to the same topic with the same ID
//     within the duplicate window ([WithDuplicateWindow], default 2
//     minutes): retrying a publish is safe. Published to another topic, a
//     message is stored again, as on [cqrs.MemoryBus].
//   - Each message reaches each group at least once, and one member of the
//     group at a time. Handlers must be idempotent on [cqrs.Message.ID]: a
//     member that dies or loses its connection mid-message has it delivered
//     again, to any member, after AckWait ([WithAckWait], default 30s).
//     While a handler runs, the subscription extends AckWait for it.
//   - A subscription with Concurrency 1 handles its messages in stream
//     order; a failed message is delivered again after the subscription's
//     backoff, while the messages behind it go on, so redeliveries reorder.
//     Members of a group share messages, so order across members is not
//     kept.
//   - After its MaxDeliver-th delivery fails, a message goes to DeadLetter
//     and is terminated. The subscription, not the server, enforces the
//     limit, so a message is never dropped without reaching DeadLetter;
//     deliveries that never reached a handler (a crash, a subscription
//     closed while the message was buffered) count towards it.
//   - A subscription fetches up to [WithPrefetch] messages (default
//     [DefaultPrefetch], 500) ahead of its handlers. Their AckWait runs
//     while they wait, so keep prefetch times a handler's duration well
//     under AckWait.
//   - [cqrs.Subscription.Close] stops fetching, waits for running handlers
//     and hands the messages it holds back to the group about a second
//     after (they reach another member then, not after AckWait); every
//     message is settled before it returns, so Close can take a second.
//
// # Message format
//
// A message is stored with its Data as payload and the rest in headers,
// so that the NATS tools show it and other clients can read it:
//
//   - Nats-Msg-Id: the subject, a space and the escaped ID; the stream
//     de-duplicates on it.
//   - Cqrs-Id, Cqrs-Type and Cqrs-Key (when not empty): the escaped ID,
//     Type and Key. Escaping writes '%',
//     bytes that are not printable ASCII and a space at either end as %XX,
//     so IDs and type names as usually made travel as they are.
//   - A header per metadata entry whose key is a token (RFC 9110) starting
//     neither with Nats- nor Cqrs-, and whose value is printable ASCII
//     with no space at either end: trace context, correlation IDs.
//   - Cqrs-Metadata: the other entries, as a URL query string (keys
//     sorted, keys and values percent-encoded), since headers lose
//     padding and line breaks and hold ASCII only.
//
// So every ID, type and metadata entry reaches handlers exactly as it
// was published. A message that reaches the stream without an ID (from a
// plain NATS publisher without Nats-Msg-Id, or with headers the client
// cannot decode, which leaves it no headers at all) is handled with the ID
// "nats:" + stream + ":" + its stream sequence, the same on every
// delivery, and counted in natsbus.unidentified_messages. A message
// without Cqrs-Id (from another publisher) has its Nats-Msg-Id as ID.
//
// # Upgrading: message IDs
//
// Earlier versions set Nats-Msg-Id to the message ID alone and dropped a
// message published to a second topic with an ID already used: a
// dead-letter function parking a message elsewhere stored nothing. A
// publish retried across the upgrade, within the duplicate window, is
// therefore stored twice. Messages stored by earlier versions are read as
// before (their Nats-Msg-Id is their ID), except that a '%' followed by two
// hexadecimal digits in their Cqrs-Type is now read as an escape.
//
// # Telemetry
//
// Spans and metrics come from the tracer and meter named [ScopeName] of
// the [WithTracerProvider] and [WithMeterProvider] providers (the global
// ones by default) and follow the messaging semantic conventions of
// OpenTelemetry v1.40. messaging.system is "nats" ([System]), which those
// do not define; messaging.destination.name is the subject (prefix and
// topic), and so is {subject} in span names; server.address and
// server.port are those of the server the connection is connected to.
// Trace context travels in message headers through the global propagator
// (otel.GetTextMapPropagator).
//
// Spans:
//
//   - publish {subject} (producer): one message published, with
//     messaging.system, messaging.operation.name "publish",
//     messaging.operation.type "send", messaging.destination.name,
//     messaging.message.id, server.address and server.port; event
//     duplicate when the stream dropped the message as one it has. Its
//     context becomes the message's creation context, unless the message
//     carries one of its own in its Metadata (an event from the
//     [cqrs.Relay] does; see [buskit.CreationContext]): the span then
//     links to that one and is a client span, not a producer one.
//   - process {subject} (consumer): the handling of a delivery, with
//     messaging.system, messaging.operation.name and
//     messaging.operation.type "process", messaging.destination.name,
//     messaging.consumer.group.name,
//     messaging.destination.subscription.name (the consumer, see
//     [ConsumerName]), messaging.message.id, cqrs.delivery,
//     server.address and server.port. It is a child of the message's
//     creation context and links to it. An event says how the delivery
//     was settled: ack; nak (delivered again after the backoff; Close
//     sends it for a delivery that failed while the subscription closed);
//     or term (after DeadLetter), with error.type if that failed. Close
//     also naks, with no span, the messages it held that no handler got.
//
// A failed publish, a handler's error (or panic, as a [PanicError], whose
// error.type is "natsbus.panic") and a failed ack set the span's status
// to Error and its error.type. With [WithOptInAttributes], both spans
// also carry messaging.message.body.size.
//
// Metrics:
//
//   - messaging.client.operation.duration (histogram, s): a publication
//     (messaging.operation.name "publish", messaging.operation.type
//     "send"), until the stream stored it, or a settlement (ack, nak or
//     term; type "settle"), by messaging.system,
//     messaging.destination.name and, for a settlement,
//     messaging.consumer.group.name and
//     messaging.destination.subscription.name; error.type on failure.
//   - messaging.client.sent.messages (counter, {message}): messages
//     published, duplicates the stream dropped included, by
//     messaging.system, messaging.operation.name "publish" and
//     messaging.destination.name; error.type on failure.
//   - messaging.client.consumed.messages (counter, {message}): deliveries
//     to a handler, by messaging.system, messaging.operation.name
//     "process", messaging.destination.name,
//     messaging.consumer.group.name and
//     messaging.destination.subscription.name.
//   - messaging.process.duration (histogram, s): a delivery from its start
//     to its settlement, with the attributes of
//     messaging.client.consumed.messages and error.type when the handler
//     failed.
//   - cqrs.redeliveries (counter, {message}): deliveries of a message to
//     its group after its first (Delivery above 1), counted when they
//     start, as on [cqrs.MemoryBus]: after a failure, and here also after
//     a subscription closed holding the message or its process died; by
//     messaging.system, messaging.destination.name and
//     messaging.consumer.group.name only.
//   - cqrs.dead_letters (counter, {message}): messages given to
//     DeadLetter, by the attributes of cqrs.redeliveries.
//   - natsbus.unidentified_messages (counter, {message}): deliveries of
//     messages that carried no ID, handled with one derived from their
//     stream sequence (see "Message format"), by the attributes of
//     cqrs.redeliveries.
//
// The messaging.* metrics carry server.address and server.port too, and
// their duration histograms have the bucket boundaries the semantic
// conventions advise, from 5ms to 10s.
//
// Attribute sets are built once: a subscription builds its own, and a bus
// keeps those of the first [MaxTopicTelemetry] (256) topics it publishes
// to. Beyond them, a publish builds the sets of its topic each time, at
// the cost of a few allocations, and the series of those topics are
// bounded by the SDK's cardinality limit only (2,000 per instrument by
// default, then one overflow series). The bus looks at the server its
// connection is connected to at most once a second, and builds the sets
// again when it changed.
package natsbus
