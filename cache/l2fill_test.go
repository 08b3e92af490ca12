package cache_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// frozenStore is an L2 that never answers: every call waits until its
// context is done (as a Redis behind a blackhole does, until the client's
// timeout).
type frozenStore struct{}

func (frozenStore) Get(ctx context.Context, _ string) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (frozenStore) Set(ctx context.Context, _ string, _ []byte, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

func (frozenStore) Add(ctx context.Context, _ string, _ []byte, _ time.Duration) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

func (frozenStore) Delete(ctx context.Context, _ string) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestFrozenStoreMissWithinCallerDeadline: a miss used to wait for the L2
// lookup and then the L2 write, each bounded only by the load timeout
// (10s), so that a caller with a 300ms deadline failed although the loader
// answered at once. The lookup now takes at most half the time left and
// the write happens after the caller has its value.
func TestFrozenStoreMissWithinCallerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newStrategyCache(t, cache.WithStore(frozenStore{}),
			cache.WithLoader(func(_ context.Context, key string) (string, error) { return "value of " + key, nil }))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		v, err := c.Get(ctx, "k")
		require.NoError(t, err, "a healthy loader answers within the caller's deadline")
		assert.Equal(t, "value of k", v)
		assert.Equal(t, 150*time.Millisecond, time.Since(start), "the L2 lookup takes half the time left")

		// Without a deadline, half the load timeout.
		start = time.Now()
		_, err = c.Get(context.Background(), "other")
		require.NoError(t, err)
		assert.Equal(t, cache.DefaultLoadTimeout/2, time.Since(start))
	})
}

// gatedStore is a MemoryStore whose Adds wait for release (or their
// context).
type gatedStore struct {
	cache.MemoryStore
	release chan struct{}
}

func (s *gatedStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	return s.MemoryStore.Add(ctx, key, value, ttl)
}

// TestL2FillsAreBackgroundBoundedAndCounted: a miss answers before its L2
// fill; fills in flight are bounded, and those beyond the bound are
// dropped and counted; Flush waits for those in flight.
func TestL2FillsAreBackgroundBoundedAndCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := telemetrytest.New(t)
		store := &gatedStore{release: make(chan struct{})}
		c := newStrategyCache(t, cache.WithStore(store), cache.WithName("fills"), cache.WithMeterProvider(tel.MeterProvider),
			cache.WithLoader(func(_ context.Context, key string) (string, error) { return "value of " + key, nil }))
		const extra = 10
		for i := range cache.MaxL2Fills + extra {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := c.Get(ctx, fmt.Sprint(i))
			cancel()
			require.NoError(t, err, "Get(%d) must not wait for its L2 fill", i)
		}
		name, result := cache.AttrName.String("fills"), cache.AttrResult.String
		assert.Equal(t, int64(extra), tel.Int64(t, "cache.l2.fills", name, result("dropped")))

		flushed := make(chan error, 1)
		go func() { flushed <- c.Flush(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-flushed:
			t.Fatalf("Flush() = %v before the fills in flight ended", err)
		default:
		}
		close(store.release)
		require.NoError(t, <-flushed)
		assert.Equal(t, int64(cache.MaxL2Fills), tel.Int64(t, "cache.l2.fills", name, result("success")))
		_, err := storedValue(t, &store.MemoryStore, "0")
		assert.NoError(t, err, "the first fills reached L2")
	})
}
