package rediscache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// instance is one service instance: its own Redis client, store and cache.
type instance struct {
	name  string
	store *rediscache.Store
	cache *cache.Cache[string]
	tel   *telemetrytest.Providers
}

// source is the source of truth behind the caches, counting loads.
type source struct {
	mu    sync.Mutex
	data  map[string]string
	loads atomic.Int32
}

func newSource() *source { return &source{data: map[string]string{}} }

func (s *source) put(k, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[k] = v
}

func (s *source) load(_ context.Context, k string) (string, error) {
	s.loads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[k]
	if !ok {
		return "", cache.ErrNotFound
	}
	return v, nil
}

// newInstance builds an instance on a client of its own to addr, sharing
// prefix and channel with the others.
func newInstance(t *testing.T, name, addr, prefix, channel string, src *source, opts ...rediscache.Option) *instance {
	t.Helper()
	in := &instance{name: name, tel: telemetrytest.New(t)}
	in.store = newStoreIn(t, newClient(t, addr), prefix, channel, opts...)
	copts := []cache.Option[string]{
		cache.WithStore(in.store), cache.WithTTL(time.Minute), cache.WithTTLJitter(0), cache.WithName(name),
		cache.WithMeterProvider(in.tel.MeterProvider), cache.WithTracerProvider(in.tel.TracerProvider),
	}
	if src != nil {
		copts = append(copts, cache.WithLoader(src.load))
	}
	c, err := cache.New(copts...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	in.cache = c
	return in
}

// requests returns the count of cache.requests at level with result.
func (in *instance) requests(t *testing.T, level, result string) int64 {
	t.Helper()
	// L2 errors are counted by error.type too: add up every type.
	var n int64
	for _, sm := range in.tel.Collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || m.Name != "cache.requests" {
				continue
			}
			for _, dp := range sum.DataPoints {
				if has(dp.Attributes, cache.AttrName, in.name) &&
					has(dp.Attributes, cache.AttrLevel, level) && has(dp.Attributes, cache.AttrResult, result) {
					n += dp.Value
				}
			}
		}
	}
	return n
}

func has(set attribute.Set, k attribute.Key, v string) bool {
	got, ok := set.Value(k)
	return ok && got.AsString() == v
}

// received returns how many invalidations from other instances it applied.
func (in *instance) received(t *testing.T) int64 {
	t.Helper()
	return in.tel.Int64(t, "cache.invalidations", cache.AttrName.String(in.name), cache.AttrDirection.String("received"))
}

// receivedSoFar is received, but 0 rather than a failure before the first.
func (in *instance) receivedSoFar(t *testing.T) int64 {
	t.Helper()
	var n int64
	for _, sm := range in.tel.Collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "cache.invalidations" {
				for _, dp := range sum.DataPoints {
					if has(dp.Attributes, cache.AttrName, in.name) && has(dp.Attributes, cache.AttrDirection, "received") {
						n += dp.Value
					}
				}
			}
		}
	}
	return n
}

func (in *instance) mustGet(t *testing.T, key, want string) {
	t.Helper()
	got, err := in.cache.Get(ctxWithin(t, 3*time.Second), key)
	require.NoError(t, err, "%s.Get(%q)", in.name, key)
	require.Equal(t, want, got, "%s.Get(%q)", in.name, key)
}

// eventuallyGets waits until the instance's Get of key returns want.
func (in *instance) eventuallyGets(t *testing.T, key, want string, wait time.Duration, why string) {
	t.Helper()
	var got string
	var err error
	ok := assert.Eventually(t, func() bool {
		got, err = in.cache.Get(ctxWithin(t, time.Second), key)
		return err == nil && got == want
	}, wait, 20*time.Millisecond, "%s: %s.Get(%q)", why, in.name, key)
	if !ok {
		t.Fatalf("%s.Get(%q) = %q, %v; want %q (%s)", in.name, key, got, err, want, why)
	}
}

