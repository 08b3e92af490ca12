package natsbus_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
)

// A dead-lettered message is delivered no more, on the server the tests
// run against (nats-server 2.9.10 on our machines, which ignores a
// terminate with a reason): regression for dead letters delivered again
// every AckWait, DeadLetter running again each time.
func TestDeadLetterIsFinal(t *testing.T) {
	t.Parallel()
	bus, _, _ := newBus(t, natsbus.WithAckWait(time.Second))
	var deliveries, deadLetters atomic.Int32
	subscribe(t, bus, "t", "g", func(context.Context, cqrs.Message) error {
		deliveries.Add(1)
		return errors.New("always fails")
	}, cqrs.WithMaxDeliver(2), cqrs.WithRedeliveryBackoff(fastBackoff),
		cqrs.WithDeadLetter(func(context.Context, cqrs.Message, error) { deadLetters.Add(1) }))
	require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("final", 1)...))
	waitFor(t, 5*time.Second, "the dead letter", func() bool { return deadLetters.Load() >= 1 })
	time.Sleep(3500 * time.Millisecond) // three AckWaits: a redelivery would show by now
	assert.EqualValues(t, 2, deliveries.Load(), "deliveries")
	assert.EqualValues(t, 1, deadLetters.Load(), "DeadLetter calls")
}

// Two groups whose names joined with their topics' read alike have
// consumers of their own, and each receives its own topic's messages
// only: regression for ("billing-eu", "orders") and ("billing",
// "eu-orders") sharing the consumer billing-eu-orders, the second
// Subscribe rewriting its filter.
func TestGroupsWithLookAlikeNamesDoNotShareAConsumer(t *testing.T) {
	t.Parallel()
	bus, _, _ := newBus(t)
	assert.NotEqual(t, natsbus.ConsumerName("billing-eu", "orders"), natsbus.ConsumerName("billing", "eu-orders"))
	a, b := newCollector(), newCollector()
	subscribe(t, bus, "orders", "billing-eu", a.handle)
	subscribe(t, bus, "eu-orders", "billing", b.handle)
	ctx := ctxWithin(t, 5*time.Second)
	require.NoError(t, bus.Publish(ctx, "orders", msgs("orders", 3)...))
	require.NoError(t, bus.Publish(ctx, "eu-orders", msgs("eu", 2)...))
	waitFor(t, 5*time.Second, "every message", func() bool { return a.len() >= 3 && b.len() >= 2 })
	time.Sleep(200 * time.Millisecond)
	for _, m := range a.snapshot() {
		assert.Equal(t, "orders", m.Topic, "group billing-eu of orders got %s", m.ID)
	}
	for _, m := range b.snapshot() {
		assert.Equal(t, "eu-orders", m.Topic, "group billing of eu-orders got %s", m.ID)
	}
	assert.Equal(t, 3, a.len())
	assert.Equal(t, 2, b.len())
}

// ConsumerName is injective: pairs that read alike once joined, or once
// their characters are replaced, and joined names that look hashed, all
// get names of their own, valid and at most 64 bytes long.
func TestConsumerNameIsInjective(t *testing.T) {
	t.Parallel()
	pairs := [][2]string{
		{"billing-eu", "orders"}, {"billing", "eu-orders"}, {"billing-eu-orders", "x"},
		{"a-b", "c"}, {"a", "b-c"}, {"a", "b"}, {"a-", "b"}, {"a", "-b"}, {"a", "--b"}, {"a-", "-b"},
		{"a.b", "t"}, {"a_b", "t"}, {"a b", "t"}, {"a", "b.t"}, {"a", "b_t"},
		{"g", "t-0123456789abcdef"}, {"g-t", "0123456789abcdef"},
		{strings.Repeat("x", 100), "t"}, {strings.Repeat("x", 100), "u"}, {"", "t"}, {"g", ""},
	}
	// The hashed name of a pair, as a joined name of another.
	h := natsbus.ConsumerName("a.b", "t")
	pairs = append(pairs, [2]string{h[:strings.IndexByte(h, '-')], h[strings.IndexByte(h, '-')+1:]})
	seen := map[string][2]string{}
	for _, p := range pairs {
		got := natsbus.ConsumerName(p[0], p[1])
		assert.False(t, strings.ContainsAny(got, ".*> \t/\\"), "ConsumerName(%q, %q) = %q", p[0], p[1], got)
		assert.LessOrEqual(t, len(got), 64, "ConsumerName(%q, %q) = %q", p[0], p[1], got)
		if prev, ok := seen[got]; ok {
			t.Errorf("ConsumerName(%q, %q) = %q, as for %q", p[0], p[1], got, prev)
		}
		seen[got] = p
	}
	// Groups without '-' keep the names they had.
	assert.Equal(t, "billing-orders-placed", natsbus.ConsumerName("billing", "orders-placed"))
}

// A group whose consumer name changed (its name holds '-') takes over
// where the consumer of its old name stopped, rather than start again
// with the oldest message.
func TestRenamedGroupTakesOverItsOldConsumer(t *testing.T) {
	t.Parallel()
	bus, js, stream := newBus(t)
	ctx := ctxWithin(t, 10*time.Second)
	const group, topic = "billing-eu", "orders"
	require.NoError(t, bus.Publish(ctx, topic, msgs("old", 10)...))
	// The consumer as the previous version created it, having handled
	// the first six messages.
	old, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       group + "-" + topic,
		Description:   "natsbus group " + group + " of topic " + topic,
		FilterSubject: subject(stream, topic),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       natsbus.DefaultAckWait,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1000,
	})
	require.NoError(t, err)
	batch, err := old.Fetch(6, jetstream.FetchMaxWait(2*time.Second))
	require.NoError(t, err)
	for m := range batch.Messages() {
		require.NoError(t, m.DoubleAck(ctx))
	}
	require.NoError(t, batch.Error())
	require.NotEqual(t, group+"-"+topic, natsbus.ConsumerName(group, topic))

	c := newCollector()
	subscribe(t, bus, topic, group, c.handle)
	waitFor(t, 5*time.Second, "the four messages left", func() bool { return c.len() >= 4 })
	time.Sleep(200 * time.Millisecond)
	var got []string
	for _, m := range c.snapshot() {
		got = append(got, m.ID)
	}
	assert.Equal(t, []string{"old-6", "old-7", "old-8", "old-9"}, got)

	// Another group with a look-alike old name does not take it over.
	other := newCollector()
	subscribe(t, bus, topic, "billing", other.handle)
	waitFor(t, 5*time.Second, "every message", func() bool { return other.len() >= 10 })
}
