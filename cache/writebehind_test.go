package cache_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// Tests of the write-behind queue's coalescing, cancellation, bounded
// retries and dead letters (issue 13, item 3).

// batchesOf returns every batch f received (attempts, failed or not) as
// "key=value" strings.
func batchesOf(f *flushRecorder) [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, b := range f.attempts {
		var ws []string
		for _, w := range b {
			ws = append(ws, w.Key+"="+w.Value)
		}
		out = append(out, ws)
	}
	return out
}

// TestWriteBehindDeleteCancelsQueuedWrite: a Delete after a queued Set
// means the flush function never sees the key.
func TestWriteBehindDeleteCancelsQueuedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f flushRecorder
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(10, time.Hour))
		ctx := t.Context()
		require.NoError(t, c.Set(ctx, "gone", "v1"), "Set(gone)")
		require.NoError(t, c.Set(ctx, "kept", "v2"), "Set(kept)")
		require.NoError(t, c.Delete(ctx, "gone"), "Delete(gone)")
		require.NoError(t, c.Flush(ctx), "Flush()")
		want := [][]string{{"kept=v2"}}
		assert.Equal(t, want, batchesOf(&f), "batches = %q; want %q (the deleted key's write cancelled)", batchesOf(&f), want)

		// A Set after the Delete is queued again.
		require.NoError(t, c.Set(ctx, "gone", "v3"), "Set(gone) after Delete")
		require.NoError(t, c.Flush(ctx), "Flush()")
		want = append(want, []string{"gone=v3"})
		assert.Equal(t, want, batchesOf(&f), "batches = %q; want %q", batchesOf(&f), want)
	})
}

// TestWriteBehindCoalescesPerKey: two Sets of one key before a flush make
// one write, with the last value; one batch never holds a key twice.
func TestWriteBehindCoalescesPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f flushRecorder
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(10, time.Hour))
		ctx := t.Context()
		require.NoError(t, c.Set(ctx, "a", "1"))
		require.NoError(t, c.Set(ctx, "b", "1"))
		require.NoError(t, c.Set(ctx, "a", "2"))
		require.NoError(t, c.Set(ctx, "a", "3"))
		require.NoError(t, c.Flush(ctx), "Flush()")
		want := [][]string{{"a=3", "b=1"}}
		assert.Equal(t, want, batchesOf(&f), "batches = %q; want %q", batchesOf(&f), want)
	})
}

// TestWriteBehindCoalescingFreesQueueRoom: a coalesced Set takes no room
// in the queue, so it does not wait behind a full one.
func TestWriteBehindCoalescingFreesQueueRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := flushRecorder{block: make(chan struct{})}
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteQueue(2),
			cache.WithWriteBatch(1, time.Hour), cache.WithWriteBehindReject())
		ctx := t.Context()
		require.NoError(t, c.Set(ctx, "a", "1")) // in flight, blocked
		synctest.Wait()
		require.NoError(t, c.Set(ctx, "b", "1")) // queued: the queue is full
		require.NoError(t, c.Set(ctx, "b", "2"), "Set of a queued key on a full queue")
		err := c.Set(ctx, "c", "1")
		assert.ErrorIs(t, err, cache.ErrQueueFull, "Set of a new key on a full queue = %v", err)
		close(f.block)
		require.NoError(t, c.Flush(ctx))
		want := [][]string{{"a=1"}, {"b=2"}}
		assert.Equal(t, want, batchesOf(&f), "batches = %q; want %q", batchesOf(&f), want)
	})
}

// scriptedFlush is a flush function whose first call blocks until
// release is closed and fails if failFirst; later calls succeed at once.
// It records every call.
type scriptedFlush struct {
	failFirst bool
	release   chan struct{}
	mu        sync.Mutex
	attempts  [][]string
}

func (s *scriptedFlush) flush(ctx context.Context, batch []cache.Write[string]) error {
	s.mu.Lock()
	var ws []string
	for _, w := range batch {
		ws = append(ws, w.Key+"="+w.Value)
	}
	s.attempts = append(s.attempts, ws)
	first := len(s.attempts) == 1
	s.mu.Unlock()
	if !first {
		return nil
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.failFirst {
		return errSource
	}
	return nil
}

func (s *scriptedFlush) got() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}

