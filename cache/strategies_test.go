package cache_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
)

// Tests of the write and protection strategies: write-through, write-behind,
// refresh-ahead, TTL jitter, negative caching, the Bloom filter and delayed
// double delete. Everything that depends on time runs in a synctest bubble,
// where the caches (and so ristretto's and the write-behind worker's
// goroutines) are created and closed.

var errSource = errors.New("source unavailable")

// newStrategyCache builds a Cache[string] and closes it when the test ends;
// inside a bubble, cleanups run in the bubble before it ends.
func newStrategyCache(t *testing.T, opts ...cache.Option[string]) *cache.Cache[string] {
	t.Helper()
	c, err := cache.New[string](opts...)
	require.NoError(t, err, "New()")
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// storedValue returns the decoded value of key in s.
func storedValue(t *testing.T, s cache.Store, key string) (string, error) {
	t.Helper()
	b, err := s.Get(context.Background(), key)
	if err != nil {
		return "", err
	}
	return cache.JSON[string]{}.Unmarshal(b)
}

// setRecordingStore is a MemoryStore that records the TTLs of its Sets and
// reports each Set to onSet, if not nil.
type setRecordingStore struct {
	cache.MemoryStore
	onSet func(key string, value []byte)
	mu    sync.Mutex
	ttls  []time.Duration
}

func (s *setRecordingStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if s.onSet != nil {
		s.onSet(key, value)
	}
	s.mu.Lock()
	s.ttls = append(s.ttls, ttl)
	s.mu.Unlock()
	return s.MemoryStore.Set(ctx, key, value, ttl)
}

// ---------------------------------------------------------------------------
// Write-through

func TestWriteThrough(t *testing.T) {
	tests := []struct {
		name     string
		old      string // set (successfully) before the Set under test; "" for none
		writeErr error
		wantErr  error
		wantGet  string // "" means ErrNotFound
	}{
		{name: "failed write leaves a missing key missing", writeErr: errSource, wantErr: errSource},
		{name: "failed write keeps the old value", old: "old", writeErr: errSource, wantErr: errSource, wantGet: "old"},
		{name: "successful write updates cache and L2", old: "old", wantGet: "new"},
		{name: "successful write of a new key", wantGet: "new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var (
				mu     sync.Mutex
				events []string
				fail   atomic.Bool
				c      *cache.Cache[string]
				seen   []string // what Get returned inside the writer
			)
			record := func(event string) {
				mu.Lock()
				events = append(events, event)
				mu.Unlock()
			}
			store := &setRecordingStore{onSet: func(key string, value []byte) { record("l2.set " + key + "=" + string(value)) }}
			write := func(ctx context.Context, key, v string) error {
				got, err := c.Get(ctx, key)
				record("write " + key + "=" + v)
				mu.Lock()
				seen = append(seen, fmt.Sprintf("%q %v", got, err))
				mu.Unlock()
				if fail.Load() {
					return tc.writeErr
				}
				return nil
			}
			c = newStrategyCache(t, cache.WithWriter(write), cache.WithStore(store))
			if tc.old != "" {
				require.NoError(t, c.Set(ctx, "k", tc.old), "Set(old)")
			}
			mu.Lock()
			events, seen = nil, nil
			mu.Unlock()
			fail.Store(tc.writeErr != nil)

			err := c.Set(ctx, "k", "new")
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr, "Set() = %v; want %v", err, tc.wantErr)
			} else {
				require.NoError(t, err, "Set()")
			}

			got, err := c.Get(ctx, "k")
			l2, l2Err := storedValue(t, store, "k")
			if tc.wantGet == "" {
				assert.ErrorIs(t, err, cache.ErrNotFound, "Get() = %q, %v; want ErrNotFound", got, err)
				assert.ErrorIs(t, l2Err, cache.ErrNotFound, "L2 Get() = %q, %v; want ErrNotFound", l2, l2Err)
			} else {
				assert.NoError(t, err, "Get()")
				assert.Equal(t, tc.wantGet, got, "Get() = %q; want %q", got, tc.wantGet)
				assert.NoError(t, l2Err, "L2 Get()")
				assert.Equal(t, tc.wantGet, l2, "L2 Get() = %q; want %q", l2, tc.wantGet)
			}

			// The writer runs first, while the cache still holds the old value.
			mu.Lock()
			defer mu.Unlock()
			want := []string{`write k=new`}
			if tc.writeErr == nil {
				want = append(want, `l2.set k="new"`)
			}
			assert.Equal(t, want, events, "events = %q; want %q", events, want)
			wantSeen := fmt.Sprintf("%q %v", tc.old, cache.ErrNotFound)
			if tc.old != "" {
				wantSeen = fmt.Sprintf("%q <nil>", tc.old)
			}
			assert.Equal(t, []string{wantSeen}, seen, "Get() inside the writer = %q; want %q", seen, wantSeen)
		})
	}
}

// ---------------------------------------------------------------------------
// Write-behind

// flushRecorder is a write-behind flush function that records every call. It
// can be made to block (until unblocked or its ctx is done) and to fail.
type flushRecorder struct {
	mu       sync.Mutex
	attempts [][]cache.Write[string] // every call, failed or not
	batches  [][]cache.Write[string] // successful calls
	block    chan struct{}           // if not nil, calls wait for it to close
	failing  atomic.Bool
}

func (f *flushRecorder) flush(ctx context.Context, batch []cache.Write[string]) error {
	f.mu.Lock()
	f.attempts = append(f.attempts, slices.Clone(batch))
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.failing.Load() {
		return errSource
	}
	f.mu.Lock()
	f.batches = append(f.batches, slices.Clone(batch))
	f.mu.Unlock()
	return nil
}

// keys returns the keys of the successful flushes, batch by batch.
func (f *flushRecorder) keys() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, b := range f.batches {
		var ks []string
		for _, w := range b {
			ks = append(ks, w.Key)
			if w.Value != "v"+w.Key {
				ks = append(ks, "(bad value "+w.Value+")")
			}
		}
		out = append(out, ks)
	}
	return out
}

