package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
)

// Tests of the L1 writes that ristretto has queued and not applied yet,
// which the cache keeps in its flights map instead of waiting for
// ristretto after each one (see writeL1): a Get that follows a write sees
// it, before and after the cache waits for ristretto (every 64 writes or
// so), and a later change of the key is never lost behind the queued write.

// queuedKeys is enough new keys for the cache to wait for ristretto several
// times, with writes queued at every point of its batches.
const queuedKeys = 500

// flushQueued writes enough other new keys for the cache to have waited
// for ristretto to apply every write made before.
func flushQueued(t *testing.T, c *cache.Cache[string]) {
	t.Helper()
	for i := range 200 {
		require.NoError(t, c.Set(context.Background(), fmt.Sprintf("filler-%d", i), "x"))
	}
}

func TestQueuedSetIsSeenAndNotLost(t *testing.T) {
	ctx := context.Background()
	c := newCache[string](t, cache.WithMaxEntries(100_000))
	for i := range queuedKeys {
		k := fmt.Sprint(i)
		require.NoError(t, c.Set(ctx, k, "v1"))
		v, err := c.Get(ctx, k)
		require.NoError(t, err, "Get(%q) right after Set", k)
		require.Equal(t, "v1", v, "Get(%q) right after Set", k)
		// A second write of a key ristretto has not admitted yet is
		// dropped by ristretto unless the cache waits for the first.
		require.NoError(t, c.Set(ctx, k, "v2"))
		v, err = c.Get(ctx, k)
		require.NoError(t, err, "Get(%q) right after the second Set", k)
		require.Equal(t, "v2", v, "Get(%q) right after the second Set", k)
	}
	flushQueued(t, c)
	for i := range queuedKeys {
		k := fmt.Sprint(i)
		v, err := c.Get(ctx, k)
		require.NoError(t, err, "Get(%q) once the writes are applied", k)
		assert.Equal(t, "v2", v, "Get(%q) once the writes are applied", k)
	}
}

func TestQueuedWriteDoesNotShowAfterDelete(t *testing.T) {
	ctx := context.Background()
	c := newCache[string](t, cache.WithMaxEntries(100_000))
	for i := range queuedKeys {
		k := fmt.Sprint(i)
		require.NoError(t, c.Set(ctx, k, "v"))
		require.NoError(t, c.Delete(ctx, k))
		_, err := c.Get(ctx, k)
		require.ErrorIs(t, err, cache.ErrNotFound, "Get(%q) right after Delete", k)
	}
	flushQueued(t, c)
	for i := range queuedKeys {
		k := fmt.Sprint(i)
		_, err := c.Get(ctx, k)
		assert.ErrorIs(t, err, cache.ErrNotFound, "Get(%q) once the writes are applied", k)
	}
}

func TestQueuedLoadIsSeenThenReplaced(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	c := newCache[string](t, cache.WithMaxEntries(100_000), cache.WithLoader(counting(&calls)))
	for i := range queuedKeys {
		k := fmt.Sprint(i)
		for range 2 {
			v, err := c.Get(ctx, k)
			require.NoError(t, err)
			require.Equal(t, "value of "+k, v)
		}
		require.Equal(t, int32(i+1), calls.Load(), "loads after reading %d keys twice each", i+1)
		if i%2 == 0 {
			require.NoError(t, c.Set(ctx, k, "set"))
			v, err := c.Get(ctx, k)
			require.NoError(t, err)
			require.Equal(t, "set", v, "Get(%q) after a Set of a loaded key", k)
		} else {
			require.NoError(t, c.Delete(ctx, k))
		}
	}
	before := calls.Load()
	flushQueued(t, c)
	for i := range queuedKeys {
		k := fmt.Sprint(i)
		v, err := c.Get(ctx, k)
		require.NoError(t, err)
		if i%2 == 0 {
			assert.Equal(t, "set", v, "Get(%q) once the writes are applied", k)
		} else {
			assert.Equal(t, "value of "+k, v, "Get(%q) after Delete loads again", k)
		}
	}
	assert.Equal(t, before+queuedKeys/2, calls.Load(), "loads of the deleted keys")
}

func TestQueuedNotFoundIsCachedAndExpires(t *testing.T) {
	synctest.Test(t, testQueuedNotFound)
}

