package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// orderChecker follows a sequence of events and records every way in
// which it is not strictly increasing in position.
type orderChecker struct {
	name     string
	mu       sync.Mutex
	last     int64
	seen     map[uuid.UUID]int64
	problems []string
}

func newOrderChecker(name string) *orderChecker {
	return &orderChecker{name: name, seen: map[uuid.UUID]int64{}}
}

func (c *orderChecker) add(e eventsource.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Position <= c.last {
		c.problems = append(c.problems, fmt.Sprintf("%s: position %d after %d", c.name, e.Position, c.last))
	}
	if p, dup := c.seen[e.ID]; dup {
		c.problems = append(c.problems, fmt.Sprintf("%s: event %v at position %d seen twice (first at %d)", c.name, e.ID, e.Position, p))
	}
	c.last = e.Position
	c.seen[e.ID] = e.Position
}

func (c *orderChecker) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// check compares what the reader saw with the events the writers report
// as committed: each once, at its position, and nothing else.
func (c *orderChecker) check(t *testing.T, committed map[uuid.UUID]int64) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems[:min(len(c.problems), 20)] {
		t.Error(p)
	}
	missing := 0
	for id, pos := range committed {
		got, ok := c.seen[id]
		switch {
		case !ok:
			if missing++; missing <= 10 {
				t.Errorf("%s: committed event %v at position %d was never delivered", c.name, id, pos)
			}
		case got != pos:
			t.Errorf("%s: event %v delivered at position %d; Append returned %d", c.name, id, got, pos)
		}
	}
	if missing > 0 {
		t.Errorf("%s: %d of %d committed events missing", c.name, missing, len(committed))
	}
	for id, pos := range c.seen {
		if _, ok := committed[id]; !ok {
			t.Errorf("%s: delivered event %v at position %d that no append reported", c.name, id, pos)
		}
	}
}

// TestGlobalOrderUnderConcurrentWriters is the test of the ordering
// guarantee: 8 writers append batches of mixed sizes to random streams,
// 3,000 appends in all (a few seconds; at most a minute on a slow
// machine), one in 25 sleeping inside its transaction, holding its id,
// before the commit, while a subscriber and a polling ReadAll reader
// follow the global order. Each reader must see every committed event exactly once,
// in strictly increasing positions: a position that became visible after
// a reader had passed it would be missed.
func TestGlobalOrderUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	const (
		writers = 8
		streams = 24
		target  = 3000             // appends
		limit   = 60 * time.Second // to reach them
	)
	s, _ := newStore(t, writers+4, pgstore.WithPollInterval(50*time.Millisecond))
	var slow atomic.Int64
	pgstore.SetBeforeCommit(s, func(ctx context.Context, _ string) {
		if rand.IntN(25) == 0 { // a long transaction, holding its positions
			slow.Add(1)
			time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
		}
	})
	ctx := testenv.Context(t, limit+30*time.Second)
	readCtx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()

	sub := newOrderChecker("Subscribe")
	poller := newOrderChecker("ReadAll loop")
	var readers sync.WaitGroup
	readErrs := make(chan error, 2)
	readers.Go(func() {
		for e, err := range s.Subscribe(readCtx, 0) {
			if err != nil {
				readErrs <- fmt.Errorf("Subscribe: %w", err)
				return
			}
			sub.add(e)
		}
	})
	readers.Go(func() {
		var pos int64
		for readCtx.Err() == nil {
			for e, err := range s.ReadAll(readCtx, pos) {
				if err != nil {
					if readCtx.Err() == nil {
						readErrs <- fmt.Errorf("ReadAll(%d): %w", pos, err)
					}
					return
				}
				poller.add(e)
				pos = e.Position
			}
			time.Sleep(time.Millisecond)
		}
	})

	sizes := []int{1, 1, 1, 2, 3, 5, 8, 13, 50}
	var mu sync.Mutex
	committed := map[uuid.UUID]int64{}
	var appends atomic.Int64
	deadline := time.Now().Add(limit)
	var writing sync.WaitGroup
	writeErrs := make(chan error, writers)
	for range writers {
		writing.Go(func() {
			for appends.Load() < target && time.Now().Before(deadline) {
				stream := fmt.Sprint("stream-", rand.IntN(streams))
				batch := events(sizes[rand.IntN(len(sizes))], "test.happened.v1")
				got, err := s.Append(ctx, stream, eventsource.Any, batch...)
				if err != nil {
					writeErrs <- fmt.Errorf("Append(%q, %d events) = %w", stream, len(batch), err)
					return
				}
				appends.Add(1)
				mu.Lock()
				for _, e := range got {
					committed[e.ID] = e.Position
				}
				mu.Unlock()
			}
		})
	}
	writing.Wait()
	close(writeErrs)
	for err := range writeErrs {
		t.Fatal(err)
	}

	// Wait for the readers to reach the head.
	for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
		if sub.count() >= len(committed) && poller.count() >= len(committed) {
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // anything beyond the committed events shows up
	stopReaders()
	readers.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Error(err)
	}
	t.Logf("%d appends of %d events, %d of them slow; subscriber saw %d, ReadAll loop %d",
		appends.Load(), len(committed), slow.Load(), sub.count(), poller.count())
	require.NotZero(t, slow.Load(), "no append was slow: the test did not test long transactions")
	require.GreaterOrEqual(t, appends.Load(), int64(target), "too few appends to interleave in %v", limit)
	sub.check(t, committed)
	poller.check(t, committed)

	// Each stream holds its events in consecutive versions.
	total := 0
	for i := range streams {
		stream := fmt.Sprint("stream-", i)
		for j, e := range collect(t, s.ReadStream(ctx, stream, 1)) {
			require.Equal(t, int64(j+1), e.Version, "ReadStream(%q) event %d", stream, j)
			total++
		}
	}
	assert.Equal(t, len(committed), total, "events in all streams")
}

