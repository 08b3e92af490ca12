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
//	bus, err := natsbus.New(js, natsbus.WithStream("ORDERS"), natsbus.WithSubjectPrefix("orders."))
//	...
//	err = bus.Setup(ctx) // idempotent: every instance may call it
//
//	err = bus.Publish(ctx, "placed", cqrs.Message{ID: eventID, Type: "order.placed.v1", Data: body})
//
//	sub, err := bus.Subscribe(ctx, "placed", "billing", handle,
//		cqrs.WithMaxDeliver(10),
//		cqrs.WithDeadLetter(parkForInspection))
//	...
//	defer sub.Close() // before nc.Close
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
// # Delivery guarantees
//
//   - Publish returns once the stream stored every message. Each carries
//     its ID as Nats-Msg-Id, so the stream drops a message published again
//     with the same ID within the duplicate window ([WithDuplicateWindow],
//     default 2 minutes): retrying a publish is safe.
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
// # Telemetry
//
// Spans continue the publisher's trace through the global propagator
// (otel.GetTextMapPropagator): Publish injects the context of its publish
// span into the message's headers, and the process span is a child of it.
//
//	Span                 Kind      Attributes
//	publish <topic>      producer  messaging.system "nats", messaging.operation.type "send",
//	                               messaging.operation.name "publish", messaging.destination.name
//	                               (the subject), messaging.message.id, messaging.message.body.size;
//	                               event "duplicate" when the stream dropped the message
//	process <topic>      consumer  messaging.system, messaging.operation.type "process",
//	                               messaging.operation.name "process", messaging.destination.name,
//	                               messaging.consumer.group.name, messaging.destination.subscription.name
//	                               (the consumer), messaging.message.id, messaging.message.body.size,
//	                               cqrs.delivery; event "dead_letter"
//
// A failed publish, a handler's error (or panic, as a [PanicError]) and a
// failed acknowledgement set the span's status to Error with error.type.
//
//	Metric                   Unit       Attributes
//	cqrs.messages.published  {message}  messaging.system, messaging.destination.name
//	                                    (stored, not counting duplicates dropped)
//	cqrs.messages.processed  {message}  messaging.system, messaging.destination.name,
//	                                    messaging.consumer.group.name, cqrs.outcome (success|failure)
//	cqrs.redeliveries        {message}  messaging.system, messaging.destination.name,
//	                                    messaging.consumer.group.name (deliveries after the first)
//	cqrs.dead_letters        {message}  messaging.system, messaging.destination.name,
//	                                    messaging.consumer.group.name
//
// The semantic conventions define no messaging.system value for NATS; the
// bus uses "nats". Providers default to the global ones; set them with
// [WithTracerProvider] and [WithMeterProvider].
package natsbus
