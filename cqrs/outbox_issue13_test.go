package cqrs_test

import (
	"context"
	"errors"
	"iter"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// blockingBus is an EventBus whose Publish waits for its context to end
// and returns its error, as a bus whose server does not answer.
type blockingBus struct {
	recordingBus
	entered chan struct{}
}

func (b *blockingBus) Publish(ctx context.Context, topic string, msgs ...cqrs.Message) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// Run returns nil when its context ends while it publishes, as Runner and
// Project do: regression for it returning the publish's context error.
func TestRelayRunReturnsNilWhenCanceledMidPublish(t *testing.T) {
	store := &eventsource.MemoryStore{}
	appendN(t, store, "a", 1)
	bus := &blockingBus{entered: make(chan struct{}, 1)}
	relay, err := cqrs.NewRelay("outbox", store, bus, &cqrs.MemoryCheckpoints{}, func(eventsource.Event) string { return "t" })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	select {
	case <-bus.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not publish within 5s")
	}
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "Run after its context ended")
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending")
	}
}

// flakyStore is a store whose Subscribe fails once, after yielding the
// events before position failAt, with a transient error.
type flakyStore struct {
	*eventsource.MemoryStore
	failAt int64
	failed atomic.Bool
}

func (s *flakyStore) Subscribe(ctx context.Context, after int64) iter.Seq2[eventsource.Event, error] {
	return func(yield func(eventsource.Event, error) bool) {
		for e, err := range s.MemoryStore.Subscribe(ctx, after) {
			if err == nil && e.Position == s.failAt && !s.failed.Swap(true) {
				yield(eventsource.Event{}, errors.New("connection reset by peer"))
				return
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

// A Runner projection carries on after a transient store error, as its
// documentation says only a handler failure stops it: regression for the
// error stopping it for good.
func TestRunnerSurvivesATransientStoreError(t *testing.T) {
	store := &flakyStore{MemoryStore: &eventsource.MemoryStore{}, failAt: 2}
	appendN(t, store, "acc-1", 3)
	runner, err := cqrs.NewRunner(store, &cqrs.MemoryCheckpoints{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = runner.Close() })
	p := &balances{seen: map[int64]bool{}, counts: map[string]int{}}
	require.NoError(t, runner.Start(p))
	require.Eventually(t, func() bool { return p.count("acc-1") == 3 }, 5*time.Second, time.Millisecond,
		"the projection after a read error: %v", runner.Err(p.Name()))
	assert.True(t, store.failed.Load(), "the store did not fail")
	assert.NoError(t, runner.Err(p.Name()))
}

// An event that the bus can never carry stops the relay at it, every
// time it runs, unless a dead-letter function takes it: then the relay
// moves past it, and counts it.
func TestRelayDeadLetter(t *testing.T) {
	tel := telemetrytest.New(t)
	store := &eventsource.MemoryStore{}
	ids := appendN(t, store, "a", 3)
	bus := cqrs.NewMemoryBus()
	t.Cleanup(func() { _ = bus.Close() })
	got := make(chan cqrs.Message, 3)
	sub, err := bus.Subscribe(context.Background(), "t", "g", func(_ context.Context, m cqrs.Message) error {
		got <- m
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	topic := func(e eventsource.Event) string {
		if e.ID.String() == ids[1] {
			return "" // no topic: the bus cannot carry it
		}
		return "t"
	}

	// Without a dead-letter function, Run stops at the event each time.
	checkpoints := &cqrs.MemoryCheckpoints{}
	relay, err := cqrs.NewRelay("outbox", store, bus, checkpoints, topic)
	require.NoError(t, err)
	for range 2 {
		err := relay.Run(context.Background())
		require.ErrorIs(t, err, cqrs.ErrInvalidMessage)
		pos, _ := checkpoints.LoadCheckpoint(context.Background(), "outbox")
		assert.Equal(t, int64(1), pos)
	}

	// A function that refuses it changes nothing.
	refuse := errors.New("not now")
	relay, err = cqrs.NewRelay("outbox", store, bus, checkpoints, topic,
		cqrs.WithRelayDeadLetter(func(context.Context, eventsource.Event, error) error { return refuse }))
	require.NoError(t, err)
	err = relay.Run(context.Background())
	require.ErrorIs(t, err, refuse)
	require.ErrorIs(t, err, cqrs.ErrInvalidMessage)

	// One that takes it lets the relay go on.
	var dead []string
	relay, err = cqrs.NewRelay("outbox", store, bus, checkpoints, topic, cqrs.WithMeterProvider(tel.MeterProvider),
		cqrs.WithRelayDeadLetter(func(_ context.Context, e eventsource.Event, err error) error {
			assert.ErrorIs(t, err, cqrs.ErrInvalidMessage)
			dead = append(dead, e.ID.String())
			return nil
		}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	var published []string
	for range 2 {
		select {
		case m := <-got:
			published = append(published, m.ID)
		case <-time.After(5 * time.Second):
			t.Fatalf("published %v after 5s", published)
		}
	}
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, []string{ids[0], ids[2]}, published)
	assert.Equal(t, []string{ids[1]}, dead)
	assert.Equal(t, int64(1), tel.Int64(t, cqrs.MetricRelayDeadLetters, cqrs.AttrRelay.String("outbox"),
		semconv.ErrorTypeKey.String("cqrs.invalid_message")))
}