// written returns the keys of the successful flushes in order.
func (f *flushRecorder) written() []string { return slices.Concat(f.keys()...) }

func (f *flushRecorder) attemptCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.attempts)
}

// setKeys sets the keys from..to-1 ("3" to "v3") and checks that each is
// readable at once.
func setKeys(t *testing.T, c *cache.Cache[string], from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		k := strconv.Itoa(i)
		require.NoError(t, c.Set(t.Context(), k, "v"+k), "Set(%q)", k)
		got, err := c.Get(t.Context(), k)
		require.NoError(t, err, "Get(%q) after Set", k)
		require.Equal(t, "v"+k, got, "Get(%q) = %q; want %q", k, got, "v"+k)
	}
}

func keyNames(from, to int) []string {
	var ks []string
	for i := from; i < to; i++ {
		ks = append(ks, strconv.Itoa(i))
	}
	return ks
}

func TestWriteBehindBatching(t *testing.T) {
	const interval = time.Second
	tests := []struct {
		name        string
		batch, sets int
		atOnce      [][]string // flushed with no time passing
		atInterval  [][]string // flushed once the interval has passed
	}{
		{
			name: "full batches flush at once, the rest at the interval", batch: 3, sets: 7,
			atOnce:     [][]string{{"0", "1", "2"}, {"3", "4", "5"}},
			atInterval: [][]string{{"0", "1", "2"}, {"3", "4", "5"}, {"6"}},
		},
		{
			name: "fewer writes than a batch wait for the interval", batch: 10, sets: 4,
			atInterval: [][]string{{"0", "1", "2", "3"}},
		},
		{
			name: "a multiple of the batch size leaves nothing behind", batch: 2, sets: 4,
			atOnce:     [][]string{{"0", "1"}, {"2", "3"}},
			atInterval: [][]string{{"0", "1"}, {"2", "3"}},
		},
		{
			name: "batches of one", batch: 1, sets: 3,
			atOnce:     [][]string{{"0"}, {"1"}, {"2"}},
			atInterval: [][]string{{"0"}, {"1"}, {"2"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var f flushRecorder
				c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(tc.batch, interval))
				for i := range tc.sets {
					setKeys(t, c, i, i+1) // visible at once, whether flushed or not
					// Let the worker finish before the next Set: see
					// TestWriteBehindPartialBatchWaitsForInterval for writes that
					// arrive while it flushes.
					synctest.Wait()
				}
				got := f.keys()
				assert.Equal(t, tc.atOnce, got, "batches before any time passed = %q; want %q", got, tc.atOnce)

				time.Sleep(interval - time.Nanosecond)
				synctest.Wait()
				got = f.keys()
				assert.Equal(t, tc.atOnce, got, "batches just before the interval = %q; want %q", got, tc.atOnce)

				time.Sleep(time.Nanosecond)
				synctest.Wait()
				got = f.keys()
				assert.Equal(t, tc.atInterval, got, "batches at the interval = %q; want %q", got, tc.atInterval)
			})
		})
	}
}

// TestWriteBehindPartialBatchWaitsForInterval protects batching: writes
// that arrive while a batch is being flushed, fewer than a batch, wait for
// the interval like any other partial batch instead of being flushed at once
// by a wake-up left over from the earlier full batch.
func TestWriteBehindPartialBatchWaitsForInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := flushRecorder{block: make(chan struct{})}
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(2, time.Hour))
		setKeys(t, c, 0, 2) // a full batch: the worker flushes it, blocked
		synctest.Wait()
		setKeys(t, c, 2, 5) // arrive during the flush: one more full batch and "4"
		close(f.block)
		synctest.Wait()
		want := [][]string{{"0", "1"}, {"2", "3"}}
		got := f.keys()
		assert.Equal(t, want, got, "batches before the interval = %q; want %q", got, want)

		time.Sleep(time.Hour)
		synctest.Wait()
		want = append(want, []string{"4"})
		got = f.keys()
		assert.Equal(t, want, got, "batches at the interval = %q; want %q", got, want)
	})
}

func TestWriteBehindFlushAndCloseWriteEverything(t *testing.T) {
	flush := func(c *cache.Cache[string]) error { return c.Flush(context.Background()) }
	closeCache := func(c *cache.Cache[string]) error { return c.Close() }
	tests := []struct {
		name    string
		finish  func(*cache.Cache[string]) error
		backlog bool // the first batch's flush blocks until finish was called
	}{
		{name: "Flush", finish: flush},
		{name: "Close", finish: closeCache},
		{name: "Flush with a backlog", finish: flush, backlog: true},
		{name: "Close with a backlog", finish: closeCache, backlog: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var f flushRecorder
				if tc.backlog {
					f.block = make(chan struct{})
				}
				c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(100, time.Hour))
				setKeys(t, c, 0, 250)
				start := time.Now()
				var err error
				done := make(chan struct{})
				go func() {
					defer close(done)
					err = tc.finish(c)
				}()
				if tc.backlog {
					synctest.Wait()
					close(f.block)
				}
				<-done
				require.NoError(t, err, "%s()", tc.name)
				// Everything is written when Flush or Close returns, without
				// waiting for the interval (Close may pause a moment for the
				// garbage collector to see that no Get is in L1).
				assert.Less(t, time.Since(start), time.Millisecond, "%s() took %v of fake time; want none of the interval", tc.name, time.Since(start))
				got := f.written()
				want := keyNames(0, 250)
				assert.Equal(t, want, got, "written after %s() = %q; want %q", tc.name, got, want)
				for _, b := range f.keys() {
					assert.LessOrEqual(t, len(b), 100, "batch of %d writes; want at most the batch size 100", len(b))
				}
			})
		})
	}
}

