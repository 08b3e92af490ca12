package natsbus_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
)

// The relay publishes to the bus events whose metadata the event store
// accepts and no header holds as it is (keys with spaces or ':', values
// with line breaks or padding), and moves past an event larger than the
// server takes once its dead-letter function took it: regression for
// such an event stalling the outbox for good.
func TestRelayCarriesEveryEvent(t *testing.T) {
	t.Parallel()
	bus, _, _ := newBus(t)
	ctx := ctxWithin(t, 10*time.Second)
	store := &eventsource.MemoryStore{}
	odd := map[string]string{"with space": "v", "a:b": "line\nbreak", "padded": "  x  ", "traceparent": "bogus"}
	_, err := store.Append(ctx, "s", eventsource.Any,
		eventsource.NewEvent{Type: "odd.v1", Data: []byte("{}"), Metadata: odd},
		eventsource.NewEvent{Type: "huge.v1", Data: bytes.Repeat([]byte("x"), 2<<20)}, // beyond max_payload
		eventsource.NewEvent{Type: "after.v1", Data: []byte("{}")})
	require.NoError(t, err)

	c := newCollector()
	subscribe(t, bus, "events", "g", c.handle)
	var dead []string
	relay, err := cqrs.NewRelay("outbox", store, bus, &cqrs.MemoryCheckpoints{},
		func(eventsource.Event) string { return "events" },
		cqrs.WithRelayDeadLetter(func(_ context.Context, e eventsource.Event, err error) error {
			assert.ErrorIs(t, err, cqrs.ErrInvalidMessage)
			dead = append(dead, e.Type)
			return nil
		}))
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	waitFor(t, 5*time.Second, "two events", func() bool { return c.len() >= 2 })
	cancel()
	require.NoError(t, <-done)
	got := c.snapshot()
	require.Len(t, got, 2)
	assert.Equal(t, "odd.v1", got[0].Type)
	for k, v := range odd {
		if k != "traceparent" {
			assert.Equal(t, v, got[0].Metadata[k], "metadata %q", k)
		}
	}
	assert.Equal(t, "after.v1", got[1].Type)
	assert.Equal(t, []string{"huge.v1"}, dead)
}
