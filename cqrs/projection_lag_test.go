package cqrs_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// gate is a projection that handles events until it reaches the position
// in stopAt, where it waits for release.
type gate struct {
	name    string
	stopAt  int64
	reached chan struct{}
	release chan struct{}
	handled chan int64
}

func (g *gate) Name() string { return g.name }

func (g *gate) Handle(ctx context.Context, e eventsource.Event) error {
	if e.Position == g.stopAt {
		close(g.reached)
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.handled <- e.Position
	return nil
}

func newGate(name string, stopAt int64) *gate {
	return &gate{name: name, stopAt: stopAt, reached: make(chan struct{}), release: make(chan struct{}), handled: make(chan int64, 100)}
}

// The lag gauge reports, per running projection, the committed events it
// has not handled yet, and stops reporting a projection once it stops.
func TestRunnerReportsProjectionLag(t *testing.T) {
	tel := telemetrytest.New(t)
	store := &eventsource.MemoryStore{}
	runner, err := cqrs.NewRunner(store, &cqrs.MemoryCheckpoints{}, cqrs.WithMeterProvider(tel.MeterProvider))
	require.NoError(t, err)
	defer runner.Close()
	appendN(t, store, "a", 10)

	slow, fast := newGate("slow", 4), newGate("fast", 0)
	require.NoError(t, runner.Start(slow))
	require.NoError(t, runner.Start(fast))
	<-slow.reached
	for range 10 {
		<-fast.handled
	}
	lag := func(name string) int64 {
		return tel.Int64(t, "cqrs.projection.lag", attribute.String("cqrs.projection", name))
	}
	// The fast projection's checkpoint is saved after its last Handle
	// returned; wait for it.
	require.Eventually(t, func() bool { return lag("fast") == 0 && lag("slow") == 7 }, 5*time.Second, time.Millisecond,
		"slow handled 3 of 10 events, fast all of them")

	appendN(t, store, "a", 2)
	require.Eventually(t, func() bool { return lag("slow") == 9 }, 5*time.Second, time.Millisecond)
	close(slow.release)
	require.Eventually(t, func() bool { return lag("slow") == 0 && lag("fast") == 0 }, 5*time.Second, time.Millisecond)

	runner.Stop("slow")
	points := tel.Metric(t, "cqrs.projection.lag").Data
	assert.Contains(t, tel.Describe(t, "cqrs.projection.lag"), "fast")
	assert.NotContains(t, tel.Describe(t, "cqrs.projection.lag"), "slow", "a stopped projection is not reported: %v", points)
}

// A store that cannot tell its head gets no lag gauge, and nothing fails.
func TestRunnerWithoutHeadReportsNoLag(t *testing.T) {
	tel := telemetrytest.New(t)
	store := struct{ eventsource.Store }{&eventsource.MemoryStore{}}
	runner, err := cqrs.NewRunner(store, &cqrs.MemoryCheckpoints{}, cqrs.WithMeterProvider(tel.MeterProvider))
	require.NoError(t, err)
	defer runner.Close()
	appendN(t, store, "a", 3)
	g := newGate("p", 0)
	require.NoError(t, runner.Start(g))
	for range 3 {
		<-g.handled
	}
	assert.False(t, tel.HasMetric(t, "cqrs.projection.lag"))
}

// stalledHead is a store whose Head, once stalled, waits until released,
// as a query to a database that stopped answering does.
type stalledHead struct {
	*eventsource.MemoryStore
	calls   atomic.Int64
	stalled atomic.Bool
	release chan struct{}
}

func (s *stalledHead) Head(ctx context.Context) (int64, error) {
	s.calls.Add(1)
	if s.stalled.Load() {
		<-s.release
		return 0, context.DeadlineExceeded
	}
	return s.MemoryStore.Head(ctx)
}

// A metric collection runs no query: the gauge's callback used to read the
// store's head, so a stalled database held up every collection of the
// process. The head is read by the runner, and the callback reports the
// value last read.
func TestRunnerLagCollectionRunsNoQuery(t *testing.T) {
	tel := telemetrytest.New(t)
	store := &stalledHead{MemoryStore: &eventsource.MemoryStore{}, release: make(chan struct{})}
	runner, err := cqrs.NewRunner(store, &cqrs.MemoryCheckpoints{}, cqrs.WithMeterProvider(tel.MeterProvider))
	require.NoError(t, err)
	defer runner.Close()
	appendN(t, store, "a", 5)
	g := newGate("p", 3)
	require.NoError(t, runner.Start(g))
	<-g.reached
	require.Equal(t, int64(1), store.calls.Load(), "the runner reads the head when the projection starts")
	store.stalled.Store(true)
	defer close(store.release) // before Close waits for the stalled read

	lag := func() int64 {
		got := make(chan int64, 1)
		go func() { got <- tel.Int64(t, "cqrs.projection.lag", attribute.String("cqrs.projection", "p")) }()
		select {
		case v := <-got:
			return v
		case <-time.After(3 * time.Second):
			t.Fatal("a collection waited for the store's head")
			return 0
		}
	}
	assert.Equal(t, int64(3), lag(), "5 committed, 2 handled")
	// Once collected, the runner reads the head every second: that read
	// is stuck now, and collections go on without it.
	require.Eventually(t, func() bool { return store.calls.Load() == 2 }, 5*time.Second, 5*time.Millisecond)
	for range 20 {
		assert.Equal(t, int64(3), lag())
	}
	assert.Equal(t, int64(2), store.calls.Load(), "Head calls: the collections ran none")
	close(g.release)
}
