package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/cache"
)

// TestRefreshHonoursLoadTimeout: a refresh-ahead reload used to run
// without the load timeout, so that a source that hung stopped the key's
// refreshes until Close. It now fails at the load timeout, and the next
// refresh may start a second after.
func TestRefreshHonoursLoadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var calls atomic.Int32
		c := newStrategyCache(t, cache.WithTTL(10*time.Second), cache.WithTTLJitter(0), cache.WithRefreshAhead(0.5),
			cache.WithLoadTimeout(2*time.Second),
			cache.WithLoader(func(ctx context.Context, _ string) (string, error) {
				if calls.Add(1) == 1 {
					return "v1", nil
				}
				<-ctx.Done() // the source hangs
				return "", ctx.Err()
			}))
		_, err := c.Get(ctx, "k")
		require.NoError(t, err)
		time.Sleep(6 * time.Second)
		_, _ = c.Get(ctx, "k") // the refresh starts, and hangs
		synctest.Wait()
		require.Equal(t, int32(2), calls.Load())
		// 9s: past the load timeout, and a second after (and the
		// millisecond by which an entry's refresh time may fall late).
		time.Sleep(3*time.Second + 10*time.Millisecond)
		synctest.Wait() // the cache's clock takes the tick of this instant
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "v1", v, "the old value is served until it expires")
		synctest.Wait()
		assert.Equal(t, int32(3), calls.Load(), "a hung refresh must end at the load timeout and let the next one start")
	})
}

// TestFailedRefreshesLeaveNoKeys: the map of keys being refreshed used to
// keep every key whose refresh failed, forever. It now holds only the
// refreshes in flight, at most a bounded number of them.
func TestFailedRefreshesLeaveNoKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		const keys = 20_000
		gate := make(chan struct{})
		var loaded atomic.Bool
		c := newStrategyCache(t, cache.WithTTL(10*time.Second), cache.WithTTLJitter(0), cache.WithRefreshAhead(0.5),
			cache.WithMaxEntries(4*keys),
			cache.WithLoader(func(ctx context.Context, _ string) (string, error) {
				if !loaded.Load() {
					return "v1", nil
				}
				<-gate
				return "", errors.New("source down")
			}))
		var hits []string
		for i := range keys {
			k := fmt.Sprint(i)
			_, err := c.Get(ctx, k)
			require.NoError(t, err)
			if _, err := c.Get(ctx, k); err == nil { // in L1 (ristretto may not admit every key)
				hits = append(hits, k)
			}
		}
		require.Greater(t, len(hits), keys/2)
		loaded.Store(true)
		time.Sleep(6 * time.Second)
		for _, k := range hits {
			_, _ = c.Get(ctx, k) // a refresh, which waits for gate and then fails
		}
		synctest.Wait()
		assert.LessOrEqual(t, cache.Refreshing(c), cache.MaxRefreshes, "refreshes in flight are bounded")
		close(gate)
		synctest.Wait()
		assert.Zero(t, cache.Refreshing(c), "a failed refresh must not leave its key behind")
		time.Sleep(4 * time.Second) // every entry has expired
		synctest.Wait()             // the cache's clock takes the tick of this instant
		synctest.Wait()
		assert.Zero(t, cache.Refreshing(c))
	})
}

// gatedTracerProvider is a no-op tracer provider whose tracer, when it
// starts a span named name, tells started and waits for release: a hook
// into the cache's background work at a known point.
type gatedTracerProvider struct {
	noop.TracerProvider
	name     string
	started  chan struct{}
	release  chan struct{}
	released atomic.Bool
}

func newGatedTracerProvider(name string) *gatedTracerProvider {
	return &gatedTracerProvider{name: name, started: make(chan struct{}, 1), release: make(chan struct{})}
}

func (p *gatedTracerProvider) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return gatedTracer{p: p}
}

type gatedTracer struct {
	noop.Tracer
	p *gatedTracerProvider
}

func (g gatedTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if name == g.p.name && !g.p.released.Load() {
		g.p.started <- struct{}{}
		<-g.p.release
	}
	return g.Tracer.Start(ctx, name, opts...)
}

// TestFailedRefreshDoesNotRestoreAValueOlderThanSet: a refresh-ahead
// triggered by a read before Set, whose goroutine read the key's version
// only after Set returned, put the old value it was triggered with back
// into L1 when its reload failed: Get served v1 after Set(v2) returned.
func TestFailedRefreshDoesNotRestoreAValueOlderThanSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		tp := newGatedTracerProvider("cache.refresh")
		var calls atomic.Int32
		c := newStrategyCache(t, cache.WithTTL(10*time.Second), cache.WithTTLJitter(0), cache.WithRefreshAhead(0.5),
			cache.WithTracerProvider(tp),
			cache.WithLoader(func(context.Context, string) (string, error) {
				if calls.Add(1) == 1 {
					return "v1", nil
				}
				return "", errors.New("source down")
			}))
		_, err := c.Get(ctx, "k")
		require.NoError(t, err)
		time.Sleep(6 * time.Second)
		v, err := c.Get(ctx, "k") // due: a refresh starts
		require.NoError(t, err)
		require.Equal(t, "v1", v)
		<-tp.started // the refresh's goroutine, before it reads anything
		require.NoError(t, c.Set(ctx, "k", "v2"))
		tp.released.Store(true)
		close(tp.release)
		synctest.Wait() // the reload has failed
		require.Equal(t, int32(2), calls.Load())
		v, err = c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "v2", v, "Get() after Set(v2) returned and a refresh failed")
	})
}

// TestPanickingLoaderIsAnError: a loader that panics on a goroutine of
// the cache (a shared load whose caller can give up, or a refresh-ahead)
// used to end the process. The callers get an error instead, and a
// refresh keeps serving the old value.
func TestPanickingLoaderIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		c := newStrategyCache(t, cache.WithTTL(10*time.Second), cache.WithTTLJitter(0), cache.WithRefreshAhead(0.5),
			cache.WithLoader(func(_ context.Context, key string) (string, error) {
				if calls.Add(1) == 1 && key == "k" {
					return "v1", nil
				}
				panic("loader bug")
			}))
		ctx, cancel := context.WithCancel(context.Background()) // can give up: the load runs in the background
		defer cancel()
		_, err := c.Get(ctx, "boom")
		require.ErrorContains(t, err, "panicked: loader bug")

		calls.Store(0)
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "v1", v)
		time.Sleep(6 * time.Second)
		v, err = c.Get(ctx, "k") // starts a refresh, whose loader panics
		require.NoError(t, err)
		assert.Equal(t, "v1", v)
		synctest.Wait()
		assert.Equal(t, int32(2), calls.Load(), "the refresh ran")
		v, err = c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "v1", v, "the old value after the refresh panicked")
	})
}
