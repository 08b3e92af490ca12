package kafkabus_test

import (
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
)

// TestPublishBatchKeepsEachMessage publishes one batch of messages that
// differ in every part a record is made of (IDs, types, keys of WithKey
// longer than the topic, the topic as key, metadata of several sizes,
// metadata keys the bus escapes, a creation context of their own or none)
// and reads every record back, bare and through a subscription: each
// carries its own message, key and headers and no other's. A publication
// copies the messages' strings into one buffer and their headers into one
// slice; a slip in the slicing would show here. Not parallel: it sets the
// global propagator.
func TestPublishBatchKeepsEachMessage(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	c := newCluster(t, 1)
	key := func(m cqrs.Message) string {
		if strings.HasSuffix(m.ID, "0") {
			return "" // keyed by the topic
		}
		return strings.Repeat("k"+m.ID, 40)
	}
	bus := newBus(t, c, kafkabus.WithKey(key))
	ctx := ctxWithin(t, 20*time.Second)
	// The publish context's span context goes into the messages that carry
	// none (no span of the bus's own starts: the tracer provider is the
	// global no-op one).
	pubSC := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{7}, TraceFlags: trace.FlagsSampled})
	pubCtx := trace.ContextWithRemoteSpanContext(ctx, pubSC)
	ownSC := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, TraceFlags: trace.FlagsSampled})
	own := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(trace.ContextWithSpanContext(ctx, ownSC), own)
	pubTrace := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(pubCtx, pubTrace)

	const n = 40
	msgs := make([]cqrs.Message, n)
	want := map[string]cqrs.Message{}
	for i := range msgs {
		id := "m" + strconv.Itoa(i)
		m := cqrs.Message{ID: id, Type: strings.Repeat("t", i%7), Data: []byte("data of " + id)}
		if i%3 != 0 {
			m.Key = "stream-" + strconv.Itoa(i%5)
		}
		md := map[string]string{}
		for j := range i % 4 {
			md["md"+strconv.Itoa(j)] = strings.Repeat(id, j+1)
		}
		if i%5 == 1 {
			md["cqrs-own"] = "escaped " + id
		}
		if i%6 == 2 {
			maps.Copy(md, own)
		}
		if len(md) > 0 {
			m.Metadata = md
		}
		msgs[i] = m
		w := m
		w.Topic = "orders"
		w.Delivery = 1
		w.Metadata = maps.Clone(md)
		if i%6 != 2 {
			maps.Copy(w.Metadata, pubTrace)
		}
		want[id] = w
	}
	require.NoError(t, bus.Publish(pubCtx, "orders", msgs...))

	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...), kgo.ConsumeTopics(bus.KafkaTopic("orders")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, fastClient...)...)
	require.NoError(t, err)
	defer cl.Close()
	keys := map[string]string{}
	for len(keys) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "cqrs-id" {
					keys[string(h.Value)] = string(r.Key)
				}
			}
		})
	}
	for _, m := range msgs {
		wantKey := key(m)
		if wantKey == "" {
			wantKey = bus.KafkaTopic("orders")
		}
		if keys[m.ID] != wantKey {
			t.Errorf("record key of %s = %q; want %q", m.ID, keys[m.ID], wantKey)
		}
	}

	got := &collector{}
	subscribe(t, bus, "orders", "reader", got.handle)
	waitFor(t, 10*time.Second, "every message", func() bool { return len(got.messages()) >= n })
	for _, m := range got.messages() {
		require.Equal(t, want[m.ID], m, "message %s", m.ID)
	}
}

// TestPublishNamesTheFailedMessage: the error of a publication names the
// message that failed, by its place in the batch and its ID, and the
// others are stored.
func TestPublishNamesTheFailedMessage(t *testing.T) {
	c := newCluster(t, 1)
	bus := newBus(t, c)
	ctx := ctxWithin(t, 20*time.Second)
	// Larger than the producer's batch limit (1 MB by default).
	big := cqrs.Message{ID: "big", Data: make([]byte, 2<<20)}
	err := bus.Publish(ctx, "orders", cqrs.Message{ID: "a"}, cqrs.Message{ID: "b"}, big, cqrs.Message{ID: "c"})
	require.ErrorIs(t, err, cqrs.ErrInvalidMessage)
	require.ErrorContains(t, err, "message 2 (big)")
	got := &collector{}
	subscribe(t, bus, "orders", "reader", got.handle)
	waitFor(t, 10*time.Second, "the other messages", func() bool { return len(got.messages()) == 3 })
}