func TestWriteBehindBackPressure(t *testing.T) {
	tests := []struct {
		name        string
		timeout     time.Duration // of the third Set's ctx; 0: none
		cancel      bool          // cancel the third Set's ctx
		unblock     bool          // let the flush function finish
		wantErr     error
		wantElapsed time.Duration
		wantWritten []string
	}{
		{name: "waits for room", unblock: true, wantWritten: []string{"a", "b", "c"}},
		{name: "gives up when ctx is canceled", cancel: true, wantErr: context.Canceled, wantWritten: []string{"a", "b"}},
		{name: "gives up at ctx deadline", timeout: 5 * time.Second, wantErr: context.DeadlineExceeded,
			wantElapsed: 5 * time.Second, wantWritten: []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := flushRecorder{block: make(chan struct{})}
				c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteQueue(2),
					cache.WithWriteBatch(1, time.Hour))
				ctx := t.Context()
				require.NoError(t, c.Set(ctx, "a", "va"), "Set(a)") // being flushed, blocked
				require.NoError(t, c.Set(ctx, "b", "vb"), "Set(b)") // queued: the queue is full
				synctest.Wait()

				setCtx, cancel := context.WithCancel(ctx)
				defer cancel()
				if tc.timeout > 0 {
					setCtx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				start := time.Now()
				var (
					setErr  error
					elapsed time.Duration
				)
				done := make(chan struct{})
				go func() {
					defer close(done)
					setErr = c.Set(setCtx, "c", "vc")
					elapsed = time.Since(start)
				}()
				synctest.Wait()
				select {
				case <-done:
					t.Fatalf("Set() on a full queue = %v without waiting; want it to block", setErr)
				default:
				}

				switch {
				case tc.cancel:
					cancel()
				case tc.unblock:
					close(f.block)
				default:
					time.Sleep(tc.timeout)
				}
				<-done
				if tc.wantErr != nil {
					assert.ErrorIs(t, setErr, tc.wantErr, "Set() = %v; want %v", setErr, tc.wantErr)
					got, err := c.Get(ctx, "c")
					assert.ErrorIs(t, err, cache.ErrNotFound, "Get() after a failed Set = %q, %v; want ErrNotFound", got, err)
					close(f.block)
				} else {
					assert.NoError(t, setErr, "Set()")
				}
				assert.Equal(t, tc.wantElapsed, elapsed, "Set() returned after %v; want %v", elapsed, tc.wantElapsed)

				require.NoError(t, c.Flush(ctx), "Flush()")
				got := f.written()
				assert.Equal(t, tc.wantWritten, got, "written = %q; want %q", got, tc.wantWritten)
			})
		})
	}
}

func TestWriteBehindRejectWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := flushRecorder{block: make(chan struct{})}
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteQueue(2),
			cache.WithWriteBatch(1, time.Hour), cache.WithWriteBehindReject())
		ctx := t.Context()
		require.NoError(t, c.Set(ctx, "a", "va"), "Set(a)")
		require.NoError(t, c.Set(ctx, "b", "vb"), "Set(b)")
		synctest.Wait()

		start := time.Now()
		err := c.Set(ctx, "c", "vc")
		assert.ErrorIs(t, err, cache.ErrQueueFull, "Set() on a full queue = %v; want %v", err, cache.ErrQueueFull)
		assert.Equal(t, time.Duration(0), time.Since(start), "Set() waited %v; want 0", time.Since(start))
		got, err := c.Get(ctx, "c")
		assert.ErrorIs(t, err, cache.ErrNotFound, "Get() after a rejected Set = %q, %v; want ErrNotFound", got, err)

		close(f.block)
		require.NoError(t, c.Close(), "Close()")
		want := []string{"a", "b"}
		assert.Equal(t, want, f.written(), "written = %q; want %q", f.written(), want)
	})
}

func TestWriteBehindRetriesFailedFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			f       flushRecorder
			mu      sync.Mutex
			handled []error
		)
		f.failing.Store(true)
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(2, time.Second),
			cache.WithFlushErrorHandler(func(err error) {
				mu.Lock()
				handled = append(handled, err)
				mu.Unlock()
			}))
		setKeys(t, c, 0, 5) // the first batch ("0", "1") fails at once

		// With exponential backoff from 100ms (full jitter, at most 10s) the
		// 7th attempt comes within 0.1+0.2+0.4+0.8+1.6+3.2 = 6.3s, and a
		// fixed or missing backoff would make far more than 40 in 10s.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		attempts := f.attemptCount()
		assert.GreaterOrEqual(t, attempts, 7, "flush attempts in 10s = %d; want at least 7", attempts)
		assert.LessOrEqual(t, attempts, 40, "flush attempts in 10s = %d; want at most 40 (backoff)", attempts)
		f.mu.Lock()
		for i, b := range f.attempts {
			want := []cache.Write[string]{{Key: "0", Value: "v0"}, {Key: "1", Value: "v1"}}
			assert.Equal(t, want, b, "attempt %d flushed %v; want %v", i, b, want)
		}
		f.mu.Unlock()
		mu.Lock()
		assert.Len(t, handled, attempts, "flush error handler calls = %d; want %d", len(handled), attempts)
		for _, err := range handled {
			assert.ErrorIs(t, err, errSource, "handled error = %v; want %v", err, errSource)
		}
		mu.Unlock()

		// The source recovers: every write arrives, once and in order.
		f.failing.Store(false)
		start := time.Now()
		require.NoError(t, c.Flush(t.Context()), "Flush()")
		assert.LessOrEqual(t, time.Since(start), 10*time.Second, "Flush() took %v; want at most the largest backoff", time.Since(start))
		want := keyNames(0, 5)
		assert.Equal(t, want, f.written(), "written = %q; want %q", f.written(), want)
		for _, b := range f.keys() {
			assert.LessOrEqual(t, len(b), 2, "batch %q larger than the batch size 2", b)
		}
	})
}

func TestWriteBehindCloseReportsUnwrittenWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f flushRecorder
		f.failing.Store(true)
		const timeout = 2 * time.Second
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithCloseTimeout(timeout))
		setKeys(t, c, 0, 3)

		start := time.Now()
		err := c.Close()
		elapsed := time.Since(start)
		require.Error(t, err, "Close() with a failing flush")
		assert.Contains(t, err.Error(), "3 queued writes were not written", "Close() = %v; want the count of unwritten writes", err)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "Close() = %v; want it to wrap %v", err, context.DeadlineExceeded)
		assert.LessOrEqual(t, elapsed, timeout, "Close() took %v; want at most WithCloseTimeout(%v)", elapsed, timeout)
		assert.Positive(t, f.attemptCount(), "flush attempts during Close")
		assert.Empty(t, f.written(), "written")

		again := c.Close()
		assert.Equal(t, err, again, "second Close() = %v; want %v", again, err)
		err = c.Set(t.Context(), "late", "vlate")
		assert.ErrorIs(t, err, cache.ErrClosed, "Set() after Close() = %v; want %v", err, cache.ErrClosed)
	})
}

