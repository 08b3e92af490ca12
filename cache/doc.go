// Package cache is a two-level cache with the strategies and protections
// that services keep writing around raw caches: an in-process L1
// (github.com/dgraph-io/ristretto/v2) in front of an optional shared L2
// [Store] (Redis, in cache/rediscache), with a loader behind both.
//
//	l2, err := rediscache.New(redisClient) // shared L2, cross-instance invalidation
//	...
//	products, err := cache.New[Product](
//		cache.WithLoader(db.LoadProduct), // read-through
//		cache.WithStore(l2),
//		cache.WithTTL(10*time.Minute),
//	)
//	...
//	p, err := products.Get(ctx, "sku-42")
//
// L1 holds values as they are, counted in entries ([WithMaxEntries]) unless
// [WithMaxBytes] sizes it by their encoded length. L2 holds them encoded by
// a [Codec] (JSON by default).
//
// # Strategies
//
//   - Cache-aside: the caller reads with [Cache.Get], loads on
//     [ErrNotFound] and stores with [Cache.Set]; [Cache.Delete] after a
//     change. For code that already has its own loading logic.
//   - Read-through ([WithLoader]): Get loads a missing key itself, once per
//     key however many callers miss it at the same moment, fills L2 and then
//     L1. For most reads.
//   - Write-through ([WithWriter]): Set writes the source first and updates
//     the cache only if that succeeded. When the cache must never be ahead of
//     the source.
//   - Write-behind ([WithWriteBehind]): Set updates the cache and queues the
//     write; a worker writes batches to the source, retrying failures, and
//     [Cache.Flush] and [Cache.Close] write out the queue. To absorb bursts of
//     writes to a slow source, when the latest writes may be lost in a crash.
//   - Refresh-ahead ([WithRefreshAhead]): a hot entry near expiry is reloaded
//     in the background while the old value is served. For keys whose misses
//     are too expensive to let any reader wait on.
//
// # Protection
//
//   - Avalanche (many keys expiring at once): TTLs are jittered, ±10% by
//     default ([WithTTLJitter]).
//   - Breakdown (a hot key expiring under load): concurrent misses share one
//     load (golang.org/x/sync/singleflight); a caller that gives up does not
//     cancel it for the others.
//   - Penetration (requests for keys that do not exist): "not found" answers
//     are cached briefly ([WithNegativeTTL]), and a Bloom filter of existing
//     keys ([WithBloomFilter]) turns away unknown keys before they reach the
//     source.
//   - Stale data after a write: [WithDoubleDelete] deletes again after a
//     delay, removing a value that a concurrent reader loaded from the source
//     before the write and put back after the first delete.
//
// # Several instances
//
// When the L2 store is also an [Invalidator] (cache/rediscache is), every
// Set and Delete tells the other instances to drop their L1 copy; an
// instance ignores its own announcements. If the store becomes unreachable,
// L1 keeps serving, L2 failures are counted and recorded on spans, Get falls
// back to the loader, and Set and Delete return the failure after updating
// L1. When the store's subscription is restored, L1 is cleared, since
// announcements may have been missed meanwhile; a cache created while the
// store is down starts anyway and subscribes when it can. Between a change and the
// arrival of its announcement, other instances may serve the old value from
// L1; keep TTLs as short as that staleness allows.
//
// # Cost
//
// An L1 hit is a ristretto Get plus one counter increment: no lock of the
// cache's own, no span, no allocation with the default no-op providers.
// [WithRefreshAhead] adds a clock read to each hit. Set waits until
// ristretto has applied the value, so that the next Get sees it; ristretto
// may still decline to admit a new key when L1 is full of more popular ones
// (TinyLFU), which is what keeps its hit ratio high.
//
// # Telemetry
//
// Metrics, from the meter named [ScopeName] of the [WithMeterProvider]
// provider (the global one by default):
//
//	| name                       | kind                 | unit           | attributes                                  |
//	|----------------------------|----------------------|----------------|---------------------------------------------|
//	| cache.requests             | counter              | {request}      | cache.name, cache.level (l1, l2), cache.result (hit, miss, error) |
//	| cache.loads                | counter              | {load}         | cache.name, cache.result (success, not_found, error) |
//	| cache.load.duration        | histogram            | s              | cache.name, cache.result                    |
//	| cache.evictions            | counter              | {entry}        | cache.name (evicted for room, or expired)   |
//	| cache.invalidations        | counter              | {key}          | cache.name, cache.direction (sent, received) |
//	| cache.write_behind.queue   | gauge (asynchronous) | {write}        | cache.name                                  |
//	| cache.write_behind.flushes | counter              | {flush}        | cache.name, cache.result (success, error)   |
//
// Spans, from the tracer named [ScopeName] of the [WithTracerProvider]
// provider, only for work that leaves the process or has its own timeline:
//
//	| span                     | when                                  | attributes                                  |
//	|--------------------------|---------------------------------------|---------------------------------------------|
//	| cache.l2.get             | an L2 read (kind client)              | cache.name; error.type on failure (cache.decode for an undecodable value) |
//	| cache.l2.set             | an L2 write (kind client)             | cache.name; error.type on failure           |
//	| cache.l2.delete          | an L2 delete (kind client)            | cache.name; error.type on failure           |
//	| cache.load               | a loader call                         | cache.name; error.type on failure           |
//	| cache.refresh            | a refresh-ahead reload, linked to the read that triggered it | cache.name  |
//	| cache.write_behind.flush | a batch written by the worker         | cache.name, cache.write_behind.batch_size   |
package cache
