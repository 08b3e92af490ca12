package cqrs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/messagingconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/bustest"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

func TestMemoryBusConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) cqrs.EventBus {
		b := cqrs.NewMemoryBus()
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

// The suite also passes with recording providers, where the bus publishes
// under spans of its own.
func TestMemoryBusConformanceWithSDK(t *testing.T) {
	bustest.Run(t, func(t *testing.T) cqrs.EventBus {
		p := telemetrytest.New(t)
		b := cqrs.NewMemoryBus(cqrs.WithTracerProvider(p.TracerProvider), cqrs.WithMeterProvider(p.MeterProvider))
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

// The telemetry both buses record, from the suite they share.
func TestMemoryBusTelemetryConformance(t *testing.T) {
	bustest.RunTelemetry(t, func(t *testing.T, tp trace.TracerProvider, mp metric.MeterProvider) cqrs.EventBus {
		b := cqrs.NewMemoryBus(cqrs.WithTracerProvider(tp), cqrs.WithMeterProvider(mp))
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

func newTestBus(t *testing.T) (*cqrs.MemoryBus, *telemetrytest.Providers) {
	t.Helper()
	p := telemetrytest.New(t)
	b := cqrs.NewMemoryBus(cqrs.WithTracerProvider(p.TracerProvider), cqrs.WithMeterProvider(p.MeterProvider))
	t.Cleanup(func() { _ = b.Close() })
	return b, p
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fastBackoff(int) time.Duration { return time.Millisecond }

func TestMemoryBusTelemetry(t *testing.T) {
	t.Parallel()
	b, p := newTestBus(t)
	ctx := t.Context()
	var processed atomic.Int32
	var dead atomic.Int32
	errBoom := errors.New("boom")
	sub, err := b.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m cqrs.Message) error {
		defer processed.Add(1)
		if m.ID == "bad" {
			return errBoom
		}
		return nil
	}, cqrs.WithMaxDeliver(2), cqrs.WithRedeliveryBackoff(fastBackoff),
		cqrs.WithDeadLetter(func(context.Context, cqrs.Message, error) { dead.Add(1) }))
	require.NoError(t, err)

	pctx, parent := p.TracerProvider.Tracer("test").Start(ctx, "caller")
	require.NoError(t, b.Publish(pctx, "orders", cqrs.Message{ID: "good"}, cqrs.Message{ID: "bad"}))
	parent.End()
	waitUntil(t, "the dead letter", func() bool { return dead.Load() == 1 && processed.Load() == 3 })
	require.NoError(t, sub.Close())

	system := semconv.MessagingSystemKey.String(cqrs.MemorySystem)
	dest := semconv.MessagingDestinationName("orders")
	group := semconv.MessagingConsumerGroupName("billing")
	publish, process := semconv.MessagingOperationName("publish"), semconv.MessagingOperationName("process")
	assert.Equal(t, int64(2), p.Int64(t, messagingconv.ClientSentMessages{}.Name(), system, publish, dest))
	assert.Equal(t, uint64(1), p.HistogramCount(t, messagingconv.ClientOperationDuration{}.Name(),
		system, publish, semconv.MessagingOperationTypeSend, dest))
	assert.Equal(t, int64(3), p.Int64(t, messagingconv.ClientConsumedMessages{}.Name(), system, process, dest, group))
	duration := messagingconv.ProcessDuration{}.Name()
	assert.Equal(t, uint64(1), p.HistogramCount(t, duration, system, process, dest, group))
	assert.Equal(t, uint64(2), p.HistogramCount(t, duration, system, process, dest, group, semconv.ErrorTypeOther),
		"%s: %s", duration, p.Describe(t, duration))
	for op, n := range map[string]uint64{"ack": 1, "nak": 1, "term": 1} {
		assert.Equal(t, n, p.HistogramCount(t, messagingconv.ClientOperationDuration{}.Name(),
			system, semconv.MessagingOperationName(op), semconv.MessagingOperationTypeSettle, dest, group), "settlement %s", op)
	}
	assert.Equal(t, int64(1), p.Int64(t, cqrs.MetricRedeliveries, system, dest, group))
	assert.Equal(t, int64(1), p.Int64(t, cqrs.MetricDeadLetters, system, dest, group))

	var publishSC trace.SpanContext
	var deliveries []string
	for _, s := range p.Spans.Ended() {
		if s.Name() != "caller" {
			assert.Equal(t, cqrs.ScopeName, s.InstrumentationScope().Name)
		}
		assert.NotContains(t, telemetrytest.Attrs(s), semconv.MessagingMessageBodySizeKey,
			"span %s has the Opt-In messaging.message.body.size without WithOptInAttributes", s.Name())
		switch s.Name() {
		case "publish orders":
			assert.Equal(t, trace.SpanKindProducer, s.SpanKind())
			assert.Equal(t, parent.SpanContext().SpanID(), s.Parent().SpanID())
			assert.Contains(t, s.Attributes(), system)
			assert.Contains(t, s.Attributes(), dest)
			assert.Contains(t, s.Attributes(), semconv.MessagingBatchMessageCount(2))
			publishSC = s.SpanContext()
		case "process orders":
			assert.Equal(t, trace.SpanKindConsumer, s.SpanKind())
			assert.Contains(t, s.Attributes(), group)
			assert.Contains(t, s.Attributes(), dest)
			var id string
			var delivery int64
			for _, kv := range s.Attributes() {
				switch kv.Key {
				case semconv.MessagingMessageIDKey:
					id = kv.Value.AsString()
				case cqrs.AttrDelivery:
					delivery = kv.Value.AsInt64()
				}
			}
			var events []string
			for _, e := range s.Events() {
				events = append(events, e.Name)
			}
			deliveries = append(deliveries, id+"#"+string(rune('0'+delivery))+":"+strings.Join(events, ","))
			if id == "bad" {
				assert.Equal(t, codes.Error, s.Status().Code)
				assert.Contains(t, s.Attributes(), semconv.ErrorTypeOther)
			} else {
				assert.Equal(t, codes.Unset, s.Status().Code)
			}
		}
	}
	require.True(t, publishSC.IsValid(), "no publish span")
	assert.ElementsMatch(t, []string{"good#1:ack", "bad#1:nak", "bad#2:term"}, deliveries, "deliveries and their settlements")
	for _, s := range p.Spans.Ended() {
		if s.Name() == "process orders" {
			assert.Equal(t, publishSC.SpanID(), s.Parent().SpanID(), "process span's parent")
			assert.True(t, s.Parent().IsRemote())
			assertLinksTo(t, s, publishSC)
		}
	}
}

func TestMemoryBusHandlerPanicIsAFailure(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	var got error
	done := make(chan struct{})
	sub, err := b.Subscribe(t.Context(), "t", "g", func(context.Context, cqrs.Message) error { panic("oops") },
		cqrs.WithMaxDeliver(1), cqrs.WithDeadLetter(func(_ context.Context, _ cqrs.Message, err error) { got = err; close(done) }))
	require.NoError(t, err)
	defer sub.Close()
	require.NoError(t, b.Publish(t.Context(), "t", cqrs.Message{ID: "1"}))
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("DeadLetter not called")
	}
	assert.ErrorContains(t, got, "panicked: oops")
}

func TestMemoryBusNewGroupStartsAfterSubscribing(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	ctx := t.Context()
	require.NoError(t, b.Publish(ctx, "t", cqrs.Message{ID: "before"}))
	var mu sync.Mutex
	var got []string
	sub, err := b.Subscribe(ctx, "t", "g", func(_ context.Context, m cqrs.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m.ID)
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, "t", cqrs.Message{ID: "after"}))
	waitUntil(t, "delivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	require.NoError(t, sub.Close())

	// The group outlives its subscriptions.
	require.NoError(t, b.Publish(ctx, "t", cqrs.Message{ID: "while-away"}))
	sub, err = b.Subscribe(ctx, "t", "g", func(_ context.Context, m cqrs.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m.ID)
		return nil
	})
	require.NoError(t, err)
	defer sub.Close()
	waitUntil(t, "delivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	mu.Lock()
	assert.Equal(t, []string{"after", "while-away"}, got)
	mu.Unlock()
}

func TestMemoryBusConcurrency(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	var running, peak atomic.Int32
	release := make(chan struct{})
	var handled atomic.Int32
	sub, err := b.Subscribe(t.Context(), "t", "g", func(context.Context, cqrs.Message) error {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		running.Add(-1)
		handled.Add(1)
		return nil
	}, cqrs.WithConcurrency(3))
	require.NoError(t, err)
	require.NoError(t, b.Publish(t.Context(), "t", make([]cqrs.Message, 5)...))
	waitUntil(t, "three running handlers", func() bool { return running.Load() == 3 })
	close(release)
	waitUntil(t, "all handled", func() bool { return handled.Load() == 5 })
	require.NoError(t, sub.Close())
	assert.Equal(t, int32(3), peak.Load())
}

func TestMemoryBusClose(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	ctx := t.Context()
	started, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	_, err := b.Subscribe(ctx, "t", "g", func(context.Context, cqrs.Message) error {
		close(started)
		<-release
		finished.Store(true)
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, "t", cqrs.Message{}))
	<-started
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	require.NoError(t, b.Close())
	assert.True(t, finished.Load(), "Close returned before the running handler")
	require.NoError(t, b.Close(), "second Close")
	assert.ErrorIs(t, b.Publish(ctx, "t", cqrs.Message{}), cqrs.ErrBusClosed)
	_, err = b.Subscribe(ctx, "t", "g", func(context.Context, cqrs.Message) error { return nil })
	assert.ErrorIs(t, err, cqrs.ErrBusClosed)
}

func TestMemoryBusRejectsBadArguments(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	ctx := t.Context()
	assert.Error(t, b.Publish(ctx, "", cqrs.Message{}))
	_, err := b.Subscribe(ctx, "", "", nil, cqrs.WithMaxDeliver(0))
	require.Error(t, err)
	for _, want := range []string{"topic", "group", "handler", "WithMaxDeliver(0)"} {
		assert.ErrorContains(t, err, want)
	}
}

// Publish copies what it is given: the caller may reuse its buffers.
func TestMemoryBusPublishCopies(t *testing.T) {
	t.Parallel()
	b, _ := newTestBus(t)
	got := make(chan cqrs.Message, 1)
	sub, err := b.Subscribe(t.Context(), "t", "g", func(_ context.Context, m cqrs.Message) error { got <- m; return nil })
	require.NoError(t, err)
	defer sub.Close()
	data, md := []byte("abc"), map[string]string{"k": "v"}
	require.NoError(t, b.Publish(t.Context(), "t", cqrs.Message{Data: data, Metadata: md}))
	data[0], md["k"] = 'x', "changed"
	m := <-got
	assert.Equal(t, "abc", string(m.Data))
	assert.Equal(t, "v", m.Metadata["k"])
}

// A projection subscribes as a consumer group; publishers need not know it.
func ExampleMemoryBus() {
	bus := cqrs.NewMemoryBus()
	defer bus.Close()
	ctx := context.Background()

	done := make(chan struct{})
	sub, err := bus.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m cqrs.Message) error {
		fmt.Printf("%s %s (delivery %d)\n", m.Type, m.Data, m.Delivery)
		close(done)
		return nil
	}, cqrs.WithMaxDeliver(3), cqrs.WithDeadLetter(func(ctx context.Context, m cqrs.Message, err error) {
		log.Printf("giving up on %s: %v", m.ID, err)
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	if err := bus.Publish(ctx, "orders", cqrs.Message{ID: "1", Type: "OrderPlaced", Data: []byte(`{"id":42}`)}); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: OrderPlaced {"id":42} (delivery 1)
}