// TestWriteBehindCloseErrorKeepsFlushCause protects the rule that errors
// never lose their underlying cause: when Flush or Close give up on writes
// that failed to flush, their error matches the flush function's error with
// errors.Is (and so names it).
func TestWriteBehindCloseErrorKeepsFlushCause(t *testing.T) {
	tests := []struct {
		name string
		give func(*cache.Cache[string]) error
	}{
		{"Flush", func(c *cache.Cache[string]) error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return c.Flush(ctx)
		}},
		{"Close", func(c *cache.Cache[string]) error { return c.Close() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var f flushRecorder
				f.failing.Store(true)
				c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithCloseTimeout(time.Second))
				setKeys(t, c, 0, 1)
				err := tc.give(c)
				require.Error(t, err, "%s() with a failing flush", tc.name)
				assert.ErrorIs(t, err, errSource, "%s() = %v; want it to wrap %v", tc.name, err, errSource)
			})
		})
	}
}

func TestWriteBehindSetAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f flushRecorder
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush))
		setKeys(t, c, 0, 1)
		require.NoError(t, c.Close(), "Close()")
		err := c.Set(t.Context(), "late", "vlate")
		assert.ErrorIs(t, err, cache.ErrClosed, "Set() after Close() = %v; want %v", err, cache.ErrClosed)
		assert.Equal(t, []string{"0"}, f.written(), "written = %q; want [0]", f.written())
	})
}

// setsRacingClose runs n goroutines that Set distinct keys until a Set
// fails, closes c once they are under way, and returns the keys whose Set
// returned nil, each goroutine's last error (a recovered panic becomes an
// error) and Close's error. It fails the test if a Set is still blocked 2s
// after Close returned. Close must race Sets for real, so this runs outside
// a bubble, with more Ps than cores so that a Set can be descheduled
// anywhere.
func setsRacingClose(t *testing.T, c *cache.Cache[string], n int) (accepted []string, errs []error, closeErr error) {
	t.Helper()
	type result struct {
		keys []string
		err  error
	}
	results := make(chan result, n)
	var sets atomic.Int32
	for g := range n {
		go func() {
			var r result
			defer func() {
				if p := recover(); p != nil {
					r.err = fmt.Errorf("panic: %v", p)
				}
				results <- r
			}()
			for i := 0; ; i++ {
				k := strconv.Itoa(g) + "-" + strconv.Itoa(i)
				if err := c.Set(context.Background(), k, "v"+k); err != nil {
					r.err = err
					return
				}
				r.keys = append(r.keys, k)
				sets.Add(1)
			}
		}()
	}
	for sets.Load() < int32(4*n) {
		runtime.Gosched()
	}
	closeErr = c.Close()
	timeout := time.After(2 * time.Second)
	for range n {
		select {
		case r := <-results:
			accepted = append(accepted, r.keys...)
			errs = append(errs, r.err)
		case <-timeout:
			t.Fatalf("Set() still blocked 2s after Close() returned")
		}
	}
	return accepted, errs, closeErr
}

// TestSetRacingCloseNeitherPanicsNorHangs protects shutdown: a Set that
// races Close completes or returns ErrClosed; it never panics or blocks.
func TestSetRacingCloseNeitherPanicsNorHangs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	for i := range 50 {
		c, err := cache.New[string]()
		require.NoError(t, err, "New()")
		_, errs, closeErr := setsRacingClose(t, c, 8)
		require.NoError(t, closeErr, "Close()")
		for _, err := range errs {
			require.ErrorIs(t, err, cache.ErrClosed, "iteration %d: Set() racing Close() = %v; want %v", i, err, cache.ErrClosed)
		}
	}
}

// TestGetRacingCloseNeitherPanicsNorHangs protects shutdown on the hit
// path, which does not register with Close: a Get of a key L1 holds that
// races Close answers with the value or returns ErrClosed; it never
// panics (ristretto's Get, racing its Close, can send on a closed
// channel) or blocks.
func TestGetRacingCloseNeitherPanicsNorHangs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	for i := range 50 {
		c, err := cache.New[string]()
		require.NoError(t, err, "New()")
		for _, k := range keys {
			require.NoError(t, c.Set(context.Background(), k, "v"+k), "Set(%q)", k)
		}
		const n = 8
		errs := make(chan error, n)
		var gets atomic.Int32
		for g := range n {
			go func() {
				var err error
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v", p)
					}
					errs <- err
				}()
				for j := g; ; j++ {
					k := keys[j%len(keys)]
					var v string
					if v, err = c.Get(context.Background(), k); err != nil {
						return
					}
					if v != "v"+k {
						err = fmt.Errorf("Get(%q) = %q; want %q", k, v, "v"+k)
						return
					}
					gets.Add(1)
				}
			}()
		}
		for gets.Load() < 4*n {
			runtime.Gosched()
		}
		require.NoError(t, c.Close(), "Close()")
		timeout := time.After(2 * time.Second)
		for range n {
			select {
			case err := <-errs:
				require.ErrorIs(t, err, cache.ErrClosed, "iteration %d: Get() racing Close() = %v; want %v", i, err, cache.ErrClosed)
			case <-timeout:
				t.Fatalf("Get() still blocked 2s after Close() returned")
			}
		}
	}
}

