package cqrs_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// recordingBus is an EventBus that records what is published and can be
// told to fail.
type recordingBus struct {
	mu        sync.Mutex
	published []cqrs.Message
	failOn    string // message ID whose publish fails once
}

func (b *recordingBus) Publish(ctx context.Context, topic string, msgs ...cqrs.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range msgs {
		if m.ID == b.failOn {
			b.failOn = ""
			return errors.New("bus down")
		}
		b.published = append(b.published, m)
	}
	return nil
}

func (b *recordingBus) Subscribe(context.Context, string, string, cqrs.Handler, ...cqrs.SubscribeOption) (cqrs.Subscription, error) {
	return nil, errors.New("not implemented")
}

func (b *recordingBus) ids() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for _, m := range b.published {
		ids = append(ids, m.ID)
	}
	return ids
}

func appendN(t *testing.T, store eventsource.Store, stream string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		evs, err := store.Append(context.Background(), stream, eventsource.Any, eventsource.NewEvent{Type: "thing.happened", Data: []byte("{}")})
		require.NoError(t, err)
		ids = append(ids, evs[0].ID.String())
	}
	return ids
}

func TestRelayPublishesEveryCommittedEventOnce(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus := &recordingBus{}
	checkpoints := &cqrs.MemoryCheckpoints{}
	relay, err := cqrs.NewRelay("outbox", store, bus, checkpoints, func(e eventsource.Event) string { return "things" })
	require.NoError(t, err)

	want := appendN(t, store, "a", 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- relay.Run(ctx) }()
	want = append(want, appendN(t, store, "b", 2)...) // live, after catch-up
	require.Eventually(t, func() bool { return len(bus.ids()) == 5 }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, want, bus.ids(), "in global order, each once")
	pos, _ := checkpoints.LoadCheckpoint(context.Background(), "outbox")
	assert.Equal(t, int64(5), pos)

	// A restarted relay resumes after its checkpoint.
	want = append(want, appendN(t, store, "c", 1)...)
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- relay.Run(ctx) }()
	require.Eventually(t, func() bool { return len(bus.ids()) == 6 }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, want, bus.ids())
}

func TestRelayResumesAfterAPublishFailure(t *testing.T) {
	store := &eventsource.MemoryStore{}
	ids := appendN(t, store, "a", 3)
	bus := &recordingBus{failOn: ids[1]}
	relay, err := cqrs.NewRelay("outbox", store, bus, &cqrs.MemoryCheckpoints{}, func(eventsource.Event) string { return "t" })
	require.NoError(t, err)
	err = relay.Run(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bus down")
	assert.Equal(t, ids[:1], bus.ids())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- relay.Run(ctx) }()
	require.Eventually(t, func() bool { return len(bus.ids()) == 3 }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, ids, bus.ids(), "nothing lost, nothing twice")
}

func TestNewRelayErrors(t *testing.T) {
	_, err := cqrs.NewRelay("", nil, nil, nil, nil)
	require.Error(t, err)
	for _, w := range []string{"empty name", "nil store", "nil bus", "nil checkpoint store", "nil topic function"} {
		assert.Contains(t, err.Error(), w)
	}
}

// balances is a projection of account events into a map.
type balances struct {
	mu     sync.Mutex
	seen   map[int64]bool
	counts map[string]int
	fail   int64 // position whose first Handle fails
}

func (b *balances) Name() string { return "balances" }

func (b *balances) Handle(ctx context.Context, e eventsource.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.Position == b.fail {
		b.fail = 0
		return errors.New("read model down")
	}
	if b.seen[e.Position] { // idempotent on redelivery
		return nil
	}
	b.seen[e.Position] = true
	b.counts[e.StreamID]++
	return nil
}

func (b *balances) Reset(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen, b.counts = map[int64]bool{}, map[string]int{}
	return nil
}

func (b *balances) count(stream string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts[stream]
}