// TestWriteBehindWritesInFlight: a Set of a key whose write is being
// flushed is queued after it (the batch being flushed is not changed); a
// Delete of such a key waits for the attempt, and a retry leaves out the
// writes deleted or overwritten meanwhile.
func TestWriteBehindWritesInFlight(t *testing.T) {
	tests := []struct {
		name      string
		failFirst bool
		during    func(ctx context.Context, c *cache.Cache[string]) error // while [a=1 b=1] is in flight
		want      [][]string
	}{
		{name: "Set", during: func(ctx context.Context, c *cache.Cache[string]) error { return c.Set(ctx, "a", "2") },
			want: [][]string{{"a=1", "b=1"}, {"a=2"}}},
		{name: "Set, the flush fails", failFirst: true,
			during: func(ctx context.Context, c *cache.Cache[string]) error { return c.Set(ctx, "a", "2") },
			want:   [][]string{{"a=1", "b=1"}, {"b=1"}, {"a=2"}}},
		{name: "Delete", during: func(ctx context.Context, c *cache.Cache[string]) error { return c.Delete(ctx, "a") },
			want: [][]string{{"a=1", "b=1"}}},
		{name: "Delete, the flush fails", failFirst: true,
			during: func(ctx context.Context, c *cache.Cache[string]) error { return c.Delete(ctx, "a") },
			want:   [][]string{{"a=1", "b=1"}, {"b=1"}}},
		{name: "Delete then Set, the flush fails", failFirst: true,
			during: func(ctx context.Context, c *cache.Cache[string]) error {
				if err := c.Delete(ctx, "a"); err != nil {
					return err
				}
				return c.Set(ctx, "a", "3")
			},
			want: [][]string{{"a=1", "b=1"}, {"b=1"}, {"a=3"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &scriptedFlush{failFirst: tc.failFirst, release: make(chan struct{})}
				c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(2, time.Hour))
				ctx := t.Context()
				require.NoError(t, c.Set(ctx, "a", "1"))
				require.NoError(t, c.Set(ctx, "b", "1"))
				synctest.Wait() // [a=1 b=1] in flight
				done := make(chan error, 1)
				go func() { done <- tc.during(ctx, c) }()
				synctest.Wait()
				close(f.release)
				require.NoError(t, <-done, "%s during the flush", tc.name)
				require.NoError(t, c.Flush(ctx), "Flush()")
				assert.Equal(t, tc.want, f.got(), "batches = %q; want %q", f.got(), tc.want)
			})
		})
	}
}

// TestWriteBehindDeleteWaitsForTheWriteInFlight: when Delete returns, no
// write of the key queued before it can still reach the source, so
// Delete waits for a flush attempt that carries the key, up to its ctx.
func TestWriteBehindDeleteWaitsForTheWriteInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &scriptedFlush{release: make(chan struct{})}
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(1, time.Hour))
		require.NoError(t, c.Set(t.Context(), "a", "1"))
		synctest.Wait() // in flight

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		err := c.Delete(ctx, "a")
		assert.ErrorIs(t, err, context.DeadlineExceeded, "Delete() while the write is in flight = %v", err)
		assert.Equal(t, time.Second, time.Since(start), "Delete() waited %v; want its ctx's 1s", time.Since(start))

		deleted := make(chan error, 1)
		go func() { deleted <- c.Delete(t.Context(), "a") }()
		synctest.Wait()
		select {
		case err := <-deleted:
			t.Fatalf("Delete() = %v while the key's write was being flushed; want it to wait", err)
		default:
		}
		close(f.release)
		require.NoError(t, <-deleted, "Delete()")
		_, err = c.Get(t.Context(), "a")
		assert.ErrorIs(t, err, cache.ErrNotFound, "Get() after Delete()")
	})
}

