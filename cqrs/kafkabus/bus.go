package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/buskit"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Bus is a [cqrs.EventBus] on Kafka. Each bus topic is a Kafka topic (the
// prefix and the topic); each consumer group of a topic is a Kafka
// consumer group.
//
// A Bus is safe for concurrent use. It owns one franz-go client, its
// producer, and each subscription owns one more: call [Bus.Close] after
// closing the subscriptions.
type Bus struct {
	brokers  []string
	cfg      config
	inst     *instruments
	producer *kgo.Client
	setUp    sync.Map // Kafka topics that Setup created or found
	closed   sync.Once
}

var _ cqrs.EventBus = (*Bus)(nil)

// New returns a bus on the Kafka cluster whose seed brokers ("host:port")
// are brokers. It does not talk to the cluster: the client connects on
// first use; call [Bus.Setup] to create topics. It returns an error naming
// every bad argument: no broker, an empty broker, each bad option (see
// each option for what it accepts), a nil option ("opts[i] is nil"), and
// client options that franz-go rejects.
func New(brokers []string, opts ...Option) (*Bus, error) {
	cfg := defaultConfig()
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(&cfg)
	}
	errs = append(errs, cfg.validate()...)
	if len(brokers) == 0 {
		errs = append(errs, errors.New("brokers: no seed broker"))
	}
	for i, s := range brokers {
		if s == "" {
			errs = append(errs, fmt.Errorf("brokers[%d] is empty", i))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kafkabus: %w", errors.Join(errs...))
	}
	b := &Bus{brokers: append([]string(nil), brokers...), cfg: cfg, inst: newInstruments(cfg)}
	var err error
	b.producer, err = kgo.NewClient(b.clientOpts(
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// A topic that does not exist fails a publish after two metadata
		// loads rather than after the default four.
		kgo.UnknownTopicRetries(2),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: WithClientOptions: %w", err)
	}
	return b, nil
}

// clientOpts returns the options of a client of the bus: the user's, then
// the seed brokers, then extra.
func (b *Bus) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := make([]kgo.Opt, 0, len(b.cfg.clientOpts)+1+len(extra))
	opts = append(opts, b.cfg.clientOpts...)
	opts = append(opts, kgo.SeedBrokers(b.brokers...))
	return append(opts, extra...)
}

// Close closes the bus's producer client, failing the publications in
// flight. Close the bus's subscriptions first. It is safe to call more
// than once.
func (b *Bus) Close() {
	b.closed.Do(b.producer.Close)
}

// KafkaTopic returns the Kafka topic of bus topic topic: the bus's prefix
// and the topic.
func (b *Bus) KafkaTopic(topic string) string { return b.cfg.prefix + topic }

