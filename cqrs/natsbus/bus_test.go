package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/messagingconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	tests := []struct {
		name string
		js   jetstream.JetStream
		opts []natsbus.Option
		want []string
	}{
		{"nil js", nil, nil, []string{"js:"}},
		{"typed nil js", nilJS(), []natsbus.Option{nil}, []string{"js:", "opts[0] is nil"}},
		{"nil option", js, []natsbus.Option{natsbus.WithPrefetch(1), nil}, []string{"natsbus: ", "opts[1] is nil"}},
		{"negative prefetch", js, []natsbus.Option{nil, natsbus.WithPrefetch(-1)}, []string{"opts[0] is nil", "WithPrefetch(-1)"}},
		{"stream", js, []natsbus.Option{natsbus.WithStream("a.b")}, []string{`WithStream("a.b")`}},
		{"empty stream", js, []natsbus.Option{natsbus.WithStream("")}, []string{`WithStream("")`}},
		{"prefix without dot", js, []natsbus.Option{natsbus.WithSubjectPrefix("cqrs")}, []string{`WithSubjectPrefix("cqrs")`}},
		{"prefix wildcard", js, []natsbus.Option{natsbus.WithSubjectPrefix("a.*.")}, []string{`WithSubjectPrefix("a.*.")`}},
		{"all at once", js, []natsbus.Option{natsbus.WithAckWait(time.Millisecond), natsbus.WithDuplicateWindow(0), natsbus.WithSubjectPrefix("..")},
			[]string{"WithAckWait(1ms)", "WithDuplicateWindow(0s)", `WithSubjectPrefix("..")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := natsbus.New(tt.js, tt.opts...)
			require.Error(t, err, "New() = %v, nil; want error", b)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// nilJS returns a JetStream interface holding a nil pointer.
func nilJS() jetstream.JetStream {
	var js *nilJetStream
	return js
}

type nilJetStream struct{ jetstream.JetStream }

// TestSubscribePublishRejectBadArguments checks Subscribe's and Publish's
// arguments: every fault named at once, before the server is asked.
func TestSubscribePublishRejectBadArguments(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	bus, err := natsbus.New(js)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = bus.Subscribe(ctx, "a b", "", nil, cqrs.WithMaxDeliver(0), cqrs.WithDeadLetter(nil), nil)
	require.Error(t, err)
	for _, w := range []string{`topic "a b"`, "empty group", "nil handler", "WithMaxDeliver(0)", "WithDeadLetter(nil)"} {
		assert.Contains(t, err.Error(), w)
	}
	err = bus.Publish(ctx, "", cqrs.Message{ID: "1"})
	require.ErrorIs(t, err, cqrs.ErrInvalidMessage)
	assert.Contains(t, err.Error(), "empty topic")
}

func TestConsumerName(t *testing.T) {
	t.Parallel()
	tests := []struct{ group, topic, want string }{
		{"billing", "orders", "billing-orders"},
		{"billing_v2", "orders-placed", "billing_v2-orders-placed"},
	}
	for _, tt := range tests {
		if got := natsbus.ConsumerName(tt.group, tt.topic); got != tt.want {
			t.Errorf("ConsumerName(%q, %q) = %q; want %q", tt.group, tt.topic, got, tt.want)
		}
	}
	// Replaced characters make a hashed name, so distinct inputs stay distinct.
	seen := map[string]string{}
	for _, in := range [][2]string{{"a.b", "t"}, {"a_b", "t"}, {"a b", "t"}, {"a*b", "t"}, {"a>b", "t"}, {"a", "b.t"}, {"a-b", "t"}, {strings.Repeat("x", 100), "t"}, {strings.Repeat("x", 100), "u"}} {
		got := natsbus.ConsumerName(in[0], in[1])
		assert.False(t, strings.ContainsAny(got, ".*> \t/\\"), "ConsumerName(%q, %q) = %q", in[0], in[1], got)
		assert.LessOrEqual(t, len(got), 64, "ConsumerName(%q, %q) = %q", in[0], in[1], got)
		if prev, ok := seen[got]; ok {
			t.Errorf("ConsumerName(%q, %q) = %q, as for %s", in[0], in[1], got, prev)
		}
		seen[got] = fmt.Sprint(in)
	}
}

func TestSetupIsIdempotent(t *testing.T) {
	t.Parallel()
	bus, js, stream := newBus(t)
	require.NoError(t, bus.Setup(ctxWithin(t, 5*time.Second)))
	s, err := js.Stream(ctxWithin(t, 5*time.Second), stream)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	assert.Len(t, cfg.Subjects, 1)
	assert.Equal(t, natsbus.DefaultDuplicateWindow, cfg.Duplicates)
}

func TestPublishAndSubscribeRejectBadInput(t *testing.T) {
	t.Parallel()
	bus, _, _ := newBus(t)
	ctx := ctxWithin(t, 5*time.Second)
	for _, topic := range []string{"", "a.*", "a.>", "a b", "a..b"} {
		assert.Error(t, bus.Publish(ctx, topic, cqrs.Message{ID: "1"}), "Publish(%q)", topic)
		_, err := bus.Subscribe(ctx, topic, "g", func(context.Context, cqrs.Message) error { return nil })
		assert.Error(t, err, "Subscribe(%q)", topic)
	}
	assert.ErrorContains(t, bus.Publish(ctx, "t", cqrs.Message{}), "empty message ID")
	_, err := bus.Subscribe(ctx, "t", "", nil, cqrs.WithMaxDeliver(0))
	require.Error(t, err)
	for _, w := range []string{"empty group", "nil handler", "WithMaxDeliver(0)"} {
		assert.ErrorContains(t, err, w)
	}
}

func TestPublishSubscribeInOrder(t *testing.T) {
	t.Parallel()
	tp := telemetrytest.New(t)
	bus, _, stream := newBus(t, natsbus.WithTracerProvider(tp.TracerProvider), natsbus.WithMeterProvider(tp.MeterProvider))
	ctx := ctxWithin(t, 10*time.Second)
	sent := msgs("ord", 25)
	sent[3].Metadata = map[string]string{"tenant": "acme", "Correlation-Id": "c-1"}
	require.NoError(t, bus.Publish(ctx, "orders", sent[:10]...))

	c := newCollector()
	subscribe(t, bus, "orders", "billing", c.handle)
	require.NoError(t, bus.Publish(ctx, "orders", sent[10:]...))
	require.NoError(t, bus.Publish(ctx, "other", msgs("other", 3)...)) // another topic: not delivered
	waitFor(t, 5*time.Second, "25 messages", func() bool { return c.len() >= 25 })
	time.Sleep(100 * time.Millisecond)

	got := c.snapshot()
	require.Len(t, got, 25)
	for i, m := range got {
		assert.Equal(t, sent[i].ID, m.ID, "message %d", i)
		assert.Equal(t, "orders", m.Topic)
		assert.Equal(t, sent[i].Type, m.Type)
		assert.Equal(t, sent[i].Data, m.Data)
		assert.Equal(t, 1, m.Delivery)
	}
	assert.Equal(t, "acme", got[3].Metadata["tenant"])
	assert.Equal(t, "c-1", got[3].Metadata["Correlation-Id"])

	orders := semconv.MessagingDestinationName(subject(stream, "orders"))
	assert.EqualValues(t, 28, sum(t, tp, messagingconv.ClientSentMessages{}.Name()))
	assert.EqualValues(t, 25, sum(t, tp, messagingconv.ClientSentMessages{}.Name(), orders))
	assert.EqualValues(t, 25, sum(t, tp, messagingconv.ClientConsumedMessages{}.Name(), orders))
	var publish, process int
	for _, s := range tp.Spans.Ended() {
		attrs := attribute.NewSet(s.Attributes()...)
		sys, _ := attrs.Value(semconv.MessagingSystemKey)
		assert.Equal(t, natsbus.System, sys.AsString(), "span %s", s.Name())
		// The span's name says what its attributes say: the operation and
		// the destination, which is the subject.
		op, _ := attrs.Value(semconv.MessagingOperationNameKey)
		dest, _ := attrs.Value(semconv.MessagingDestinationNameKey)
		assert.Equal(t, op.AsString()+" "+dest.AsString(), s.Name(), "span name")
		switch s.Name() {
		case "publish " + orders.Value.AsString():
			publish++
			assert.Equal(t, trace.SpanKindProducer, s.SpanKind())
		case "process " + orders.Value.AsString():
			process++
			assert.Equal(t, trace.SpanKindConsumer, s.SpanKind())
			g, _ := attrs.Value(semconv.MessagingConsumerGroupNameKey)
			assert.Equal(t, "billing", g.AsString())
		}
		id, ok := attrs.Value(semconv.MessagingMessageIDKey)
		assert.True(t, ok && id.AsString() != "", "span %s has no messaging.message.id", s.Name())
		_, ok = attrs.Value(semconv.MessagingMessageBodySizeKey)
		assert.False(t, ok, "span %s has the Opt-In messaging.message.body.size without WithOptInAttributes", s.Name())
	}
	assert.Equal(t, 25, publish)
	assert.Equal(t, 25, process)
}

func TestRedeliveryCountsDeliveries(t *testing.T) {
	t.Parallel()
	tp := telemetrytest.New(t)
	bus, _, _ := newBus(t, natsbus.WithTracerProvider(tp.TracerProvider), natsbus.WithMeterProvider(tp.MeterProvider))
	var mu sync.Mutex
	var deliveries []int
	done := make(chan struct{})
	subscribe(t, bus, "t", "g", func(_ context.Context, m cqrs.Message) error {
		mu.Lock()
		defer mu.Unlock()
		deliveries = append(deliveries, m.Delivery)
		if m.Delivery < 3 {
			return errors.New("not yet")
		}
		close(done)
		return nil
	}, cqrs.WithRedeliveryBackoff(fastBackoff))
	require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("r", 1)...))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered 3 times within 5s")
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	assert.Equal(t, []int{1, 2, 3}, deliveries)
	mu.Unlock()
	assert.EqualValues(t, 2, sum(t, tp, cqrs.MetricRedeliveries))
	assert.EqualValues(t, 3, sum(t, tp, messagingconv.ClientConsumedMessages{}.Name()))
	assert.EqualValues(t, 2, histogramCount(t, tp, messagingconv.ProcessDuration{}.Name(), semconv.ErrorTypeOther))
	assert.EqualValues(t, 2, histogramCount(t, tp, messagingconv.ClientOperationDuration{}.Name(), semconv.MessagingOperationName("nak")))
	assert.EqualValues(t, 1, histogramCount(t, tp, messagingconv.ClientOperationDuration{}.Name(), semconv.MessagingOperationName("ack")))
}

func TestMaxDeliverDeadLetters(t *testing.T) {
	t.Parallel()
	tp := telemetrytest.New(t)
	bus, _, _ := newBus(t, natsbus.WithTracerProvider(tp.TracerProvider), natsbus.WithMeterProvider(tp.MeterProvider))
	type dead struct {
		m   cqrs.Message
		err error
	}
	deadCh := make(chan dead, 10)
	var calls atomic.Int32
	boom := errors.New("boom")
	c := newCollector()
	subscribe(t, bus, "t", "g", func(ctx context.Context, m cqrs.Message) error {
		if m.ID == "dl-0" {
			calls.Add(1)
			return fmt.Errorf("handling %s: %w", m.ID, boom)
		}
		return c.handle(ctx, m)
	}, cqrs.WithMaxDeliver(3), cqrs.WithRedeliveryBackoff(fastBackoff),
		cqrs.WithDeadLetter(func(_ context.Context, m cqrs.Message, err error) { deadCh <- dead{m, err} }))
	require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("dl", 3)...))

	var d dead
	select {
	case d = <-deadCh:
	case <-time.After(5 * time.Second):
		t.Fatal("no dead letter within 5s")
	}
	assert.Equal(t, "dl-0", d.m.ID)
	assert.Equal(t, 3, d.m.Delivery)
	assert.ErrorIs(t, d.err, boom)
	waitFor(t, 5*time.Second, "the other messages", func() bool { return c.len() == 2 })
	time.Sleep(300 * time.Millisecond) // a terminated message is not delivered again
	assert.EqualValues(t, 3, calls.Load())
	assert.Empty(t, deadCh)
	assert.EqualValues(t, 1, sum(t, tp, cqrs.MetricDeadLetters))
	assert.EqualValues(t, 1, histogramCount(t, tp, messagingconv.ClientOperationDuration{}.Name(), semconv.MessagingOperationName("term")))
}

func TestPanicIsAFailure(t *testing.T) {
	t.Parallel()
	bus, _, _ := newBus(t)
	deadCh := make(chan error, 1)
	subscribe(t, bus, "t", "g", func(context.Context, cqrs.Message) error { panic("kaboom") },
		cqrs.WithMaxDeliver(1), cqrs.WithDeadLetter(func(_ context.Context, _ cqrs.Message, err error) { deadCh <- err }))
	require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("p", 1)...))
	select {
	case err := <-deadCh:
		var pe *natsbus.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "kaboom", pe.Value)
	case <-time.After(5 * time.Second):
		t.Fatal("no dead letter within 5s")
	}
}

func TestPublishDeduplicatesOnID(t *testing.T) {
	t.Parallel()
	tp := telemetrytest.New(t)
	bus, js, stream := newBus(t, natsbus.WithTracerProvider(tp.TracerProvider), natsbus.WithMeterProvider(tp.MeterProvider))
	ctx := ctxWithin(t, 10*time.Second)
	m := msgs("dup", 2)
	require.NoError(t, bus.Publish(ctx, "t", m[0]))
	require.NoError(t, bus.Publish(ctx, "t", m[0], m[1])) // a retry after an unknown outcome
	require.NoError(t, bus.Publish(ctx, "t", m[1]))

	c := newCollector()
	subscribe(t, bus, "t", "g", c.handle)
	waitFor(t, 5*time.Second, "2 messages", func() bool { return c.len() >= 2 })
	time.Sleep(200 * time.Millisecond)
	got := c.snapshot()
	require.Len(t, got, 2)
	assert.Equal(t, "dup-0", got[0].ID)
	assert.Equal(t, "dup-1", got[1].ID)
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 2, info.State.Msgs)
	// Four messages were sent, two of them duplicates the stream dropped.
	assert.EqualValues(t, 4, sum(t, tp, messagingconv.ClientSentMessages{}.Name()))
	var duplicates int
	for _, s := range tp.Spans.Ended() {
		for _, e := range s.Events() {
			if e.Name == "duplicate" {
				duplicates++
			}
		}
	}
	assert.Equal(t, 2, duplicates, "publish spans with a duplicate event")
}

func TestGroupSharesLoad(t *testing.T) {
	t.Parallel()
	bus, _, _ := newBus(t)
	const n = 60
	slow := func(c *collector) cqrs.Handler {
		return func(ctx context.Context, m cqrs.Message) error {
			time.Sleep(5 * time.Millisecond)
			return c.handle(ctx, m)
		}
	}
	a, b, other := newCollector(), newCollector(), newCollector()
	subscribe(t, bus, "t", "workers", slow(a))
	subscribe(t, bus, "t", "workers", slow(b))
	subscribe(t, bus, "t", "audit", other.handle)
	require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("load", n)...))
	waitFor(t, 10*time.Second, "every message", func() bool { return a.len()+b.len() >= n && other.len() >= n })
	time.Sleep(100 * time.Millisecond)

	seen := map[string]int{}
	for _, m := range append(a.snapshot(), b.snapshot()...) {
		seen[m.ID]++
	}
	assert.Len(t, seen, n)
	for id, k := range seen {
		assert.Equal(t, 1, k, "message %s handled %d times by the group", id, k)
	}
	assert.NotZero(t, a.len(), "first member got nothing")
	assert.NotZero(t, b.len(), "second member got nothing")
	assert.Equal(t, n, other.len(), "another group gets every message")
}

func TestConcurrency(t *testing.T) {
	t.Parallel()
	bus, _, _ := newBus(t)
	var running, peak atomic.Int32
	c := newCollector()
	subscribe(t, bus, "t", "g", func(ctx context.Context, m cqrs.Message) error {
		r := running.Add(1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		return c.handle(ctx, m)
	}, cqrs.WithConcurrency(4))
	require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("c", 20)...))
	waitFor(t, 5*time.Second, "20 messages", func() bool { return c.len() >= 20 })
	assert.LessOrEqual(t, peak.Load(), int32(4))
	assert.Greater(t, peak.Load(), int32(1))
}

// A member that dies holding messages loses none: once its connection is
// gone, the server delivers them again to the group after AckWait.
func TestCrashedMemberLosesNothing(t *testing.T) {
	t.Parallel()
	stream, prefix := names(t)
	opts := []natsbus.Option{natsbus.WithStream(stream), natsbus.WithSubjectPrefix(prefix), natsbus.WithAckWait(time.Second)}
	_, js := connect(t)
	bus, err := natsbus.New(js, opts...)
	require.NoError(t, err)
	require.NoError(t, bus.Setup(ctxWithin(t, 5*time.Second)))
	const n = 20
	require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("crash", n)...))

	// The first member takes a few messages, then blocks and dies.
	var acked sync.Map // ID -> delivery
	crashNC, err := nats.Connect(testenv.NATSURL(t))
	require.NoError(t, err)
	t.Cleanup(crashNC.Close)
	crashJS, err := jetstream.New(crashNC)
	require.NoError(t, err)
	crashBus, err := natsbus.New(crashJS, opts...)
	require.NoError(t, err)
	var handled atomic.Int32
	stuck := make(chan struct{})
	release := make(chan struct{})
	sub1, err := crashBus.Subscribe(ctxWithin(t, 5*time.Second), "t", "g", func(_ context.Context, m cqrs.Message) error {
		if handled.Add(1) > 5 {
			close(stuck)
			<-release
			return nil // its ack is lost with the connection
		}
		acked.Store(m.ID, m.Delivery)
		return nil
	})
	require.NoError(t, err)
	select {
	case <-stuck:
	case <-time.After(5 * time.Second):
		t.Fatal("first member did not get 6 messages")
	}
	crashNC.Close() // the crash: nothing more is acknowledged
	close(release)
	require.NoError(t, sub1.Close())

	// The second member of the group gets everything else.
	var redelivered atomic.Bool
	subscribe(t, bus, "t", "g", func(_ context.Context, m cqrs.Message) error {
		if m.Delivery > 1 {
			redelivered.Store(true)
		}
		acked.Store(m.ID, m.Delivery)
		return nil
	})
	waitFor(t, 10*time.Second, "every message acknowledged", func() bool {
		k := 0
		acked.Range(func(any, any) bool { k++; return true })
		return k == n
	})
	assert.True(t, redelivered.Load(), "the message held at the crash was not delivered again")
}

// Closing a subscription hands its buffered messages back, so another
// member gets them without waiting for AckWait.
func TestCloseHandsBackBufferedMessages(t *testing.T) {
	t.Parallel()
	bus, _, _ := newBus(t) // AckWait 30s: a lost message would time the test out
	const n = 10
	require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("close", n)...))
	first := newCollector()
	sub1 := subscribe(t, bus, "t", "g", func(ctx context.Context, m cqrs.Message) error {
		time.Sleep(20 * time.Millisecond)
		return first.handle(ctx, m)
	})
	waitFor(t, 5*time.Second, "a first message", func() bool { return first.len() >= 1 })
	require.NoError(t, sub1.Close())
	k := first.len()
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, k, first.len(), "handler called after Close returned")

	second := newCollector()
	subscribe(t, bus, "t", "g", second.handle)
	waitFor(t, 5*time.Second, "the rest", func() bool {
		seen := map[string]bool{}
		for _, m := range append(first.snapshot(), second.snapshot()...) {
			seen[m.ID] = true
		}
		return len(seen) == n
	})
}

// The trace context of the publisher reaches the handler: its process span
// is a child of the publish span, in the publisher's trace, and links to it.
func TestTraceContextIsCarried(t *testing.T) { // not parallel: sets the global propagator
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	tp := telemetrytest.New(t)
	bus, _, stream := newBus(t, natsbus.WithTracerProvider(tp.TracerProvider))
	got := make(chan trace.SpanContext, 1)
	var md map[string]string
	subscribe(t, bus, "t", "g", func(ctx context.Context, m cqrs.Message) error {
		md = m.Metadata
		got <- trace.SpanContextFromContext(ctx)
		return nil
	})
	ctx, parent := tp.TracerProvider.Tracer("test").Start(ctxWithin(t, 5*time.Second), "request")
	require.NoError(t, bus.Publish(ctx, "t", msgs("trace", 1)...))
	parent.End()

	var sc trace.SpanContext
	select {
	case sc = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered within 5s")
	}
	assert.Equal(t, parent.SpanContext().TraceID(), sc.TraceID())
	assert.Contains(t, md, "traceparent")
	waitFor(t, time.Second, "process span ended", func() bool {
		for _, s := range tp.Spans.Ended() {
			if s.Name() == "process "+subject(stream, "t") {
				return true
			}
		}
		return false
	})
	var pub, proc sdktrace.ReadOnlySpan
	for _, s := range tp.Spans.Ended() {
		switch s.Name() {
		case "publish " + subject(stream, "t"):
			pub = s
		case "process " + subject(stream, "t"):
			proc = s
		}
	}
	require.NotNil(t, pub)
	require.NotNil(t, proc)
	assert.Equal(t, parent.SpanContext().SpanID(), pub.Parent().SpanID())
	assert.Equal(t, pub.SpanContext().SpanID(), proc.Parent().SpanID())
	assert.True(t, proc.Parent().IsRemote())
	assertLinksTo(t, proc, pub.SpanContext())
	assert.Equal(t, sc.SpanID(), proc.SpanContext().SpanID())
}

// With the default prefetch a subscription holds many fetched messages;
// closing it hands them all back, and another member gets them, and the
// messages published afterwards, well before AckWait (30s here).
func TestCloseHandsBackPrefetchedMessages(t *testing.T) {
	t.Parallel()
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			t.Parallel()
			bus, js, stream := newBus(t)
			const n, later = 400, 50
			require.NoError(t, bus.Publish(ctxWithin(t, 10*time.Second), "t", msgs("pre", n)...))
			first := newCollector()
			sub1 := subscribe(t, bus, "t", "g", func(ctx context.Context, m cqrs.Message) error {
				time.Sleep(2 * time.Millisecond)
				return first.handle(ctx, m)
			}, cqrs.WithConcurrency(conc))
			waitFor(t, 5*time.Second, "a few messages", func() bool { return first.len() >= 5 })
			require.NoError(t, sub1.Close())
			k := first.len()
			require.Less(t, k, n, "the first member handled everything before Close")

			second := newCollector()
			start := time.Now()
			subscribe(t, bus, "t", "g", second.handle, cqrs.WithConcurrency(conc))
			require.NoError(t, bus.Publish(ctxWithin(t, 10*time.Second), "t", msgs("post", later)...))
			missing := func() []string {
				seen := map[string]bool{}
				for _, m := range append(first.snapshot(), second.snapshot()...) {
					seen[m.ID] = true
				}
				var out []string
				for _, m := range append(msgs("pre", n), msgs("post", later)...) {
					if !seen[m.ID] {
						out = append(out, m.ID)
					}
				}
				return out
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(missing()) > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if m := missing(); len(m) > 0 {
				// Say where the server has them: pending an ack (delivered
				// to a member that did not pass them on) or waiting.
				cons, err := js.Consumer(ctxWithin(t, 5*time.Second), stream, natsbus.ConsumerName("g", "t"))
				require.NoError(t, err)
				info, err := cons.Info(ctxWithin(t, 5*time.Second))
				require.NoError(t, err)
				t.Fatalf("after 10s, %d messages not handled (%v); first member handled %d before Close; "+
					"the consumer: %d pending an ack, %d waiting, %d redelivered, %d pull requests waiting",
					len(m), m, k, info.NumAckPending, info.NumPending, info.NumRedelivered, info.NumWaiting)
			}
			t.Logf("first member handled %d; the rest reached the second within %v", k, time.Since(start).Round(time.Millisecond))
		})
	}
}

// A handler that runs for longer than AckWait keeps its message: the
// subscription tells the server it is still working on it.
func TestLongHandlerKeepsItsMessage(t *testing.T) {
	t.Parallel()
	for _, conc := range []int{1, 3} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			t.Parallel()
			bus, _, _ := newBus(t, natsbus.WithAckWait(time.Second))
			var mu sync.Mutex
			deliveries := map[string][]int{}
			c := newCollector()
			subscribe(t, bus, "t", "g", func(ctx context.Context, m cqrs.Message) error {
				mu.Lock()
				deliveries[m.ID] = append(deliveries[m.ID], m.Delivery)
				mu.Unlock()
				time.Sleep(2500 * time.Millisecond)
				return c.handle(ctx, m)
			}, cqrs.WithConcurrency(conc))
			require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("long", conc)...))
			waitFor(t, 10*time.Second, "every message", func() bool { return c.len() >= conc })
			time.Sleep(1500 * time.Millisecond) // a redelivery would show by now
			mu.Lock()
			defer mu.Unlock()
			for id, d := range deliveries {
				assert.Equal(t, []int{1}, d, "deliveries of %s", id)
			}
		})
	}
}

// With a tracer provider that records nothing, a subscription starts no
// process span, and its handler still runs in the message's creation
// context, as it would in a no-op span's: the trace goes on downstream.
func TestTraceContextReachesHandlerWithoutSpans(t *testing.T) { // not parallel: sets the global propagator
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	bus, _, _ := newBus(t, natsbus.WithTracerProvider(tracenoop.NewTracerProvider()))
	got := make(chan trace.SpanContext, 1)
	subscribe(t, bus, "t", "g", func(ctx context.Context, m cqrs.Message) error {
		got <- trace.SpanContextFromContext(ctx)
		return nil
	})
	creation := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{3}, SpanID: trace.SpanID{4},
		TraceFlags: trace.FlagsSampled, Remote: true})
	require.NoError(t, bus.Publish(trace.ContextWithRemoteSpanContext(ctxWithin(t, 5*time.Second), creation), "t", msgs("trace", 1)...))
	select {
	case sc := <-got:
		assert.Equal(t, creation, sc, "the handler's span context")
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered within 5s")
	}
}