// TestWriteBehindRetriesAreBounded: a batch that always fails is tried
// once and retried exactly WithWriteBehindRetries times, then handed once
// to the dead-letter handler, counted, and left: Flush reports it and the
// writes after it go on.
func TestWriteBehindRetriesAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := telemetrytest.New(t)
		var (
			mu    sync.Mutex
			dead  [][]cache.Write[string]
			cause []error
		)
		var attempts [][]cache.Write[string]
		failing := true
		flush := func(_ context.Context, batch []cache.Write[string]) error {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, slices.Clone(batch))
			if failing {
				return errSource
			}
			return nil
		}
		const retries = 3
		c := newStrategyCache(t, cache.WithName("wb"), cache.WithMeterProvider(tel.MeterProvider),
			cache.WithWriteBehind(flush), cache.WithWriteBatch(2, time.Hour),
			cache.WithWriteBehindRetries(retries),
			cache.WithWriteBehindDeadLetter(func(ctx context.Context, batch []cache.Write[string], err error) {
				mu.Lock()
				defer mu.Unlock()
				dead = append(dead, slices.Clone(batch))
				cause = append(cause, err)
				if len(dead) == 1 {
					failing = false // the source recovers for the next batch
				}
			}))
		ctx := t.Context()
		require.NoError(t, c.Set(ctx, "a", "1"))
		require.NoError(t, c.Set(ctx, "b", "1")) // a full batch: flushed at once
		synctest.Wait()
		require.NoError(t, c.Set(ctx, "c", "1"))
		err := c.Flush(ctx)
		require.Error(t, err, "Flush() after a batch went to the dead-letter handler")
		assert.ErrorIs(t, err, errSource, "Flush() = %v; want it to wrap the flush error", err)
		assert.Contains(t, err.Error(), "2 writes", "Flush() = %v; want the count of dead-lettered writes", err)

		mu.Lock()
		first := []cache.Write[string]{{Key: "a", Value: "1"}, {Key: "b", Value: "1"}}
		want := [][]cache.Write[string]{first, first, first, first, {{Key: "c", Value: "1"}}}
		assert.Equal(t, want, attempts, "attempts = %v; want 1 + %d retries of the first batch, then the next", attempts, retries)
		assert.Equal(t, [][]cache.Write[string]{first}, dead, "dead letters = %v; want the failed batch once", dead)
		if assert.Len(t, cause, 1) {
			assert.ErrorIs(t, cause[0], errSource, "dead-letter error = %v", cause[0])
		}
		mu.Unlock()
		assert.Equal(t, int64(2), tel.Int64(t, "cache.write_behind.dead_letters", cache.AttrName.String("wb"),
			telemetry.ErrorType(errSource)),
			"cache.write_behind.dead_letters: %s", tel.Describe(t, "cache.write_behind.dead_letters"))
		tel.CheckMetrics(t, cache.ScopeName, append(slices.Clone(documented), deadLetterSpec), "cache.write_behind.dead_letters")
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{deadLetterSpec}, nil)

		// A later Flush with nothing dead-lettered meanwhile succeeds.
		require.NoError(t, c.Set(ctx, "d", "1"))
		require.NoError(t, c.Flush(ctx), "Flush() after the source recovered")
	})
}

var deadLetterSpec = telemetrytest.Instrument{Name: "cache.write_behind.dead_letters", Kind: telemetrytest.Counter,
	Unit: "{write}", Required: []attribute.Key{cache.AttrName, semconv.ErrorTypeKey}}

// TestWriteBehindDropsWithoutDeadLetterHandler: with no handler, a batch
// that used up its retries is dropped, counted and reported through Flush.
func TestWriteBehindDropsWithoutDeadLetterHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f flushRecorder
		f.failing.Store(true)
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(1, time.Hour),
			cache.WithWriteBehindRetries(0))
		require.NoError(t, c.Set(t.Context(), "a", "1"))
		err := c.Flush(t.Context())
		assert.ErrorIs(t, err, errSource, "Flush() = %v", err)
		assert.Equal(t, 1, f.attemptCount(), "attempts with WithWriteBehindRetries(0)")
		assert.NoError(t, c.Close(), "Close() with nothing left queued")
	})
}