// TestWriteBehindSetRacingCloseIsNeverLost protects "never drops silently":
// a write-behind Set that races Close and returns nil is flushed by Close,
// exactly once.
func TestWriteBehindSetRacingCloseIsNeverLost(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	// The window is a few instructions wide: up to 200 tries, or 1s.
	start := time.Now()
	for i := 0; i < 200 && time.Since(start) < time.Second; i++ {
		var f flushRecorder
		c, err := cache.New[string](cache.WithWriteBehind(f.flush))
		require.NoError(t, err, "New()")
		// Panics of Sets, if any, are TestSetRacingCloseNeitherPanicsNorHangs's.
		accepted, _, closeErr := setsRacingClose(t, c, 8)
		require.NoError(t, closeErr, "Close()")
		written := map[string]int{}
		for _, k := range f.written() {
			written[k]++
		}
		for _, k := range accepted {
			require.Equal(t, 1, written[k], "iteration %d: Set(%q) = nil and Close() = nil, but the write was flushed %d times; want 1",
				i, k, written[k])
		}
	}
}

func TestWriteStrategyOptionsValidated(t *testing.T) {
	flush := func(context.Context, []cache.Write[string]) error { return nil }
	tests := []struct {
		name string
		opts []cache.Option[string]
		want []string // substrings of the error
	}{
		{
			name: "write-through and write-behind together",
			opts: []cache.Option[string]{cache.WithWriter(func(context.Context, string, string) error { return nil }), cache.WithWriteBehind(flush)},
			want: []string{"WithWriter", "WithWriteBehind"},
		},
		{
			name: "empty queue",
			opts: []cache.Option[string]{cache.WithWriteBehind(flush), cache.WithWriteQueue(0)},
			want: []string{"WithWriteQueue(0)"},
		},
		{
			name: "bad batch",
			opts: []cache.Option[string]{cache.WithWriteBehind(flush), cache.WithWriteBatch(0, 0)},
			want: []string{"WithWriteBatch(0, 0s)"},
		},
		{
			name: "negative close timeout",
			opts: []cache.Option[string]{cache.WithWriteBehind(flush), cache.WithCloseTimeout(-time.Second)},
			want: []string{"WithCloseTimeout(-1s)"},
		},
		{
			name: "flush function of another value type",
			opts: []cache.Option[string]{cache.Option[string](cache.WithWriteBehind(func(context.Context, []cache.Write[int]) error { return nil }))},
			want: []string{"WithWriteBehind"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cache.New[string](tc.opts...)
			if c != nil {
				_ = c.Close()
			}
			require.Error(t, err, "New() = %v, nil; want an error", c)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w, "New() = %v; want it to name %s", err, w)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Refresh-ahead

func TestRefreshAhead(t *testing.T) {
	tests := []struct {
		name       string
		refreshV   string
		refreshErr error
		want       string // after the refresh; "" means ErrNotFound
	}{
		{name: "new value replaces the old", refreshV: "v2", want: "v2"},
		{name: "not found drops the entry", refreshErr: fmt.Errorf("gone: %w", cache.ErrNotFound)},
		{name: "failure keeps the old value", refreshErr: errSource, want: "v1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				gate := make(chan struct{})
				load := func(ctx context.Context, key string) (string, error) {
					if calls.Add(1) == 1 {
						return "v1", nil
					}
					select {
					case <-gate:
					case <-ctx.Done():
						return "", ctx.Err()
					}
					return tc.refreshV, tc.refreshErr
				}
				c := newStrategyCache(t, cache.WithLoader(load), cache.WithTTL(10*time.Second),
					cache.WithTTLJitter(0), cache.WithRefreshAhead(0.5))
				ctx := t.Context()
				get := func(want string) {
					t.Helper()
					got, err := c.Get(ctx, "k")
					if want == "" {
						assert.ErrorIs(t, err, cache.ErrNotFound, "Get() = %q, %v; want ErrNotFound", got, err)
						return
					}
					assert.NoError(t, err, "Get()")
					assert.Equal(t, want, got, "Get() = %q; want %q", got, want)
				}
				loads := func(want int32) {
					t.Helper()
					synctest.Wait()
					assert.Equal(t, want, calls.Load(), "loader calls = %d; want %d", calls.Load(), want)
				}

				get("v1")
				loads(1)
				time.Sleep(4 * time.Second) // before 0.5 of the TTL: no refresh
				get("v1")
				loads(1)
				time.Sleep(2 * time.Second) // at 6s: refresh in the background
				get("v1")                   // served while the loader is blocked
				loads(2)
				get("v1") // no second refresh while one runs
				loads(2)

				close(gate)
				synctest.Wait()
				get(tc.want)
				if tc.want == "v2" {
					// The refreshed entry lives a new TTL from 6s: at 10.5s it is
					// past the old expiry and before its own refresh at 11s.
					time.Sleep(4500 * time.Millisecond)
					get("v2")
					loads(2)
				}
			})
		})
	}
}

func TestRefreshAheadOnceUnderConcurrentGets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		gate := make(chan struct{})
		load := func(ctx context.Context, key string) (string, error) {
			if calls.Add(1) == 1 {
				return "v1", nil
			}
			<-gate
			return "v2", nil
		}
		c := newStrategyCache(t, cache.WithLoader(load), cache.WithTTL(10*time.Second),
			cache.WithTTLJitter(0), cache.WithRefreshAhead(0.5))
		ctx := t.Context()
		_, err := c.Get(ctx, "k")
		require.NoError(t, err, "Get()")
		time.Sleep(6 * time.Second)

		var wg sync.WaitGroup
		results := make([]string, 100)
		for i := range results {
			wg.Go(func() {
				v, err := c.Get(ctx, "k")
				results[i] = fmt.Sprintf("%s %v", v, err)
			})
		}
		wg.Wait()
		synctest.Wait()
		assert.Equal(t, int32(2), calls.Load(), "loader calls after 100 Gets of a stale entry = %d; want 2 (load + one refresh)", calls.Load())
		for i, r := range results {
			assert.Equal(t, "v1 <nil>", r, "Get() #%d = %s; want the old value", i, r)
		}

		close(gate)
		synctest.Wait()
		got, err := c.Get(ctx, "k")
		assert.NoError(t, err, "Get()")
		assert.Equal(t, "v2", got, "Get() after the refresh = %q; want %q", got, "v2")
		assert.Equal(t, int32(2), calls.Load(), "loader calls = %d; want 2", calls.Load())
	})
}

