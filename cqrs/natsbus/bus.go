package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/buskit"
	"github.com/otelpatterns/patterns/internal/nilcheck"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Bus is a [cqrs.EventBus] on NATS JetStream. Messages are stored in one
// stream; each consumer group of a topic is a durable pull consumer of it.
//
// A Bus is safe for concurrent use. It does not own the JetStream context
// it was built with: closing the NATS connection is the caller's job, after
// closing the bus's subscriptions.
type Bus struct {
	js   jetstream.JetStream
	cfg  config
	inst *instruments
}

var _ cqrs.EventBus = (*Bus)(nil)

// New returns a bus on js. It does not talk to the server; call
// [Bus.Setup] to create the stream. It returns an error naming every bad
// argument: a nil js, and each bad option (see each option for what it
// accepts), a nil option ("opts[i] is nil").
func New(js jetstream.JetStream, opts ...Option) (*Bus, error) {
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
	if nilcheck.IsNil(js) {
		errs = append(errs, errors.New("js: JetStream context must not be nil"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("natsbus: %w", errors.Join(errs...))
	}
	return &Bus{js: js, cfg: cfg, inst: newInstruments(cfg, js.Conn())}, nil
}

// Setup creates the bus's stream, or updates it to capture the bus's
// subjects (prefix+">") with the bus's duplicate window. It is idempotent,
// so every instance of a service can call it at start-up. Other settings
// of an existing stream (retention, replicas, limits) are kept, so an
// operator can tune them. Publishing to a bus whose stream does not exist
// fails with an error wrapping [jetstream.ErrNoStreamResponse].
func (b *Bus) Setup(ctx context.Context) error {
	sc := jetstream.StreamConfig{
		Name:       b.cfg.stream,
		Subjects:   []string{b.cfg.prefix + ">"},
		Duplicates: b.cfg.duplicateWindow,
		Storage:    jetstream.FileStorage,
	}
	if info, err := b.js.Stream(ctx, b.cfg.stream); err == nil {
		sc = info.CachedInfo().Config
		if !containsString(sc.Subjects, b.cfg.prefix+">") {
			sc.Subjects = append(sc.Subjects, b.cfg.prefix+">")
		}
		sc.Duplicates = b.cfg.duplicateWindow
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("natsbus: setup stream %s: %w", b.cfg.stream, err)
	}
	for attempt := 1; ; attempt++ {
		_, err := b.js.CreateOrUpdateStream(ctx, sc)
		if err == nil {
			return nil
		}
		if !storeFailed(err) || attempt == 5 || ctx.Err() != nil {
			return fmt.Errorf("natsbus: setup stream %s: %w", b.cfg.stream, err)
		}
		// nats-server 2.9 removes its streams directory when the last
		// stream goes, and a stream created at that moment fails to make
		// its store; a second try finds the directory made again.
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
}

// storeFailedCode is the JetStream error code of "error creating store for
// stream" (JSStreamStoreFailedErr).
const storeFailedCode jetstream.ErrorCode = 10049

func storeFailed(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == storeFailedCode
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Publish stores msgs, in order, on the subject of topic. Each message is
// one JetStream publish whose Nats-Msg-Id header is the subject and the
// message ID, so the stream drops a message published again to the same
// topic with the same ID within the duplicate window (see
// [WithDuplicateWindow]): a publisher that retries after an error does
// not duplicate what was stored. The same message published to another
// topic is stored there too, as on [cqrs.MemoryBus]: a dead-letter
// function may park a message on another topic as it is.
//
// ID, Type and every Metadata entry travel as headers, exactly: whatever
// their characters, the handler gets them as published (see the package
// documentation, "Message format"). A message whose Metadata carries a
// trace context ([buskit.CreationContext]) keeps it, and the publish span
// links to it; any other gets the trace context of its publish span.
//
// Publish returns once the stream has stored every message, or at the
// first failure, with an error naming the message; the messages before it
// are stored. Every message needs a non-empty ID, which is checked for
// all messages before any is sent. The error of a bad topic, a message
// without an ID, and a message larger than the server's max_payload or
// the stream's maximum message size matches [cqrs.ErrInvalidMessage]:
// publishing it again cannot succeed. Cancelling ctx abandons the publish
// in flight, which may be stored nonetheless.
func (b *Bus) Publish(ctx context.Context, topic string, msgs ...cqrs.Message) error {
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("%w (%w)", err, cqrs.ErrInvalidMessage)
	}
	for i, m := range msgs {
		if err := checkMessage(m); err != nil {
			return fmt.Errorf("natsbus: message %d: %w (%w)", i, err, cqrs.ErrInvalidMessage)
		}
	}
	subject := b.cfg.prefix + topic
	for i, m := range msgs {
		if err := b.publish(ctx, topic, subject, m); err != nil {
			if tooLarge(err) {
				err = fmt.Errorf("%w (%w)", err, cqrs.ErrInvalidMessage)
			}
			return fmt.Errorf("natsbus: publish message %d (%s) to %s: %w", i, m.ID, subject, err)
		}
	}
	return nil
}

// tooLarge reports whether err says that a message is larger than the
// server or the stream takes.
func tooLarge(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

func (b *Bus) publish(ctx context.Context, topic, subject string, m cqrs.Message) error {
	start := time.Now()
	inst := b.inst
	tt := inst.forTopic(topic, subject, inst.endpoint(start))
	opts := tt.spanOpts
	creation := buskit.CreationContext(m)
	if creation.IsValid() {
		// The message's creation context is its own: the span links to it
		// and, its context not being the creation context, is a client span.
		opts = append(opts[:len(opts):len(opts)],
			trace.WithLinks(trace.Link{SpanContext: creation}), trace.WithSpanKind(trace.SpanKindClient))
	}
	ctx, span := inst.tracer.Start(ctx, tt.spanName, opts...)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageID(m.ID))
		if inst.optIn {
			span.SetAttributes(semconv.MessagingMessageBodySize(len(m.Data)))
		}
	}
	md := m.Metadata
	if !creation.IsValid() {
		md = buskit.InjectTrace(ctx, md)
	}
	msg := &nats.Msg{Subject: subject, Header: encodeHeaders(subject, m, md), Data: m.Data}
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(b.cfg.stream))
	d := seconds(start)
	if err != nil {
		telemetry.RecordError(span, err)
		addFailure(ctx, inst.Sent, 1, tt.sentBase, err)
		recordFailure(ctx, inst.OpDuration, d, tt.durBase, err)
		return err
	}
	inst.Sent.Add(ctx, 1, tt.sentOpts...)
	inst.OpDuration.Record(ctx, d, tt.durOpts...)
	if span.IsRecording() && ack.Duplicate {
		span.AddEvent("duplicate")
	}
	return nil
}

// checkMessage reports a message that cannot be published.
func checkMessage(m cqrs.Message) error {
	if m.ID == "" {
		return errors.New("empty message ID")
	}
	return nil
}