func TestWriteBehindRetryOptionsValidated(t *testing.T) {
	flush := func(context.Context, []cache.Write[string]) error { return nil }
	dead := func(context.Context, []cache.Write[string], error) {}
	tests := []struct {
		name string
		opts []cache.Option[string]
		want string
	}{
		{"negative retries", []cache.Option[string]{cache.WithWriteBehind(flush), cache.WithWriteBehindRetries(-1)},
			"WithWriteBehindRetries(-1)"},
		{"dead letter without write-behind", []cache.Option[string]{cache.WithWriteBehindDeadLetter(dead)},
			"WithWriteBehindDeadLetter"},
		{"nil dead letter", []cache.Option[string]{cache.WithWriteBehind(flush), cache.WithWriteBehindDeadLetter[string](nil)},
			"WithWriteBehindDeadLetter(nil)"},
		{"dead letter of another type", []cache.Option[string]{cache.WithWriteBehind(flush),
			cache.Option[string](cache.WithWriteBehindDeadLetter(func(context.Context, []cache.Write[int], error) {}))},
			"WithWriteBehindDeadLetter: built for another value type: given a func(context.Context, []cache.Write[int], error)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cache.New(tc.opts...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestWriteBehindPostgresUpsert flushes into PostgreSQL with one upsert
// statement per batch, which PostgreSQL rejects when a batch holds a key
// twice ("ON CONFLICT DO UPDATE command cannot affect row a second time").
func TestWriteBehindPostgresUpsert(t *testing.T) {
	pool := testenv.PostgresPool(t, 4)
	schema := testenv.Schema(t, "cache_wb_")
	ctx := testenv.Context(t, 30*time.Second)
	table := pgx.Identifier{schema, "kv"}.Sanitize()
	_, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()+
		"; CREATE TABLE "+table+" (k text PRIMARY KEY, v text NOT NULL)")
	require.NoError(t, err, "creating the table")

	var flushErrs []error
	var mu sync.Mutex
	upsert := func(ctx context.Context, batch []cache.Write[string]) error {
		var sql strings.Builder
		sql.WriteString("INSERT INTO " + table + " (k, v) VALUES ")
		args := make([]any, 0, 2*len(batch))
		for i, w := range batch {
			if i > 0 {
				sql.WriteString(", ")
			}
			fmt.Fprintf(&sql, "($%d, $%d)", 2*i+1, 2*i+2)
			args = append(args, w.Key, w.Value)
		}
		sql.WriteString(" ON CONFLICT (k) DO UPDATE SET v = excluded.v")
		_, err := pool.Exec(ctx, sql.String(), args...)
		return err
	}
	c, err := cache.New[string](cache.WithWriteBehind(upsert), cache.WithWriteBatch(100, time.Hour),
		cache.WithWriteBehindRetries(2), cache.WithFlushErrorHandler(func(err error) {
			mu.Lock()
			flushErrs = append(flushErrs, err)
			mu.Unlock()
		}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	require.NoError(t, c.Set(ctx, "a", "1"))
	require.NoError(t, c.Set(ctx, "b", "1"))
	require.NoError(t, c.Set(ctx, "a", "2")) // the same key again, same batch
	require.NoError(t, c.Set(ctx, "gone", "1"))
	require.NoError(t, c.Delete(ctx, "gone"))
	require.NoError(t, c.Flush(ctx), "Flush() of an upsert batch")
	mu.Lock()
	assert.Empty(t, flushErrs, "failed flushes")
	mu.Unlock()

	rows, err := pool.Query(ctx, "SELECT k, v FROM "+table+" ORDER BY k")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var k, v string
		err := r.Scan(&k, &v)
		return k + "=" + v, err
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a=2", "b=1"}, got, "rows after Flush()")
	require.NoError(t, c.Close())
}

// TestWriteBehindConcurrentModel runs goroutines that each Set and Delete
// keys of their own, at random, against a flush function that is slow
// and fails now and then, and checks the guarantees of write-behind: no
// batch holds a key twice; once Delete returns, no write of the key from
// before it reaches the source; after Flush, the source holds the value of
// every key's last Set that no Delete followed.
func TestWriteBehindConcurrentModel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type landed struct {
			value string
			at    int64 // clock when the write landed
		}
		var (
			mu     sync.Mutex
			clock  int64
			source = map[string][]landed{}
			calls  int
		)
		tick := func() int64 {
			mu.Lock()
			defer mu.Unlock()
			clock++
			return clock
		}
		flush := func(ctx context.Context, batch []cache.Write[string]) error {
			mu.Lock()
			calls++
			fail := calls%5 == 0
			seen := map[string]bool{}
			for _, w := range batch {
				if seen[w.Key] {
					t.Errorf("a batch holds %q twice: %v", w.Key, batch)
				}
				seen[w.Key] = true
			}
			mu.Unlock()
			time.Sleep(time.Duration(len(batch)) * time.Millisecond) // in flight for a while
			if fail {
				return errSource
			}
			mu.Lock()
			defer mu.Unlock()
			clock++
			for _, w := range batch {
				source[w.Key] = append(source[w.Key], landed{w.Value, clock})
			}
			return nil
		}
		c := newStrategyCache(t, cache.WithWriteBehind(flush), cache.WithWriteBatch(8, 10*time.Millisecond),
			cache.WithWriteQueue(32))
		const goroutines, keysEach, ops = 6, 4, 300
		type last struct {
			deleted   bool
			value     string
			deletedAt int64
		}
		results := make([]map[string]last, goroutines)
		var wg sync.WaitGroup
		for g := range goroutines {
			results[g] = map[string]last{}
			wg.Go(func() {
				for i := range ops {
					k := fmt.Sprintf("g%d-k%d", g, (i*7+g)%keysEach)
					if (i*31+g)%5 == 0 {
						if err := c.Delete(t.Context(), k); err != nil {
							t.Errorf("Delete(%s) = %v", k, err)
						}
						results[g][k] = last{deleted: true, deletedAt: tick()}
					} else {
						v := fmt.Sprintf("v%d", i)
						if err := c.Set(t.Context(), k, v); err != nil {
							t.Errorf("Set(%s) = %v", k, err)
						}
						results[g][k] = last{value: v}
					}
					if i%17 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		require.NoError(t, c.Flush(t.Context()), "Flush()")
		mu.Lock()
		defer mu.Unlock()
		for g := range goroutines {
			for k, l := range results[g] {
				writes := source[k]
				if l.deleted {
					for _, w := range writes {
						if w.at > l.deletedAt {
							t.Errorf("%s: write of %s landed at %d, after the last Delete returned at %d", k, w.value, w.at, l.deletedAt)
						}
					}
					continue
				}
				if len(writes) == 0 || writes[len(writes)-1].value != l.value {
					t.Errorf("%s: source holds %v; want the last Set's %s last", k, writes, l.value)
				}
			}
		}
	})
}

// BenchmarkWriteBehindSet measures Set on a write-behind cache whose flush
// does nothing, over the Zipf trace of BenchmarkSet (hot keys repeat, so
// the queue coalesces them) and over distinct keys.
func BenchmarkWriteBehindSet(b *testing.B) {
	ctx := context.Background()
	trace := benchZipf()
	nop := func(context.Context, []cache.Write[string]) error { return nil }
	for _, tc := range []struct {
		name string
		key  func(i int) string
	}{
		{"zipf", func(i int) string { return trace[i&(benchTrace-1)] }},
		{"distinct", func(i int) string { return trace[i&(benchTrace-1)] + "/" + string(rune('a'+i%26)) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := cache.New[string](cache.WithWriteBehind(nop), cache.WithWriteBatch(100, 10*time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := tc.key(i)
				if err := c.Set(ctx, k, k); err != nil {
					b.Fatalf("Set() error = %v", err)
				}
				i++
			}
		})
	}
}

// TestWriteBehindFlushAfterClose: Flush on a closed write-behind cache
// returns ErrClosed, as its doc says.
func TestWriteBehindFlushAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f flushRecorder
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush))
		require.NoError(t, c.Set(t.Context(), "a", "1"))
		require.NoError(t, c.Close())
		err := c.Flush(t.Context())
		assert.ErrorIs(t, err, cache.ErrClosed, "Flush() after Close() = %v", err)
	})
}

// TestWriteBehindDeleteDuringRetryBackoff: a Delete that runs while a
// failed batch waits for its retry (no attempt in flight) returned at once,
// and the retry then wrote the deleted key's value to the source after
// Delete had returned.
func TestWriteBehindDeleteDuringRetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &scriptedFlush{failFirst: true, release: make(chan struct{})}
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(2, time.Hour))
		ctx := t.Context()
		require.NoError(t, c.Set(ctx, "a", "1"))
		require.NoError(t, c.Set(ctx, "b", "1"))
		synctest.Wait() // [a=1 b=1] in flight
		close(f.release)
		synctest.Wait() // the attempt failed: the worker waits to retry
		require.NoError(t, c.Delete(ctx, "a"), "Delete() while the batch waits for its retry")
		require.NoError(t, c.Flush(ctx), "Flush()")
		want := [][]string{{"a=1", "b=1"}, {"b=1"}}
		assert.Equal(t, want, f.got(), "batches = %q; want %q (no write of a after its Delete returned)", f.got(), want)
	})
}