func TestRunner(t *testing.T) {
	store := &eventsource.MemoryStore{}
	checkpoints := &cqrs.MemoryCheckpoints{}
	runner, err := cqrs.NewRunner(store, checkpoints)
	require.NoError(t, err)
	defer runner.Close()
	p := &balances{seen: map[int64]bool{}, counts: map[string]int{}}
	appendN(t, store, "a", 2)
	require.NoError(t, runner.Start(p))
	require.Error(t, runner.Start(p), "one runner per projection name")
	appendN(t, store, "a", 1)
	appendN(t, store, "b", 1)
	require.Eventually(t, func() bool { return p.count("a") == 3 && p.count("b") == 1 }, 5*time.Second, time.Millisecond)

	// Rebuild replays everything into an emptied read model.
	require.NoError(t, runner.Rebuild(context.Background(), p))
	require.Eventually(t, func() bool { return p.count("a") == 3 && p.count("b") == 1 }, 5*time.Second, time.Millisecond)
	// The checkpoint is saved after Handle returns: wait for it.
	require.Eventually(t, func() bool {
		pos, _ := checkpoints.LoadCheckpoint(context.Background(), "balances")
		return pos == 4
	}, 5*time.Second, time.Millisecond, "the checkpoint after the rebuild")
}

func TestRunnerStopsOnAFailingProjectionAndResumes(t *testing.T) {
	store := &eventsource.MemoryStore{}
	checkpoints := &cqrs.MemoryCheckpoints{}
	runner, err := cqrs.NewRunner(store, checkpoints)
	require.NoError(t, err)
	defer runner.Close()
	p := &balances{seen: map[int64]bool{}, counts: map[string]int{}, fail: 2}
	appendN(t, store, "a", 3)
	require.NoError(t, runner.Start(p))
	require.Eventually(t, func() bool { return runner.Err("balances") != nil }, 5*time.Second, time.Millisecond)
	assert.Contains(t, runner.Err("balances").Error(), "event 2")
	assert.Equal(t, 1, p.count("a"), "stopped at the failing event")
	require.NoError(t, runner.Start(p), "restart after the read model is back")
	require.Eventually(t, func() bool { return p.count("a") == 3 }, 5*time.Second, time.Millisecond)
	assert.NoError(t, runner.Err("balances"))
}

func TestRunnerRejectsNilProjection(t *testing.T) {
	runner, err := cqrs.NewRunner(&eventsource.MemoryStore{}, &cqrs.MemoryCheckpoints{})
	require.NoError(t, err)
	defer runner.Close()
	require.Error(t, runner.Start(nil))
	require.Error(t, runner.Rebuild(context.Background(), nil))
}

// The relay publishes each event in the context its append recorded, and
// its publish span links to that context, not only continues it: the
// message keeps it as its creation context (regression: the span was only
// a child of it, and the message carried the publish span's instead).
func TestRelayPublishLinksToTheAppend(t *testing.T) { // not parallel: sets the global propagator
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	tel := telemetrytest.New(t)
	store := &eventsource.MemoryStore{}
	bus := cqrs.NewMemoryBus(cqrs.WithTracerProvider(tel.TracerProvider))
	t.Cleanup(func() { _ = bus.Close() })
	got := make(chan cqrs.Message, 1)
	sub, err := bus.Subscribe(t.Context(), "things", "g", func(_ context.Context, m cqrs.Message) error {
		got <- m
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })

	actx, appendSpan := tel.TracerProvider.Tracer("test").Start(t.Context(), "append")
	evs, err := store.Append(actx, "a", eventsource.Any, eventsource.NewEvent{Type: "thing.happened", Data: []byte("{}")})
	require.NoError(t, err)
	appendSpan.End()

	relay, err := cqrs.NewRelay("outbox", store, bus, &cqrs.MemoryCheckpoints{}, func(eventsource.Event) string { return "things" })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	var m cqrs.Message
	select {
	case m = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the event was not published")
	}
	cancel()
	if err := <-done; err != nil {
		require.ErrorIs(t, err, context.Canceled)
	}

	assert.Equal(t, evs[0].Metadata["traceparent"], m.Metadata["traceparent"], "the message keeps its event's creation context")
	// The handler may run before the publish span ends.
	require.Eventually(t, func() bool { return endedSpan(tel, "publish things") != nil }, 5*time.Second, time.Millisecond)
	pub := endedSpan(tel, "publish things")
	assert.Equal(t, appendSpan.SpanContext().SpanID(), pub.Parent().SpanID(), "publish continues the append")
	assertLinksTo(t, pub, appendSpan.SpanContext())
	require.Eventually(t, func() bool { return endedSpan(tel, "process things") != nil }, 5*time.Second, time.Millisecond)
	proc := endedSpan(tel, "process things")
	assert.Equal(t, appendSpan.SpanContext().SpanID(), proc.Parent().SpanID(), "process continues the append")
	assertLinksTo(t, proc, appendSpan.SpanContext())
}
