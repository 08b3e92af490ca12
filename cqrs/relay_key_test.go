package cqrs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
)

// The Relay keys each message by its event's stream ID, so that a bus that
// partitions (cqrs/kafkabus) keeps one aggregate's events in order.
func TestRelayKeysMessagesByStream(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus := &recordingBus{}
	relay, err := cqrs.NewRelay("outbox", store, bus, &cqrs.MemoryCheckpoints{}, func(eventsource.Event) string { return "things" })
	require.NoError(t, err)
	appendN(t, store, "order-1", 2)
	appendN(t, store, "order-2", 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- relay.Run(ctx) }()
	require.Eventually(t, func() bool { return len(bus.ids()) == 3 }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	bus.mu.Lock()
	defer bus.mu.Unlock()
	var keys []string
	for _, m := range bus.published {
		keys = append(keys, m.Key)
	}
	assert.Equal(t, []string{"order-1", "order-1", "order-2"}, keys)
}

// The memory bus delivers a message's Key as published.
func TestMemoryBusDeliversTheKey(t *testing.T) {
	b := cqrs.NewMemoryBus()
	t.Cleanup(func() { _ = b.Close() })
	got := make(chan cqrs.Message, 1)
	sub, err := b.Subscribe(context.Background(), "things", "g", func(_ context.Context, m cqrs.Message) error {
		got <- m
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	require.NoError(t, b.Publish(context.Background(), "things", cqrs.Message{ID: "1", Key: "order-1"}))
	assert.Equal(t, "order-1", (<-got).Key)
}