// TestExactVersionRace races two appends with the same expected version
// on one stream, round after round: exactly one wins, and the other fails
// with a ConflictError giving the versions.
func TestExactVersionRace(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 4)
	ctx := testenv.Context(t, 30*time.Second)
	const stream = "raced"
	version := int64(0)
	for round := range 50 {
		expected := eventsource.Exact(version)
		type result struct {
			n      int
			events []eventsource.Event
			err    error
		}
		results := [2]result{{n: 1}, {n: 2}}
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				<-gate
				results[i].events, results[i].err = s.Append(ctx, stream, expected, events(results[i].n, "test.raced.v1")...)
			})
		}
		close(gate)
		wg.Wait()

		won, lost := 0, 1
		if results[0].err != nil {
			won, lost = 1, 0
		}
		require.NoError(t, results[won].err, "round %d: both appends with %v failed (other: %v)", round, expected, results[lost].err)
		require.Error(t, results[lost].err, "round %d: both appends with %v succeeded", round, expected)
		require.ErrorIs(t, results[lost].err, eventsource.ErrConcurrencyConflict, "round %d", round)
		var ce *eventsource.ConflictError
		require.True(t, errors.As(results[lost].err, &ce), "round %d: %v is not a *ConflictError", round, results[lost].err)
		want := eventsource.ConflictError{StreamID: stream, Expected: expected, Actual: version + int64(results[won].n)}
		require.Equal(t, want, *ce, "round %d", round)
		require.Len(t, results[won].events, results[won].n)
		require.Equal(t, version+1, results[won].events[0].Version, "round %d", round)
		version += int64(results[won].n)
	}
	got := collect(t, s.ReadStream(ctx, stream, 1))
	require.Len(t, got, int(version))
}

// TestStalledAppendReleasesTheLock stalls an append inside its
// transaction, holding its stream's lock, for longer than the store lets
// a transaction sit idle: the server ends its session, which releases the
// lock, and an append to the same stream that waited for it returns while
// the stalled one is still held (were the lock kept, the test's deadline
// would end it); the stalled append then fails.
func TestStalledAppendReleasesTheLock(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 4, pgstore.WithAppendIdleTimeout(200*time.Millisecond))
	stalled, wake := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(wake) })
	t.Cleanup(release) // before the store's pool closes, on failure too
	var first atomic.Bool
	pgstore.SetBeforeCommit(s, func(ctx context.Context, stream string) {
		if first.CompareAndSwap(false, true) {
			close(stalled)
			<-wake // as a frozen process would
		}
	})
	ctx := testenv.Context(t, 20*time.Second)
	failed := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "stalls", eventsource.Any, events(1, "test.v1")...)
		failed <- err
	}()
	<-stalled
	got, err := s.Append(ctx, "stalls", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err)
	release()
	require.Error(t, <-failed, "the stalled append succeeded")
	assert.Equal(t, got, readVisible(t, ctx, s, 0), "the stalled append left events")
}