// TestCachesShareInvalidations runs two cache instances over one Redis:
// a Set on one drops the other's L1 copy, and an instance ignores the
// announcements it made itself.
func TestCachesShareInvalidations(t *testing.T) {
	addr := sharedClient(t).Options().Addr
	prefix, channel := namespace(t)
	t.Cleanup(func() { deleteKeys(t, sharedClient(t), prefix) })
	a := newInstance(t, "a", addr, prefix, channel, nil)
	b := newInstance(t, "b", addr, prefix, channel, nil)
	ctx := ctxWithin(t, 5*time.Second)

	require.NoError(t, a.cache.Set(ctx, "k", "v1"))
	// A fill that an announcement overtakes does not write L1 (the value it
	// read may be older than the change announced): wait for a's.
	require.Eventually(t, func() bool { return b.receivedSoFar(t) == 1 }, 2*time.Second, 10*time.Millisecond)
	b.mustGet(t, "k", "v1") // from L2, now in b's L1
	b.mustGet(t, "k", "v1") // from L1
	assert.Equal(t, int64(1), b.requests(t, "l2", "hit"))
	assert.Equal(t, int64(1), b.requests(t, "l1", "hit"))

	require.NoError(t, a.cache.Set(ctx, "k", "v2"))
	b.eventuallyGets(t, "k", "v2", 2*time.Second, "a's Set should drop b's L1 copy")
	assert.Equal(t, int64(2), b.requests(t, "l2", "hit"), "b read v2 from L2")
	assert.GreaterOrEqual(t, b.received(t), int64(1))

	// a's own two announcements reach a before b's, which b publishes
	// after them; a must have skipped its own.
	require.NoError(t, b.cache.Set(ctx, "barrier", "x"))
	require.Eventually(t, func() bool { return a.received(t) == 1 }, 2*time.Second, 10*time.Millisecond,
		"a should apply b's announcement (and only it); applied %d", a.received(t))
	a.mustGet(t, "k", "v2")
	assert.Equal(t, int64(1), a.requests(t, "l1", "hit"), "a's own Set left its L1 copy in place")
	assert.Equal(t, int64(0), a.requests(t, "l1", "miss"))
	assert.Equal(t, int64(1), a.received(t), "a applied its own announcements")

	// Delete is announced too.
	b.mustGet(t, "k", "v2")
	require.NoError(t, a.cache.Delete(ctx, "k"))
	require.Eventually(t, func() bool {
		_, err := b.cache.Get(ctxWithin(t, time.Second), "k")
		return errors.Is(err, cache.ErrNotFound)
	}, 2*time.Second, 20*time.Millisecond, "a's Delete should drop b's L1 copy")
}

// TestCachesSurviveRedisOutage kills the Redis two cache instances share,
// mid-run: L1 keeps serving, L2 failures are reported and Get goes on to
// the loader, and once Redis is back each instance drops its L1 (it may
// have missed invalidations) and invalidations flow again.
func TestCachesSurviveRedisOutage(t *testing.T) {
	srv := startServer(t)
	prefix, channel := namespace(t)
	src := newSource()
	opts := []rediscache.Option{rediscache.WithTimeout(300 * time.Millisecond)}
	a := newInstance(t, "a", srv.addr(), prefix, channel, src, opts...)
	b := newInstance(t, "b", srv.addr(), prefix, channel, src, opts...)

	src.put("k", "v1")
	src.put("other", "o1")
	a.mustGet(t, "k", "v1") // loaded, into a's L1, and L2 in the background
	require.NoError(t, a.cache.Flush(ctxWithin(t, time.Second)))
	b.mustGet(t, "k", "v1") // from L2
	b.mustGet(t, "other", "o1")
	require.Equal(t, int32(2), src.loads.Load())

	srv.kill()

	within(t, 100*time.Millisecond, "L1 hits with Redis down", func() {
		a.mustGet(t, "k", "v1")
		b.mustGet(t, "k", "v1")
	})
	// A miss goes to L2, which fails, then to the loader.
	src.put("k2", "x")
	within(t, 2*time.Second, "a miss with Redis down", func() { a.mustGet(t, "k2", "x") })
	assert.GreaterOrEqual(t, a.requests(t, "l2", "error"), int64(1), "the L2 failure is counted")
	a.mustGet(t, "k2", "x") // now from L1
	// A write reports the L2 and invalidation failures, and still updates
	// a's L1; b misses the announcement.
	src.put("k", "v2")
	var err error
	within(t, 2*time.Second, "a Set with Redis down", func() { err = a.cache.Set(ctxWithin(t, time.Second), "k", "v2") })
	assert.Error(t, err, "Set with Redis down")
	a.mustGet(t, "k", "v2")
	b.mustGet(t, "k", "v1") // stale, as it must be until Redis is back

	srv.start() // a new, empty Redis on the same port
	// Back on the channel, b drops its L1, so its stale copy goes.
	b.eventuallyGets(t, "k", "v2", 5*time.Second, "b should drop its L1 on resubscribing")
	assert.GreaterOrEqual(t, b.requests(t, "l2", "miss"), int64(1), "b read the new, empty L2")

	// Invalidations flow again. The first writes may meet connections
	// still being re-established.
	b.mustGet(t, "other", "o1")
	src.put("other", "o2")
	require.Eventually(t, func() bool { return a.cache.Set(ctxWithin(t, time.Second), "other", "o2") == nil },
		5*time.Second, 50*time.Millisecond, "a's Set once Redis is back")
	b.eventuallyGets(t, "other", "o2", 2*time.Second, "a's Set should drop b's L1 copy again")
}
