package cache

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// MaxL2Fills is maxL2Fills, for tests.
const MaxL2Fills = maxL2Fills

// Refreshing returns how many keys c holds in its map of keys being
// refreshed ahead.
func Refreshing[V any](c *Cache[V]) int {
	n := 0
	c.refreshing.Range(func(any, any) bool { n++; return true })
	return n
}

// MaxRefreshes is maxRefreshes, for tests.
const MaxRefreshes = maxRefreshes

// ClearL1 drops every L1 entry of c, as a restored subscription does.
func ClearL1[V any](c *Cache[V]) { c.clearL1() }

// ClockTick is clockTick, for tests.
const ClockTick = clockTick

// InL1 reports whether c's L1 holds an entry for key, expired or not.
func InL1[V any](c *Cache[V], key string) bool {
	_, ok := c.l1.GetTTL(key)
	return ok
}

// StartLoad starts the cache.load span of c as a loader call does.
func StartLoad[V any](c *Cache[V], ctx context.Context) (context.Context, trace.Span) {
	return c.tel.startLoad(ctx)
}

// WithL1OnExit makes h ristretto's OnExit, which ristretto calls on its
// own goroutine when it applies a Del (and on the caller's in Del and in
// a Set that replaces a value): a test holds ristretto's goroutine up in
// it, so that L1 writes stay in ristretto's queue.
func WithL1OnExit(h func()) Setting { return func(o *options) { o.testOnExit = h } }

// ApplyQueued has c wait for ristretto to apply its queued L1 writes, as
// it does every maxQueued writes, and take them out of its flights map.
func ApplyQueued[V any](c *Cache[V]) {
	c.flightsMu.Lock()
	c.applyQueued()
}

// InLookup holds c's L1 as a Get does while inside its lookup, until the
// returned function, which looks key up there, has been dropped.
func InLookup[V any](c *Cache[V]) func(key string) bool {
	l := c.lookups.Load()
	return func(key string) bool {
		_, ok := l.c.Get(key)
		return ok
	}
}

// L1Expiry returns when c's L1 entry for key expires (the zero time for
// never), and whether L1 holds one, once ristretto has applied the writes
// it has queued.
func L1Expiry[V any](c *Cache[V], key string) (time.Time, bool) {
	c.l1.Wait()
	v, ok := c.l1.Get(key)
	if !ok || v.expires() == 0 {
		return time.Time{}, ok
	}
	return time.Unix(0, v.expires()), true
}