func TestRefreshAheadOptionsValidated(t *testing.T) {
	load := cache.WithLoader(func(context.Context, string) (string, error) { return "", nil })
	tests := []struct {
		name string
		opts []cache.Option[string]
		want string
	}{
		{"without a loader", []cache.Option[string]{cache.WithRefreshAhead(0.5)}, "WithRefreshAhead(0.5)"},
		{"without a TTL", []cache.Option[string]{load, cache.WithTTL(0), cache.WithRefreshAhead(0.5)}, "WithRefreshAhead(0.5)"},
		{"fraction 1", []cache.Option[string]{load, cache.WithRefreshAhead(1)}, "WithRefreshAhead(1)"},
		{"negative fraction", []cache.Option[string]{load, cache.WithRefreshAhead(-0.5)}, "WithRefreshAhead(-0.5)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cache.New[string](tc.opts...)
			if c != nil {
				_ = c.Close()
			}
			require.Error(t, err, "New() = %v, nil; want an error", c)
			assert.Contains(t, err.Error(), tc.want, "New() = %v; want it to name %s", err, tc.want)
		})
	}
}

// ---------------------------------------------------------------------------
// TTL and jitter

func TestTTLExpiresExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 10 * time.Second
		c := newStrategyCache(t, cache.WithTTL(ttl), cache.WithTTLJitter(0))
		ctx := t.Context()
		require.NoError(t, c.Set(ctx, "k", "v"), "Set()")

		time.Sleep(ttl - time.Nanosecond)
		got, err := c.Get(ctx, "k")
		assert.NoError(t, err, "Get() 1ns before the TTL")
		assert.Equal(t, "v", got, "Get() 1ns before the TTL = %q; want %q", got, "v")

		// ristretto treats an entry as expired strictly after its
		// expiration time, so the boundary itself belongs to the entry.
		time.Sleep(2 * time.Nanosecond)
		got, err = c.Get(ctx, "k")
		assert.ErrorIs(t, err, cache.ErrNotFound, "Get() 1ns after the TTL = %q, %v; want ErrNotFound", got, err)
	})
}

func TestTTLJitter(t *testing.T) {
	const (
		ttl  = 10 * time.Second
		keys = 100
		step = 50 * time.Millisecond
	)
	tests := []struct {
		name     string
		ttl      time.Duration
		jitter   float64
		min, max time.Duration // bounds of the TTLs (exclusive of the step)
		spread   bool          // want them not all equal
	}{
		{name: "no jitter", ttl: ttl, min: ttl, max: ttl},
		{name: "jitter 0.5", ttl: ttl, jitter: 0.5, min: ttl / 2, max: ttl * 3 / 2, spread: true},
		{name: "jitter 0.1", ttl: ttl, jitter: 0.1, min: ttl * 9 / 10, max: ttl * 11 / 10, spread: true},
		{name: "TTL 0 never expires", jitter: 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &setRecordingStore{} // L2 only records the TTLs
				c := newStrategyCache(t, cache.WithTTL(tc.ttl), cache.WithTTLJitter(tc.jitter), cache.WithStore(store))
				ctx := t.Context()
				for i := range keys {
					require.NoError(t, c.Set(ctx, strconv.Itoa(i), "v"), "Set()")
				}
				store.mu.Lock()
				for _, d := range store.ttls {
					assert.True(t, d >= tc.min && d <= tc.max, "L2 TTL = %v; want in [%v, %v]", d, tc.min, tc.max)
				}
				store.mu.Unlock()
				// Keep L2 out of the way: only L1's expiry is under test.
				for i := range keys {
					require.NoError(t, store.Delete(ctx, strconv.Itoa(i)), "L2 Delete()")
				}

				start := time.Now()
				if tc.ttl == 0 {
					time.Sleep(time.Hour)
					for i := range keys {
						got, err := c.Get(ctx, strconv.Itoa(i))
						assert.NoError(t, err, "Get() an hour later with TTL 0")
						assert.Equal(t, "v", got, "Get() an hour later with TTL 0 = %q; want %q", got, "v")
					}
					return
				}
				expiry := map[string]time.Duration{} // first step at which a key is gone
				for len(expiry) < keys && time.Since(start) <= tc.max+step {
					for i := range keys {
						k := strconv.Itoa(i)
						if _, gone := expiry[k]; gone {
							continue
						}
						if _, err := c.Get(ctx, k); err != nil {
							require.ErrorIs(t, err, cache.ErrNotFound, "Get()")
							expiry[k] = time.Since(start)
						}
					}
					time.Sleep(step)
					// Let the cache's clock, on its own goroutine, take
					// the tick of this instant.
					synctest.Wait()
				}
				require.Len(t, expiry, keys, "keys expired by %v", tc.max+step)
				lo, hi := time.Duration(1<<62), time.Duration(0)
				for _, d := range expiry {
					lo, hi = min(lo, d), max(hi, d)
				}
				assert.GreaterOrEqual(t, lo, tc.min, "earliest expiry = %v; want at least %v", lo, tc.min)
				assert.LessOrEqual(t, hi, tc.max+step, "latest expiry = %v; want at most %v", hi, tc.max)
				if tc.spread {
					// 100 uniform expiries over the jitter range: spread over
					// most of it, on both sides of the TTL.
					assert.Less(t, lo, tc.ttl, "earliest expiry = %v; want some before the TTL", lo)
					assert.Greater(t, hi, tc.ttl+step, "latest expiry = %v; want some after the TTL", hi)
				} else {
					assert.Equal(t, lo, hi, "expiries range over [%v, %v]; want all equal", lo, hi)
				}
			})
		})
	}
}

// ---------------------------------------------------------------------------
// Negative caching