func testQueuedNotFound(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	c := newCache[string](t, cache.WithMaxEntries(100_000), cache.WithNegativeTTL(50*time.Millisecond),
		cache.WithLoader(func(context.Context, string) (string, error) {
			calls.Add(1)
			return "", cache.ErrNotFound
		}))
	for i := range queuedKeys {
		k := fmt.Sprint(i)
		for range 2 {
			_, err := c.Get(ctx, k)
			require.ErrorIs(t, err, cache.ErrNotFound)
		}
	}
	assert.Equal(t, int32(queuedKeys), calls.Load(), "a not found answer is kept for the next Get")
	time.Sleep(100 * time.Millisecond) // past the negative TTL, whether the writes were applied or not
	for i := range queuedKeys {
		_, err := c.Get(ctx, fmt.Sprint(i))
		require.ErrorIs(t, err, cache.ErrNotFound)
	}
	assert.Equal(t, int32(2*queuedKeys), calls.Load(), "expired not found answers load again")
}

// TestQueuedWritesConcurrently has goroutines write, read and delete keys
// of their own, each checking that a Get sees the goroutine's last change,
// while the others' writes fill ristretto's queue.
func TestQueuedWritesConcurrently(t *testing.T) {
	ctx := context.Background()
	c := newCache[string](t, cache.WithMaxEntries(100_000))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				k := fmt.Sprintf("g%d-%d", g, i%50)
				want := fmt.Sprint(i)
				if err := c.Set(ctx, k, want); err != nil {
					t.Error(err)
					return
				}
				if v, err := c.Get(ctx, k); err != nil || v != want {
					t.Errorf("Get(%q) = %q, %v after Set(%q)", k, v, err, want)
					return
				}
				if i%7 == 0 {
					if err := c.Delete(ctx, k); err != nil {
						t.Error(err)
						return
					}
					if v, err := c.Get(ctx, k); err == nil {
						t.Errorf("Get(%q) = %q after Delete", k, v)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestSetAfterFailedReloadOfExpiredQueuedWrite: a load that replaces an
// expired queued write (here a cached "not found" that expired before
// ristretto applied it) and fails must not forget that ristretto still
// holds that write: a Set of the key that followed without waiting would
// be dropped by ristretto (its policy takes the second new write of a key
// for an update) and lost once the cache waited. Ristretto's goroutine is
// held up (WithL1OnExit) so that the writes stay queued.
func TestSetAfterFailedReloadOfExpiredQueuedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var exits atomic.Int32 // 0: not armed
		release := make(chan struct{})
		var fail atomic.Bool
		c := newCache[string](t, cache.WithMaxEntries(100_000), cache.WithNegativeTTL(10*time.Millisecond),
			cache.WithLoader(func(context.Context, string) (string, error) {
				if fail.Load() {
					return "", errors.New("source unavailable")
				}
				return "", cache.ErrNotFound
			}),
			cache.WithL1OnExit(func() {
				// The first call is Del's own, the second ristretto's
				// goroutine applying it.
				if exits.Load() > 0 && exits.Add(1) == 3 {
					<-release
				}
			}))
		released := false
		defer func() {
			if !released {
				close(release) // before Close, which needs ristretto's goroutine
			}
		}()
		exits.Store(1)
		require.NoError(t, c.Delete(ctx, "stall"))
		synctest.Wait() // ristretto's goroutine is held up

		_, err := c.Get(ctx, "k") // a "not found", queued
		require.ErrorIs(t, err, cache.ErrNotFound)
		fail.Store(true)
		var wg sync.WaitGroup
		time.Sleep(20 * time.Millisecond) // the queued "not found" expires
		wg.Go(func() {
			_, err := c.Get(ctx, "k") // reloads, and fails
			assert.Error(t, err)
			assert.NoError(t, c.Set(ctx, "k", "v"))
		})
		synctest.Wait() // done, or (fixed) waiting for ristretto
		close(release)
		released = true
		wg.Wait()
		fail.Store(false)
		cache.ApplyQueued(c)
		v, err := c.Get(ctx, "k")
		require.NoError(t, err, "Get after Set")
		assert.Equal(t, "v", v, "Get after Set")
	})
}