// TestWriteBehindFlushFunctionMayDeleteItsKeys: a flush function that
// calls Delete, with the ctx it was given, for a key of the batch it is
// writing (a row the source rejected, say) used to deadlock: Delete waited
// for the attempt, which waited for the flush function, until Close.
func TestWriteBehindFlushFunctionMayDeleteItsKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c *cache.Cache[string]
		var mu sync.Mutex
		var attempts [][]string
		var deleteErr error
		flush := func(ctx context.Context, batch []cache.Write[string]) error {
			mu.Lock()
			var ws []string
			for _, w := range batch {
				ws = append(ws, w.Key+"="+w.Value)
			}
			attempts = append(attempts, ws)
			first := len(attempts) == 1
			mu.Unlock()
			if !first {
				return nil
			}
			err := c.Delete(ctx, "rejected")
			mu.Lock()
			deleteErr = err
			mu.Unlock()
			return errSource // the batch is retried without the deleted key
		}
		c = newStrategyCache(t, cache.WithWriteBehind(flush), cache.WithWriteBatch(2, time.Hour))
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		require.NoError(t, c.Set(ctx, "rejected", "1"))
		require.NoError(t, c.Set(ctx, "kept", "1"))
		require.NoError(t, c.Flush(ctx), "Flush() with a flush function that deletes a key of its batch")
		mu.Lock()
		defer mu.Unlock()
		assert.NoError(t, deleteErr, "Delete() from the flush function")
		want := [][]string{{"rejected=1", "kept=1"}, {"kept=1"}}
		assert.Equal(t, want, attempts, "attempts = %q; want %q", attempts, want)
	})
}

