package projlag_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/projlag"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// heads is a store whose Head counts its calls and, while blocked, waits
// until released, as a query to an unresponsive database does.
type heads struct {
	*eventsource.MemoryStore
	calls   atomic.Int64
	blocked atomic.Bool
	release chan struct{}
	marked  atomic.Bool // every call had a Refreshing context
}

func newHeads() *heads {
	h := &heads{MemoryStore: &eventsource.MemoryStore{}, release: make(chan struct{})}
	h.marked.Store(true)
	return h
}

func (h *heads) Head(ctx context.Context) (int64, error) {
	h.calls.Add(1)
	if !projlag.Refreshing(ctx) {
		h.marked.Store(false)
	}
	if h.blocked.Load() {
		<-h.release
		return 0, context.DeadlineExceeded
	}
	return h.MemoryStore.Head(ctx)
}

func appendN(t *testing.T, s eventsource.Store, n int) {
	t.Helper()
	for range n {
		_, err := s.Append(context.Background(), "s", eventsource.Any, eventsource.NewEvent{Type: "t"})
		require.NoError(t, err)
	}
}

func lagOf(t *testing.T, p *telemetrytest.Providers, name string) int64 {
	t.Helper()
	return p.Int64(t, projlag.Name, projlag.AttrProjection.String(name))
}

// collectWithin collects the metrics, failing the test if that takes
// longer than d.
func collectWithin(t *testing.T, p *telemetrytest.Providers, d time.Duration, name string) int64 {
	t.Helper()
	got := make(chan int64, 1)
	go func() { got <- p.Int64(t, projlag.Name, projlag.AttrProjection.String(name)) }()
	select {
	case v := <-got:
		return v
	case <-time.After(d):
		t.Fatalf("a collection took more than %v: it waits for the store", d)
		return 0
	}
}

// TestCollectionRunsNoQuery protects the promise that a metric collection
// never waits for the store: the gauge's callback used to read the head
// itself, so a database that stopped answering held up every collection
// of the process, and every reader added a query per collection.
func TestCollectionRunsNoQuery(t *testing.T) {
	p := telemetrytest.New(t)
	store := newHeads()
	appendN(t, store, 5)
	g := projlag.New(p.MeterProvider.Meter("test"), store, 5*time.Millisecond)
	defer g.Close()
	pos := g.Track(context.Background(), "p", 2) // reads the head: 5
	defer g.Untrack("p", pos)
	require.Equal(t, int64(1), store.calls.Load(), "Track reads the head")

	store.blocked.Store(true)
	defer close(store.release) // before Untrack waits for the refresher
	assert.Equal(t, int64(3), collectWithin(t, p, 2*time.Second, "p"))
	// The refresher reads the head once a reader has collected: it is now
	// stuck in Head, and the only one reading it.
	require.Eventually(t, func() bool { return store.calls.Load() == 2 }, 5*time.Second, time.Millisecond)
	for range 50 {
		assert.Equal(t, int64(3), collectWithin(t, p, 2*time.Second, "p"), "the head last read, less the position")
	}
	assert.Equal(t, int64(2), store.calls.Load(), "Head calls: collections ran none")
	assert.True(t, store.marked.Load(), "the gauge's reads carry a Refreshing context")
}

// TestLagFollowsTheHead: the head is read every refresh interval, so the
// lag grows with appends while the projection's position stays.
func TestLagFollowsTheHead(t *testing.T) {
	p := telemetrytest.New(t)
	store := newHeads()
	appendN(t, store, 4)
	g := projlag.New(p.MeterProvider.Meter("test"), store, 5*time.Millisecond)
	defer g.Close()
	pos := g.Track(context.Background(), "p", 0)
	defer g.Untrack("p", pos)
	assert.Equal(t, int64(4), lagOf(t, p, "p"))
	appendN(t, store, 3)
	require.Eventually(t, func() bool { return lagOf(t, p, "p") == 7 }, 5*time.Second, time.Millisecond)
	pos.Store(7)
	assert.Equal(t, int64(0), lagOf(t, p, "p"))
	pos.Store(9) // ahead of the head last read
	assert.Equal(t, int64(0), lagOf(t, p, "p"), "never negative")
}

// TestNoReadsWithoutReader: with no reader collecting the gauge, nothing
// reads the head after Track.
func TestNoReadsWithoutReader(t *testing.T) {
	p := telemetrytest.New(t)
	store := newHeads()
	g := projlag.New(p.MeterProvider.Meter("test"), store, time.Millisecond)
	defer g.Close()
	pos := g.Track(context.Background(), "p", 0)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, int64(1), store.calls.Load(), "Head calls with no collection")
	g.Untrack("p", pos)
}

// TestUntrack: an untracked projection is not reported, and once none is
// tracked the head is not read any more (goleak checks the goroutine).
func TestUntrack(t *testing.T) {
	p := telemetrytest.New(t)
	store := newHeads()
	appendN(t, store, 2)
	g := projlag.New(p.MeterProvider.Meter("test"), store, time.Millisecond)
	defer g.Close()
	a := g.Track(context.Background(), "a", 0)
	b := g.Track(context.Background(), "b", 1)
	assert.Equal(t, int64(2), lagOf(t, p, "a"))
	assert.Equal(t, int64(1), lagOf(t, p, "b"))
	g.Untrack("a", a)
	assert.NotContains(t, p.Describe(t, projlag.Name), `"a"`)
	stale := &projlag.Position{}
	g.Untrack("b", stale) // not b's: b stays
	assert.Equal(t, int64(1), lagOf(t, p, "b"))
	g.Untrack("b", b)
	calls := store.calls.Load()
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, calls, store.calls.Load(), "Head calls once nothing is tracked")
	if p.HasMetric(t, projlag.Name) {
		for _, set := range telemetrytest.AttributeSets(p.Metric(t, projlag.Name)) {
			t.Errorf("a series after Untrack: %v", set.ToSlice())
		}
	}
}

// TestStoreWithoutHead: a store that cannot tell its head gets no gauge.
func TestStoreWithoutHead(t *testing.T) {
	p := telemetrytest.New(t)
	g := projlag.New(p.MeterProvider.Meter("test"), struct{ eventsource.Store }{&eventsource.MemoryStore{}}, 0)
	pos := g.Track(context.Background(), "p", 0)
	g.Untrack("p", pos)
	g.Close()
	assert.False(t, p.HasMetric(t, projlag.Name))
}

func TestGaugeConforms(t *testing.T) {
	p := telemetrytest.New(t)
	store := newHeads()
	appendN(t, store, 1)
	g := projlag.New(p.MeterProvider.Meter("test"), store, 0)
	pos := g.Track(context.Background(), "p", 0)
	p.CheckMetrics(t, "test", []telemetrytest.Instrument{{Name: projlag.Name, Kind: telemetrytest.Gauge, Unit: projlag.Unit,
		Required: []attribute.Key{projlag.AttrProjection}}}, projlag.Name)
	g.Untrack("p", pos)
	g.Close()
	g.Close() // idempotent
}
