// Package kafkabus is a [cqrs.EventBus] on Kafka, through franz-go: events
// published by one service are stored in Kafka topics and delivered, at
// least once, to consumer groups in others, so projections, process
// managers and integrations keep up with the event store (PostgreSQL event
// store → outbox relay → Kafka → read models) on the broker a team runs
// already.
//
// Use it where Kafka is the platform; package
// [github.com/otelpatterns/patterns/cqrs/natsbus] does the same on NATS
// JetStream, and [cqrs.NewMemoryBus] within one process.
//
// # Use
//
// Build a bus on the seed brokers, create its topics once at start-up,
// publish and subscribe:
//
//	bus, err := kafkabus.New([]string{"kafka-1:9092", "kafka-2:9092"},
//		kafkabus.WithTopicPrefix("orders."),
//		kafkabus.WithClientOptions(kgo.DialTLSConfig(tlsCfg)))
//	...
//	defer bus.Close() // after the subscriptions
//	err = bus.Setup(ctx, "placed", "placed-parked") // idempotent
//
//	err = bus.Publish(ctx, "placed", cqrs.Message{ID: eventID,
//		Type: "order.placed.v1", Key: orderID, Data: body})
//
//	sub, err := bus.Subscribe(ctx, "placed", "billing", handle,
//		cqrs.WithMaxDeliver(10),
//		cqrs.WithDeadLetter(bus.DeadLetterTo("placed-parked")))
//	...
//	defer sub.Close()
//
// # Set-up
//
// Bus topic t is the Kafka topic prefix+t ([WithTopicPrefix], default
// "cqrs."). [Bus.Setup] creates the Kafka topics of the topics it is given
// with kadm, with [WithPartitions] partitions (default 6),
// [WithReplicationFactor] (default the brokers') and [WithTopicConfig]
// entries, and leaves existing topics alone: it is idempotent, and
// partitions, retention and replicas of existing topics stay the
// operators'. [WithAutoSetup] has the bus call it on a topic's first use,
// for tests and development. Each consumer group of the bus is a Kafka
// consumer group of that name; delete a group with the Kafka tools.
//
// # Delivery guarantees
//
//   - Publish returns once the brokers acknowledged every record with
//     acks=all, through franz-go's idempotent producer (its retries do not
//     duplicate records). A caller retrying a failed publish may store a
//     message twice: handlers de-duplicate on [cqrs.Message.ID].
//   - Records are keyed by [WithKey] (default: the message's Key, which
//     the [cqrs.Relay] sets to the event's stream ID, else the topic), so
//     one aggregate's events stay in order on one partition. Messages
//     without a key share one partition per topic and keep their order, as
//     on the other buses, without parallelism.
//   - Members of a group share the partitions (cooperative-sticky
//     balancing). A subscription handles each partition in order, on a
//     goroutine of its own, at most [cqrs.WithConcurrency] handlers at once
//     across partitions. A failed record is delivered again after its
//     backoff and holds up its partition only: other partitions go on.
//     After MaxDeliver failed deliveries it goes to the dead-letter
//     function ([Bus.DeadLetterTo] parks it on a topic) and is passed.
//   - Offsets are marked only once a record's handler succeeded or its
//     record was dead-lettered (within a tenth of the commit interval),
//     and committed every [WithCommitInterval] (default 1s), when a
//     rebalance revokes partitions (after their running handlers return,
//     all they handled marked) and on Close. A rebalance or a Close
//     replays nothing handled; a crash replays at most what was handled
//     since the last commit. When franz-go detects that a partition's
//     leader lost records at a point it cannot locate (an unclean leader
//     election) it reports a kgo.ErrDataLoss, which the bus hands to
//     otel.Handle, and resumes by its ConsumeResetOffset: the bus keeps
//     franz-go's default, a rewind to the minute before the last record
//     consumed (set another through [WithClientOptions]). Delivery
//     counts live in the member: a record moved to another member
//     mid-retry starts again from Delivery 1.
//
// A real cluster is what the bus was meant to be released against: with
// PATTERNS_KAFKA_BROKERS set (seed brokers, comma-separated) the package's
// tests run on that cluster; without it they run on kfake clusters in the
// process, also under PATTERNS_REQUIRE_INTEGRATION=1, since CI has no
// Kafka. Run them against a real cluster before a release.
//
// # Message format
//
// A message is one record: Data is its value, the key is [WithKey]'s,
// and the rest are headers, which Kafka keeps as bytes, so every ID, type,
// key and metadata entry reaches handlers exactly: cqrs-id (the ID),
// cqrs-type (the Type), cqrs-key (the Key, when not empty: the record key
// may be another, see [WithKey]), and one header per metadata entry under
// its key, or under "cqrs-md-" and its key for keys that start with
// "cqrs-". The trace
// context is a metadata entry like any other (traceparent, tracestate). A
// record without cqrs-id (from another producer) is handled with the ID
// "kafka:" + Kafka topic + ":" + partition + ":" + offset, its record key
// as Key, and counted in kafkabus.unidentified_messages.
//
// # Why not kotel
//
// franz-go ships kotel, hooks that trace and meter a client. They do not
// follow the conventions every bus of this module keeps, so the bus
// records its own telemetry: kotel's spans are per record as the client
// sees it (a produce span ends when the batch is acknowledged, a consume
// span when the record is polled), not around the handler, so retries,
// dead letters and the handler's error are invisible; its process span is
// left to the user and its link to the creation context too; it injects
// its own span's context into the record even when the message carries
// the creation context of its event (which the relay's messages do and
// [buskit.CreationContext] keeps); and its metrics are the client's
// (connects, bytes, requests), not the messaging semantic conventions'
// consumed and sent messages, process duration and the module's
// cqrs.redeliveries and cqrs.dead_letters. Add kotel through
// [WithClientOptions] (kgo.WithHooks) for the client-level view if wanted.
//
// # Telemetry
//
// Spans and metrics come from the tracer and meter named [ScopeName] of
// the [WithTracerProvider] and [WithMeterProvider] providers (the global
// ones by default) and follow the messaging semantic conventions of
// OpenTelemetry v1.40 for Kafka: messaging.system is "kafka";
// messaging.destination.name is the Kafka topic (prefix and topic), and
// so is {topic} in span names. Trace context travels in record headers
// through the global propagator (otel.GetTextMapPropagator).
//
// Spans:
//
//   - publish {topic} (producer): one message published, with
//     messaging.system, messaging.operation.name "publish",
//     messaging.operation.type "send", messaging.destination.name,
//     messaging.message.id, messaging.kafka.message.key and, once
//     acknowledged, messaging.destination.partition.id and
//     messaging.kafka.offset. Its context becomes the message's creation
//     context, unless the message carries one of its own in its Metadata
//     (an event from the [cqrs.Relay] does): the span then links to that
//     one and is a client span, not a producer one.
//   - process {topic} (consumer): a delivery to the handler, with
//     messaging.system, messaging.operation.name and
//     messaging.operation.type "process", messaging.destination.name,
//     messaging.consumer.group.name, messaging.destination.partition.id,
//     messaging.kafka.offset, messaging.kafka.message.key,
//     messaging.message.id and cqrs.delivery. It is a child of the
//     message's creation context and links to it; event dead_letter when
//     the message went to the dead-letter function after it.
//
// A failed publish and a handler's error (or panic, as a [PanicError],
// whose error.type is "kafkabus.panic") set the span's status to Error
// and its error.type. With [WithOptInAttributes], both spans also carry
// messaging.message.body.size.
//
// Metrics:
//
//   - messaging.client.operation.duration (histogram, s): a publication
//     (messaging.operation.name "publish", messaging.operation.type
//     "send"), until acknowledged, and a commit of a subscription's
//     marked offsets when a rebalance revokes partitions or it closes
//     (messaging.operation.name "commit", type "settle", with
//     messaging.consumer.group.name); by messaging.system and
//     messaging.destination.name; error.type on failure.
//   - messaging.client.sent.messages (counter, {message}): messages
//     published, by messaging.system, messaging.operation.name "publish"
//     and messaging.destination.name; error.type on failure.
//   - messaging.client.consumed.messages (counter, {message}): deliveries
//     to a handler, by messaging.system, messaging.operation.name
//     "process", messaging.destination.name,
//     messaging.consumer.group.name and messaging.destination.partition.id.
//   - messaging.process.duration (histogram, s): a delivery, with the
//     attributes of messaging.client.consumed.messages and error.type when
//     the handler failed.
//   - cqrs.redeliveries (counter, {message}): deliveries of a record after
//     its first in this member (Delivery above 1), counted when they
//     start; by messaging.system, messaging.destination.name and
//     messaging.consumer.group.name.
//   - cqrs.dead_letters (counter, {message}): messages given to
//     DeadLetter, by the attributes of cqrs.redeliveries.
//   - kafkabus.unidentified_messages (counter, {message}): deliveries of
//     records without a cqrs-id header, by the attributes of
//     cqrs.redeliveries.
//   - kafkabus.consumer.lag (gauge, {message}): per partition assigned to
//     a subscription, the partition's high watermark as last fetched minus
//     the offset after the last record handled, by messaging.system,
//     messaging.destination.name, messaging.consumer.group.name and
//     messaging.destination.partition.id. The semantic conventions of
//     v1.40 define no lag metric.
//
// The duration histograms have the bucket boundaries the semantic
// conventions advise, from 5ms to 10s. Attribute sets are built once: a
// subscription builds those of each partition when it is assigned, and a
// bus keeps those of the first [MaxTopicTelemetry] (256) topics it
// publishes to. The spans carry no server.address: a record's broker is
// the client's business.
package kafkabus