// Setup creates the Kafka topics of the given bus topics, with the bus's
// partitions, replication factor and topic configuration ([WithPartitions],
// [WithReplicationFactor], [WithTopicConfig]). A topic that exists already
// is left as it is (its partitions and configuration are the operators'),
// so Setup is idempotent and every instance of a service may call it at
// start-up. It returns an error naming each topic it could not create, or
// a bad topic name.
func (b *Bus) Setup(ctx context.Context, topics ...string) error {
	if len(topics) == 0 {
		return errors.New("kafkabus: Setup: no topic")
	}
	ktopics := make([]string, 0, len(topics))
	var errs []error
	for _, t := range topics {
		if err := b.checkTopic(t); err != nil {
			errs = append(errs, err)
		}
		if kt := b.cfg.prefix + t; !slices.Contains(ktopics, kt) {
			// Kafka refuses a request that names a topic twice.
			ktopics = append(ktopics, kt)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	resp, err := kadm.NewClient(b.producer).CreateTopics(ctx, b.cfg.partitions, b.cfg.replication, b.cfg.topicConfigs, ktopics...)
	if err != nil {
		return fmt.Errorf("kafkabus: setup topics %v: %w", ktopics, err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("kafkabus: setup topic %s: %w", r.Topic, r.Err))
			continue
		}
		b.setUp.Store(r.Topic, struct{}{})
	}
	return errors.Join(errs...)
}

// ensure sets topic, whose Kafka topic is ktopic, up once, with WithAutoSetup.
func (b *Bus) ensure(ctx context.Context, topic, ktopic string) error {
	if !b.cfg.autoSetup {
		return nil
	}
	if _, ok := b.setUp.Load(ktopic); ok {
		return nil
	}
	return b.Setup(ctx, topic)
}

// checkTopic reports whether topic makes a valid Kafka topic name with the
// bus's prefix.
func (b *Bus) checkTopic(topic string) error {
	return b.checkKafkaTopic(topic, b.cfg.prefix+topic)
}

// checkKafkaTopic is checkTopic of topic, whose Kafka topic is ktopic.
func (b *Bus) checkKafkaTopic(topic, ktopic string) error {
	if topic == "" {
		return errors.New("kafkabus: empty topic")
	}
	if err := checkName(ktopic, false); err != nil {
		return fmt.Errorf("kafkabus: topic %q: %w", topic, err)
	}
	return nil
}

// Publish produces msgs, in order, to the Kafka topic of topic, and returns
// once the brokers acknowledged every one of them (acks=all: every
// in-sync replica has it) or one failed. Each message is one record, keyed
// by [WithKey]'s function (by default the message's Key, or the topic),
// so records with the same key land on one partition in order; the
// producer is idempotent, so its own retries do not duplicate a
// record. A publish retried by the caller after an error may store a
// message twice: consumers de-duplicate on [cqrs.Message.ID].
//
// ID, Type and every Metadata entry travel in record headers exactly (see
// the package documentation, "Message format"). A message whose Metadata
// carries a trace context ([buskit.CreationContext]) keeps it, and the
// publish span links to it; any other gets the trace context of its
// publish span.
//
// Every message needs a non-empty ID, checked for all messages before any
// is sent. The error of a bad topic, a message without an ID, and a record
// larger than the brokers take matches [cqrs.ErrInvalidMessage]. The
// error names the first message that failed; messages before it on the
// same partition are stored, others may be. A canceled ctx fails the
// messages not yet sent.
func (b *Bus) Publish(ctx context.Context, topic string, msgs ...cqrs.Message) error {
	ktopic := b.cfg.prefix + topic
	if err := b.checkKafkaTopic(topic, ktopic); err != nil {
		return fmt.Errorf("%w (%w)", err, cqrs.ErrInvalidMessage)
	}
	for i, m := range msgs {
		if m.ID == "" {
			return fmt.Errorf("kafkabus: message %d: empty message ID (%w)", i, cqrs.ErrInvalidMessage)
		}
	}
	if err := b.ensure(ctx, topic, ktopic); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkabus: publish to %s: %w", ktopic, err)
	}
	if len(msgs) == 0 {
		return nil
	}
	p := b.newPublication(ctx, ktopic, msgs)
	// The records are all made before the first is produced, so that they
	// reach the client's partition buffers together and go out in as few
	// requests as the brokers' acknowledgements allow.
	for i := range p.recs {
		b.producer.Produce(ctx, &p.recs[i], p.promise)
	}
	p.wg.Wait()
	for i, err := range p.errs {
		if err != nil {
			if invalid(err) {
				err = fmt.Errorf("%w (%w)", err, cqrs.ErrInvalidMessage)
			}
			return fmt.Errorf("kafkabus: publish message %d (%s) to %s: %w", i, msgs[i].ID, ktopic, err)
		}
	}
	return nil
}

// invalid reports whether err says that a record can never be produced.
func invalid(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) ||
		errors.Is(err, kerr.RecordListTooLarge) || errors.Is(err, kerr.InvalidTopicException)
}

// publication is the records of one Publish call in flight. Its records,
// their headers and the bytes of their keys and header values are three
// allocations, whatever the number of messages, and one promise serves
// them all.
type publication struct {
	inst   *instruments
	tt     *topicTelemetry
	traced bool // each record's Context holds its publish span
	start  time.Time
	recs   []kgo.Record
	wg     sync.WaitGroup

	mu   sync.Mutex
	errs []error // by message, made at the first failure
}

// newPublication returns the publication of msgs to ktopic in ctx: their
// records, each in a publish span of its own when spans could record, and
// carrying its message's creation context or that span's.
func (b *Bus) newPublication(ctx context.Context, ktopic string, msgs []cqrs.Message) *publication {
	inst := b.inst
	p := &publication{inst: inst, tt: inst.forTopic(ktopic), traced: !inst.spans.Skip(ctx), start: time.Now(),
		recs: make([]kgo.Record, len(msgs))}
	p.wg.Add(len(msgs))
	prop := otel.GetTextMapPropagator()
	room := len(prop.Fields()) // the headers a trace context may add
	nh, nb := 0, 0
	for _, m := range msgs {
		nh += 3 + len(m.Metadata) + room
		nb += len(m.ID) + len(m.Type) + len(m.Key) + max(len(m.Key), len(ktopic)) // a key of WithKey may make it grow
		for _, v := range m.Metadata {
			nb += len(v)
		}
	}
	headers := make([]kgo.RecordHeader, nh)
	buf := arena(make([]byte, 0, nb))
	for i, m := range msgs {
		r := &p.recs[i]
		key := b.cfg.key(m)
		if key == "" {
			key = ktopic
		}
		r.Topic, r.Key, r.Value, r.Context = ktopic, buf.bytes(key), m.Data, ctx
		n := 3 + len(m.Metadata) + room
		r.Headers = encodeHeaders(headers[:0:n], m, &buf, key, r.Key)
		headers = headers[n:]
		creation := buskit.CreationContext(m)
		if p.traced {
			r.Context = p.startSpan(ctx, m, key, creation)
		}
		if !creation.IsValid() {
			// The trace context goes straight into the headers, as entries
			// of the metadata would (buskit.InjectTrace would copy the
			// metadata).
			prop.Inject(r.Context, headerCarrier{r})
		}
	}
	return p
}

