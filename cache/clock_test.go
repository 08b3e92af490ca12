package cache_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
)

// TestExpiryAgainstCoarseClock: L1 hits check expiry against the cache's
// clock, which a goroutine of the cache advances every millisecond
// (cache.ClockTick). An entry is served until its TTL, never after the
// TTL plus one tick of that clock, and a read of an expired entry removes
// it.
func TestExpiryAgainstCoarseClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		const ttl = time.Second
		c, err := cache.New[string](cache.WithTTL(ttl), cache.WithTTLJitter(0))
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.Set(ctx, "k", "v"))

		time.Sleep(ttl - time.Nanosecond)
		synctest.Wait() // the clock has taken every tick so far
		v, err := c.Get(ctx, "k")
		require.NoError(t, err, "Get() just before the TTL")
		assert.Equal(t, "v", v)

		// One tick past the TTL, whether or not the clock's goroutine has
		// run at this very instant (no synctest.Wait): the tick at the
		// TTL itself has been taken.
		time.Sleep(cache.ClockTick + time.Nanosecond)
		_, err = c.Get(ctx, "k")
		require.ErrorIs(t, err, cache.ErrNotFound, "Get() a tick past the TTL")
		assert.False(t, cache.InL1(c, "k"), "the expired entry is removed when read")
	})
}

// TestExpiryNeverEarly: with the real clock, an entry is never reported
// gone before its TTL has passed, since the cache's clock never runs
// ahead of the time its writes use.
func TestExpiryNeverEarly(t *testing.T) {
	ctx := context.Background()
	const ttl = 20 * time.Millisecond
	c, err := cache.New[string](cache.WithTTL(ttl), cache.WithTTLJitter(0))
	require.NoError(t, err)
	defer c.Close()
	for i := range 20 {
		k := strconv.Itoa(i)
		set := time.Now()
		require.NoError(t, c.Set(ctx, k, "v"))
		for {
			_, err := c.Get(ctx, k)
			if err != nil {
				require.ErrorIs(t, err, cache.ErrNotFound)
				gone := time.Since(set)
				require.GreaterOrEqual(t, gone, ttl, "key %s gone %v after Set; want at least the TTL", k, gone)
				break
			}
			time.Sleep(time.Millisecond / 4)
		}
	}
}

// TestSetVisibleToNextGet: once Set returns, a Get on another goroutine
// sees the value, whether the key was new to L1 (ristretto admits it on
// its own goroutine, which Set waits for) or already there (replaced in
// place, which Set does not wait for). Run with -race.
func TestSetVisibleToNextGet(t *testing.T) {
	ctx := context.Background()
	c, err := cache.New[string](cache.WithMaxEntries(10_000))
	require.NoError(t, err)
	defer c.Close()
	type write struct{ k, v string }
	writes := make(chan write)
	var wg sync.WaitGroup
	wg.Go(func() {
		for w := range writes {
			got, err := c.Get(ctx, w.k)
			if assert.NoError(t, err, "Get(%q) after Set", w.k) {
				assert.Equal(t, w.v, got, "Get(%q) after Set", w.k)
			}
		}
	})
	defer wg.Wait()
	defer close(writes)
	for i := range 3000 {
		w := write{"k" + strconv.Itoa(i%200), "v" + strconv.Itoa(i)} // 200 new keys, then updates
		require.NoError(t, c.Set(ctx, w.k, w.v))
		writes <- w
	}
}