func TestNegativeCaching(t *testing.T) {
	const window = 5 * time.Second
	tests := []struct {
		name        string
		negativeTTL time.Duration
		loadErr     error
		wantErr     error
		cached      bool
	}{
		{name: "not found is cached", negativeTTL: window, loadErr: cache.ErrNotFound, wantErr: cache.ErrNotFound, cached: true},
		{name: "wrapped not found is cached", negativeTTL: window, loadErr: fmt.Errorf("user 7: %w", cache.ErrNotFound),
			wantErr: cache.ErrNotFound, cached: true},
		{name: "not found without a negative TTL is not cached", loadErr: cache.ErrNotFound, wantErr: cache.ErrNotFound},
		{name: "other errors are not cached", negativeTTL: window, loadErr: errSource, wantErr: errSource},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				load := func(context.Context, string) (string, error) {
					calls.Add(1)
					return "", tc.loadErr
				}
				c := newStrategyCache(t, cache.WithLoader(load), cache.WithNegativeTTL(tc.negativeTTL))
				ctx := t.Context()
				want := int32(0)
				get := func(when string) {
					t.Helper()
					if !tc.cached || want == 0 {
						want++
					}
					got, err := c.Get(ctx, "missing")
					assert.ErrorIs(t, err, tc.wantErr, "Get() %s = %q, %v; want %v", when, got, err, tc.wantErr)
					assert.Equal(t, want, calls.Load(), "loader calls %s = %d; want %d", when, calls.Load(), want)
				}
				get("first")
				get("again")
				time.Sleep(window - time.Nanosecond)
				get("just before the negative TTL")
				time.Sleep(2 * time.Nanosecond)
				if tc.cached {
					want++ // the negative entry has expired: load again
				}
				got, err := c.Get(ctx, "missing")
				assert.ErrorIs(t, err, tc.wantErr, "Get() after the negative TTL = %q, %v; want %v", got, err, tc.wantErr)
				if !tc.cached {
					want++
				}
				assert.Equal(t, want, calls.Load(), "loader calls after the negative TTL = %d; want %d", calls.Load(), want)

				require.NoError(t, c.Set(ctx, "missing", "now here"), "Set()")
				got, err = c.Get(ctx, "missing")
				assert.NoError(t, err, "Get() after Set()")
				assert.Equal(t, "now here", got, "Get() after Set() = %q; want %q", got, "now here")
				assert.Equal(t, want, calls.Load(), "loader calls after Set() = %d; want %d", calls.Load(), want)
			})
		})
	}
}

// ---------------------------------------------------------------------------
// Bloom filter

func TestBloomFilter(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(context.Context, *cache.Cache[string]) error
		wantCalls int32
		want      string // "" means ErrNotFound
	}{
		{name: "unknown key is not loaded", setup: func(context.Context, *cache.Cache[string]) error { return nil }},
		{name: "AddKeys lets the key load", wantCalls: 1, want: "loaded k",
			setup: func(_ context.Context, c *cache.Cache[string]) error { c.AddKeys("other", "k"); return nil }},
		{name: "Set adds the key", wantCalls: 1, want: "loaded k",
			setup: func(ctx context.Context, c *cache.Cache[string]) error {
				if err := c.Set(ctx, "k", "set"); err != nil {
					return err
				}
				return c.Delete(ctx, "k") // the filter still knows the key
			}},
		{name: "other keys stay unknown after AddKeys",
			setup: func(_ context.Context, c *cache.Cache[string]) error { c.AddKeys("a", "b", "c"); return nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			load := func(_ context.Context, key string) (string, error) {
				calls.Add(1)
				return "loaded " + key, nil
			}
			c := newStrategyCache(t, cache.WithLoader(load), cache.WithBloomFilter(1000, 0.001))
			ctx := context.Background()
			require.NoError(t, tc.setup(ctx, c), "setup")
			got, err := c.Get(ctx, "k")
			if tc.want == "" {
				assert.ErrorIs(t, err, cache.ErrNotFound, "Get() = %q, %v; want ErrNotFound", got, err)
			} else {
				assert.NoError(t, err, "Get()")
				assert.Equal(t, tc.want, got, "Get() = %q; want %q", got, tc.want)
			}
			assert.Equal(t, tc.wantCalls, calls.Load(), "loader calls = %d; want %d", calls.Load(), tc.wantCalls)
		})
	}
}

// ---------------------------------------------------------------------------
// Delayed double delete

// TestDoubleDelete: the stale load comes from another instance, whose
// store announces nothing (an instance that hears of the Delete, or the
// deleting instance itself, drops a load that began before it).
func TestDoubleDelete(t *testing.T) {
	const delay = time.Second
	tests := []struct {
		name      string
		delay     time.Duration
		staleLoad bool // the stale value comes from a racing load (else a Set)
		wantAfter string
	}{
		{name: "stale Set after Delete is deleted again", delay: delay, wantAfter: "v2"},
		{name: "stale load after Delete is deleted again", delay: delay, staleLoad: true, wantAfter: "v2"},
		{name: "without the option a stale Set stays", wantAfter: "v1"},
		{name: "without the option a stale load stays", staleLoad: true, wantAfter: "v1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var (
					mu    sync.Mutex
					src   = "v1" // the source of truth
					calls int
				)
				gate := make(chan struct{})
				load := func(ctx context.Context, key string) (string, error) {
					mu.Lock()
					v := src
					calls++
					first := calls == 1
					mu.Unlock()
					if first && tc.staleLoad {
						<-gate // read before the update, returns after the Delete
					}
					return v, nil
				}
				store := &cache.MemoryStore{}
				c := newStrategyCache(t, cache.WithLoader(load), cache.WithStore(store), cache.WithTTL(0),
					cache.WithDoubleDelete(tc.delay))
				other := newStrategyCache(t, cache.WithLoader(load), cache.WithStore(plainStore{store}), cache.WithTTL(0))
				ctx := t.Context()

				loaded := make(chan struct{})
				if tc.staleLoad {
					go func() {
						defer close(loaded)
						_, _ = other.Get(ctx, "k")
					}()
					synctest.Wait()
				}
				// The update: source first, then the cache.
				mu.Lock()
				src = "v2"
				mu.Unlock()
				require.NoError(t, c.Delete(ctx, "k"), "Delete()")
				if tc.staleLoad {
					close(gate)
					<-loaded
					synctest.Wait() // other's L2 fill
				} else {
					require.NoError(t, c.Set(ctx, "k", "v1"), "Set() of a stale value")
				}
				got, err := c.Get(ctx, "k")
				require.NoError(t, err, "Get()")
				require.Equal(t, "v1", got, "Get() after the racing re-population = %q; want the stale %q", got, "v1")

				wait := max(tc.delay, delay)
				time.Sleep(wait - time.Nanosecond)
				synctest.Wait()
				got, err = c.Get(ctx, "k")
				assert.NoError(t, err, "Get() before the delay")
				assert.Equal(t, "v1", got, "Get() before the delay = %q; want %q", got, "v1")

				time.Sleep(time.Nanosecond)
				synctest.Wait()
				l2, l2Err := storedValue(t, store, "k")
				if tc.wantAfter == "v1" {
					assert.NoError(t, l2Err, "L2 Get() after the delay")
					assert.Equal(t, "v1", l2, "L2 Get() after the delay = %q; want %q", l2, "v1")
				} else {
					assert.ErrorIs(t, l2Err, cache.ErrNotFound, "L2 Get() after the delay = %q, %v; want ErrNotFound", l2, l2Err)
				}
				got, err = c.Get(ctx, "k")
				assert.NoError(t, err, "Get() after the delay")
				assert.Equal(t, tc.wantAfter, got, "Get() after the delay = %q; want %q", got, tc.wantAfter)
			})
		})
	}
}