// startSpan starts the publish span of m, whose record key is key and
// whose creation context is creation, and returns ctx with it.
func (p *publication) startSpan(ctx context.Context, m cqrs.Message, key string, creation trace.SpanContext) context.Context {
	opts := p.tt.spanOpts
	if creation.IsValid() {
		// The message's creation context is its own: the span links to it
		// and, its context not being the creation context, is a client span.
		opts = append(opts[:len(opts):len(opts)],
			trace.WithLinks(trace.Link{SpanContext: creation}), trace.WithSpanKind(trace.SpanKindClient))
	}
	sctx, span := p.inst.tracer.Start(ctx, p.tt.spanName, opts...)
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageID(m.ID), semconv.MessagingKafkaMessageKey(key))
		if p.inst.optIn {
			span.SetAttributes(semconv.MessagingMessageBodySize(len(m.Data)))
		}
	}
	return sctx
}

// promise is the promise of each record of the publication: it records
// the record's outcome and ends its span.
func (p *publication) promise(r *kgo.Record, err error) {
	inst, tt, ctx := p.inst, p.tt, r.Context
	var span trace.Span
	if p.traced {
		span = trace.SpanFromContext(ctx)
	}
	if err != nil {
		if span != nil {
			telemetry.RecordError(span, err)
		}
		addFailure(ctx, inst.Sent, 1, tt.sentBase, err)
		if inst.OpDuration.Enabled(ctx) {
			recordFailure(ctx, inst.OpDuration, seconds(p.start), tt.durBase, err)
		}
		p.fail(r, err)
	} else {
		if span != nil && span.IsRecording() {
			span.SetAttributes(semconv.MessagingDestinationPartitionID(itoa(r.Partition)), semconv.MessagingKafkaOffset(int(r.Offset)))
		}
		inst.Sent.Add(ctx, 1, tt.sentOpts...)
		if inst.OpDuration.Enabled(ctx) {
			inst.OpDuration.Record(ctx, seconds(p.start), tt.durOpts...)
		}
	}
	if span != nil {
		span.End()
	}
	p.wg.Done()
}

// fail records err as the error of r's message.
func (p *publication) fail(r *kgo.Record, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.errs == nil {
		p.errs = make([]error, len(p.recs))
	}
	for i := range p.recs {
		if &p.recs[i] == r {
			p.errs[i] = err
			return
		}
	}
}

// DeadLetterTo returns a dead-letter function ([cqrs.WithDeadLetter]) that
// parks each message it gets on the bus topic topic, as it is (its ID,
// type, data and metadata), with two metadata entries added: [MetadataDeadLetterError],
// the handler's last error, and [MetadataDeadLetterTopic], the topic the
// message failed on. Replay it by publishing it back once fixed. A message
// it cannot park is reported to the global OpenTelemetry error handler
// (otel.Handle), and, given to it by a subscription of a kafkabus Bus, not
// passed: its record stays unmarked, its partition waits, and the
// subscription calls the function again after the backoff of the last
// delivery until it parks the message (or the partition moves, and its next
// owner delivers the record again), so that no message is lost. Call
// [Bus.Setup] for topic unless the bus sets topics up itself
// ([WithAutoSetup]).
func (b *Bus) DeadLetterTo(topic string) func(ctx context.Context, m cqrs.Message, err error) {
	return func(ctx context.Context, m cqrs.Message, err error) {
		parked := m
		parked.Metadata = make(map[string]string, len(m.Metadata)+2)
		maps.Copy(parked.Metadata, m.Metadata)
		if err != nil {
			parked.Metadata[MetadataDeadLetterError] = err.Error()
		}
		parked.Metadata[MetadataDeadLetterTopic] = m.Topic
		if perr := b.Publish(ctx, topic, parked); perr != nil {
			otel.Handle(fmt.Errorf("kafkabus: parking message %s of %s on %s: %w", m.ID, m.Topic, topic, perr))
			if slot, ok := ctx.Value(parkKey{}).(*parkSlot); ok {
				slot.err = perr
			}
		}
	}
}

// The metadata entries that [Bus.DeadLetterTo] adds to a parked message.
const (
	MetadataDeadLetterError = "dead-letter-error"
	MetadataDeadLetterTopic = "dead-letter-topic"
)
