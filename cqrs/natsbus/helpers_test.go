package natsbus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// connect returns a JetStream context on a connection of its own to the
// server of PATTERNS_NATS_URL, closed when the test ends, or skips the
// test.
func connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(testenv.NATSURL(t), nats.Name(t.Name()))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// names returns a stream name and a subject prefix private to this test
// run; the stream is deleted when the test ends.
func names(t testing.TB) (stream, prefix string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	stream, prefix = "natsbus_test_"+id, "natsbustest."+id+"."
	url := testenv.NATSURL(t)
	t.Cleanup(func() {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Errorf("deleting stream %s: %v", stream, err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Errorf("deleting stream %s: %v", stream, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("deleting stream %s: %v", stream, err)
		}
	})
	return stream, prefix
}

// subject returns the subject of topic on the bus whose stream is stream,
// as newBus makes it.
func subject(stream, topic string) string {
	return "natsbustest." + strings.TrimPrefix(stream, "natsbus_test_") + "." + topic
}

// assertLinksTo fails the test unless span s links to the span of sc.
func assertLinksTo(t testing.TB, s sdktrace.ReadOnlySpan, sc trace.SpanContext) {
	t.Helper()
	for _, l := range s.Links() {
		if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
			return
		}
	}
	t.Errorf("span %q links to %v; want a link to span %s of trace %s", s.Name(), s.Links(), sc.SpanID(), sc.TraceID())
}

// newBus returns a bus with a stream of the test's own, set up, on a
// connection of its own.
func newBus(t testing.TB, opts ...natsbus.Option) (*natsbus.Bus, jetstream.JetStream, string) {
	t.Helper()
	stream, prefix := names(t)
	_, js := connect(t)
	bus, err := natsbus.New(js, append([]natsbus.Option{natsbus.WithStream(stream), natsbus.WithSubjectPrefix(prefix)}, opts...)...)
	require.NoError(t, err)
	require.NoError(t, bus.Setup(ctxWithin(t, 5*time.Second)))
	return bus, js, stream
}

// subscribe subscribes and closes the subscription when the test ends
// (before its connection closes).
func subscribe(t testing.TB, bus cqrs.EventBus, topic, group string, h cqrs.Handler, opts ...cqrs.SubscribeOption) cqrs.Subscription {
	t.Helper()
	sub, err := bus.Subscribe(ctxWithin(t, 5*time.Second), topic, group, h, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// ctxWithin returns a context that ends after d, or with the test.
func ctxWithin(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// msgs returns n messages with IDs prefix-0 … prefix-(n-1).
func msgs(prefix string, n int) []cqrs.Message {
	out := make([]cqrs.Message, n)
	for i := range out {
		out[i] = cqrs.Message{
			ID:   fmt.Sprintf("%s-%d", prefix, i),
			Type: "test.event.v1",
			Data: []byte(fmt.Sprintf(`{"n":%d}`, i)),
		}
	}
	return out
}

// collector records the messages a handler receives.
type collector struct {
	mu   sync.Mutex
	msgs []cqrs.Message
	ch   chan struct{} // signalled on each message
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) handle(_ context.Context, m cqrs.Message) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) snapshot() []cqrs.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]cqrs.Message(nil), c.msgs...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fastBackoff(int) time.Duration { return 10 * time.Millisecond }

// sum returns the sum of the data points of the int64 counter name that
// carry every attribute of attrs.
func sum(t testing.TB, tp *telemetrytest.Providers, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	d, ok := tp.Metric(t, name).Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("metric %q is not an int64 sum", name)
	}
	var total int64
points:
	for _, dp := range d.DataPoints {
		for _, kv := range attrs {
			if v, ok := dp.Attributes.Value(kv.Key); !ok || v != kv.Value {
				continue points
			}
		}
		total += dp.Value
	}
	return total
}

// histogramCount returns the number of measurements in the data points of
// the float64 histogram name that carry every attribute of attrs.
func histogramCount(t testing.TB, tp *telemetrytest.Providers, name string, attrs ...attribute.KeyValue) uint64 {
	t.Helper()
	h, ok := tp.Metric(t, name).Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("metric %q is not a float64 histogram", name)
	}
	var total uint64
points:
	for _, dp := range h.DataPoints {
		for _, kv := range attrs {
			if v, ok := dp.Attributes.Value(kv.Key); !ok || v != kv.Value {
				continue points
			}
		}
		total += dp.Count
	}
	return total
}