// TestUniqueConstraintIsTheLastGuard has a writer that ignores the append
// lock insert a stream's first event while an append to the stream, which
// read the stream's version before that writer committed, inserts its own:
// the unique constraint on (stream_id, version) turns the append into a
// conflict rather than a second event with the same version.
func TestUniqueConstraintIsTheLastGuard(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	s := newStoreIn(t, pool, schema)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx))

	rogue, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = rogue.Rollback(ctx) }()
	_, err = rogue.Exec(ctx, fmt.Sprintf(`INSERT INTO %q.events (position, id, stream_id, version, type, data) VALUES (pg_current_xact_id()::text::bigint * 16384 + 1, $1, 'a', 1, 'rogue.v1', '')`, schema), uuid.New())
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "a", eventsource.NoStream, events(1, "test.v1")...)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // the append waits on the rogue's row
	require.NoError(t, rogue.Commit(ctx))
	err = <-done
	var ce *eventsource.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, eventsource.ConflictError{StreamID: "a", Expected: eventsource.NoStream, Actual: 1}, *ce)
	got := collect(t, s.ReadStream(ctx, "a", 1))
	require.Len(t, got, 1)
	assert.Equal(t, "rogue.v1", got[0].Type)
}

// TestUnrelatedTransactionHoldsReadersBack opens a transaction that has
// nothing to do with the store, but has an id, and appends events while
// it runs: no reader may read them (the transaction could have been an
// append that commits later, below them), the held-back gauge shows how
// long they have waited, and once the transaction ends the subscriber
// gets them all, in order, without a notification.
func TestUnrelatedTransactionHoldsReadersBack(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	s, pool := newStore(t, 6, pgstore.WithMeterProvider(p.MeterProvider), pgstore.WithPollInterval(time.Hour))
	pgstore.SkipNotify(s) // the subscriber must find the events by itself
	ctx := testenv.Context(t, 20*time.Second)
	before, err := s.Append(ctx, "a", eventsource.NoStream, events(2, "test.v1")...)
	require.NoError(t, err)
	require.NoError(t, s.AwaitVisible(ctx))

	long, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = long.Rollback(ctx) }()
	var xid string
	require.NoError(t, long.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid)) // takes an id

	held, err := s.Append(ctx, "b", eventsource.NoStream, events(3, "test.v1")...)
	require.NoError(t, err)
	// The subscriber starts with the events held back: it finds them so
	// at its first read, and then polls every 10 ms.
	sub := newOrderChecker("Subscribe")
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e, err := range s.Subscribe(sctx, before[1].Position) {
			if err == nil {
				sub.add(e)
			}
		}
	}()
	committed := map[uuid.UUID]int64{}
	for _, e := range held {
		committed[e.ID] = e.Position
	}
	assert.Empty(t, collect(t, s.ReadAll(ctx, before[1].Position)), "ReadAll read events that transaction %s holds back", xid)
	head, err := s.Head(ctx)
	require.NoError(t, err)
	assert.Less(t, head, held[0].Position, "Head reached events held back")

	// The gauge grows while the transaction runs.
	var first float64
	require.Eventually(t, func() bool {
		first = heldBack(t, p)
		return first > 0
	}, 5*time.Second, 10*time.Millisecond, "the held-back gauge stayed 0")
	require.Eventually(t, func() bool { return heldBack(t, p) > first }, 5*time.Second, 10*time.Millisecond,
		"the held-back gauge did not grow")
	assert.Zero(t, sub.count(), "the subscriber read events held back")

	require.NoError(t, long.Rollback(ctx))
	require.Eventually(t, func() bool { return sub.count() == len(held) }, 5*time.Second, 10*time.Millisecond,
		"the subscriber did not get the events once the transaction ended")
	require.Eventually(t, func() bool { return heldBack(t, p) == 0 }, 5*time.Second, 10*time.Millisecond,
		"the held-back gauge did not return to 0")
	stop()
	<-done
	sub.check(t, committed)
}

// heldBack returns the last value of the held-back gauge.
func heldBack(t *testing.T, p *telemetrytest.Providers) float64 {
	t.Helper()
	if !p.HasMetric(t, pgstore.MetricSubscriptionHeldBack) {
		return 0
	}
	pts := p.Metric(t, pgstore.MetricSubscriptionHeldBack).Data.(metricdata.Gauge[float64]).DataPoints
	if len(pts) == 0 {
		return 0
	}
	return pts[0].Value
}