// TestWriteBehindMissServesTheQueuedWrite: a key whose L1 copy is gone
// (a clear after a resubscription, an eviction) while its write is queued
// or being flushed must not be loaded from the source, which still holds
// the older value: the miss answers the queued write.
func TestWriteBehindMissServesTheQueuedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := flushRecorder{block: make(chan struct{})}
		var loads atomic.Int32
		c := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(10, time.Hour),
			cache.WithLoader(func(context.Context, string) (string, error) {
				loads.Add(1)
				return "old", nil // the source, not yet written
			}))
		ctx := t.Context()

		require.NoError(t, c.Set(ctx, "k", "new"))
		cache.ClearL1(c)
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "new", v, "Get() of a key whose write is queued")

		// The same while the write is being flushed.
		flushed := make(chan error, 1)
		go func() { flushed <- c.Flush(ctx) }()
		synctest.Wait() // the flush function holds the batch
		cache.ClearL1(c)
		v, err = c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "new", v, "Get() of a key whose write is in flight")
		assert.Zero(t, loads.Load(), "loads from the source while its write was pending")

		close(f.block)
		require.NoError(t, <-flushed)
		cache.ClearL1(c)
		v, err = c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "old", v, "Get() after the flush reads the source (this test's does not store)")
		assert.Equal(t, int32(1), loads.Load())
	})
}