// plainStore is a Store with none of the optional interfaces of the store
// it wraps.
type plainStore struct{ s cache.Store }

func (p plainStore) Get(ctx context.Context, key string) ([]byte, error) { return p.s.Get(ctx, key) }
func (p plainStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return p.s.Set(ctx, key, value, ttl)
}
func (p plainStore) Delete(ctx context.Context, key string) error { return p.s.Delete(ctx, key) }

func TestDoubleDeleteRunsAtClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &cache.MemoryStore{}
		c, err := cache.New[string](cache.WithStore(store), cache.WithDoubleDelete(time.Hour))
		require.NoError(t, err, "New()")
		ctx := t.Context()
		require.NoError(t, c.Set(ctx, "k", "v1"), "Set()")
		require.NoError(t, c.Delete(ctx, "k"), "Delete()")
		require.NoError(t, c.Set(ctx, "k", "stale"), "Set()")

		start := time.Now()
		require.NoError(t, c.Close(), "Close()")
		// Not the hour. (The bubble's clock moves while Close sleeps a
		// millisecond at a time for calls still under way, so "no time at
		// all" failed once in CI.)
		assert.Less(t, time.Since(start), time.Second, "Close() waited %v for the pending double delete; want no wait", time.Since(start))
		got, err := storedValue(t, store, "k")
		assert.ErrorIs(t, err, cache.ErrNotFound, "L2 Get() after Close() = %q, %v; want the pending double delete done", got, err)
	})
}

// TestRefreshAheadBacksOffAfterFailure protects a failing source from a
// reload per read: after a failed refresh the next waits a second.
func TestRefreshAheadBacksOffAfterFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var loads atomic.Int32
		c, err := cache.New[string](cache.WithTTL(10*time.Second), cache.WithTTLJitter(0), cache.WithRefreshAhead(0.5),
			cache.WithLoader(func(context.Context, string) (string, error) {
				if loads.Add(1) == 1 {
					return "v1", nil
				}
				return "", errors.New("source down")
			}))
		require.NoError(t, err)
		defer c.Close()
		_, _ = c.Get(ctx, "k")
		time.Sleep(6 * time.Second)
		for range 50 {
			v, err := c.Get(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, "v1", v, "the old value is served while refreshes fail")
			synctest.Wait()
		}
		assert.Equal(t, int32(2), loads.Load(), "one failed refresh, then none until a second has passed")
		// An entry keeps its refresh time as a lead over its expiry, within
		// 0.1% of the lead (here 3s) and 66µs: a few milliseconds past the
		// second.
		time.Sleep(time.Second - 10*time.Millisecond)
		synctest.Wait()
		_, _ = c.Get(ctx, "k")
		synctest.Wait()
		assert.Equal(t, int32(2), loads.Load(), "a refresh before the second has passed")
		time.Sleep(20 * time.Millisecond)
		synctest.Wait() // the cache's clock takes the tick of this instant
		_, _ = c.Get(ctx, "k")
		synctest.Wait()
		assert.Equal(t, int32(3), loads.Load())
	})
}

// TestHugeTTL: an expiry past 2262 used to wrap to a negative time, read
// as long past, so that a cache with such a TTL (math.MaxInt64 for "as
// good as never") missed on every Get. It now ends at the latest time an
// entry can hold.
func TestHugeTTL(t *testing.T) {
	ctx := context.Background()
	for _, ttl := range []time.Duration{250 * 365 * 24 * time.Hour, math.MaxInt64} {
		for _, refresh := range []bool{false, true} {
			// The default jitter, 10%: half the TTLs come out longer,
			// which used to wrap past math.MaxInt64 as well.
			opts := []cache.Option[string]{cache.WithTTL(ttl)}
			if refresh {
				opts = append(opts, cache.WithLoader(func(context.Context, string) (string, error) { return "loaded", nil }),
					cache.WithRefreshAhead(0.99))
			}
			c, err := cache.New(opts...)
			require.NoError(t, err, "New()")
			for i := range 20 {
				key := strconv.Itoa(i)
				require.NoError(t, c.Set(ctx, key, "v"), "Set()")
				v, err := c.Get(ctx, key)
				require.NoError(t, err, "Get() after Set() with WithTTL(%v), refresh ahead %v", ttl, refresh)
				require.Equal(t, "v", v, "Get() after Set() with WithTTL(%v), refresh ahead %v", ttl, refresh)
				exp, ok := cache.L1Expiry(c, key)
				require.True(t, ok, "L1 holds %q", key)
				require.True(t, exp.After(time.Now().Add(80*365*24*time.Hour)), "L1 entry of %q expires at %v with WithTTL(%v); want decades away (2116, the latest), not never or the past", key, exp, ttl)
			}
			require.NoError(t, c.Close(), "Close()")
		}
	}
}
