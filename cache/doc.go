// Package cache is a two-level cache with the strategies and protections
// that services keep writing around raw caches: an in-process L1 in front
// of an optional shared L2 such as Redis, with a loader behind both.
//
// L1 is a [github.com/dgraph-io/ristretto/v2] cache. L2 is any [Store]:
// Redis through [github.com/otelpatterns/patterns/cache/rediscache], or
// the in-process [MemoryStore]. The loader ([WithLoader]) reads the source
// of truth.
//
//	// a shared L2, with cross-instance invalidation
//	l2, err := rediscache.New(redisClient)
//	...
//	products, err := cache.New( // a *cache.Cache[Product]
//		cache.WithLoader(db.LoadProduct), // read-through
//		cache.WithStore(l2),
//		cache.WithTTL(10*time.Minute),
//	)
//	...
//	p, err := products.Get(ctx, "sku-42")
//
// The value type is inferred from the loader here; New[Product] names it
// when no option takes a function or codec of it. A loader, writer or
// codec of another value type than the cache's does not compile (see
// [Option]).
//
// L1 holds values as they are, counted in entries ([WithMaxEntries]) unless
// [WithMaxBytes] sizes it by their encoded length. L2 holds them encoded by
// a [Codec] (JSON by default).
//
// # The read path
//
// [Cache.Get] asks each level in turn, and the first that answers wins:
//
//	Get(ctx, key)
//	  |
//	  v
//	L1 (in process) ---- hit ----> the value, or ErrNotFound for a cached
//	  |                            "not found"; past the refresh-ahead
//	  | miss                       point, also a reload in the background
//	  v
//	Bloom filter ------- key never added -------------> ErrNotFound
//	  | maybe added
//	  v
//	singleflight: the first miss of a key starts one fill; the misses of
//	  |   the key meanwhile wait for it, each until its own ctx is done
//	  v
//	L2 store ----------- hit ----> copy into L1 ------> the value
//	  | miss, error or undecodable value
//	  v
//	write-behind queue - holds a write of the key ----> that value
//	  | none
//	  v
//	loader ------------- ErrNotFound --> cache "not found" in L1
//	  |                                  for WithNegativeTTL --> ErrNotFound
//	  |----------------- other error -------------------> the error
//	  | value
//	  v
//	fill L1, add the key to the Bloom filter ---------> the value
//	  |
//	  '-> in the background: fill L2 with Add (never over a newer value)
//
// Each step is there only when its option is: the Bloom filter with
// [WithBloomFilter], L2 with [WithStore], the queue with
// [WithWriteBehind], the cached "not found" with [WithNegativeTTL]. A
// cache with neither a store nor a loader answers an L1 miss with
// [ErrNotFound] at once, and one without a loader answers an L2 miss so.
// The fill runs under [WithLoadTimeout], without the cancellation of the
// caller that started it, so that one caller giving up does not fail the
// others (see Latency). A fill writes L1 and
// L2 only if the key was not Set or Deleted meanwhile (see Consistency).
//
// With [WithRefreshAhead], an L1 hit on an entry that has lived the given
// fraction of its TTL starts a reload of the key in the background (one
// at a time per key) and is answered with the old value: the reload goes
// to the queue and the loader as a miss does, then replaces the value in
// L2 and L1; a key the loader no longer finds is dropped from L1, and a
// failed reload is tried again by a read a second later.
//
// # Strategies
//
//   - Cache-aside: the caller reads with [Cache.Get], loads on
//     [ErrNotFound] and stores with [Cache.Set]; [Cache.Delete] after a
//     change. For code that already has its own loading logic.
//   - Read-through ([WithLoader]): Get loads a missing key itself, once per
//     key however many callers miss it at the same moment, fills L1, answers,
//     and fills L2 in the background. For most reads.
//   - Write-through ([WithWriter]): Set writes the source first and updates
//     the cache only if that succeeded. When the cache must never be ahead of
//     the source.
//   - Write-behind ([WithWriteBehind]): Set updates the cache and queues the
//     write (one per key: the last value wins, and Delete cancels it); a
//     worker writes batches to the source, retrying failures a bounded
//     number of times before a dead-letter handler takes them, and
//     [Cache.Flush] and [Cache.Close] write out the queue. A miss (or a
//     refresh) of a key whose write the source may not have yet answers
//     that write rather than loading the older value. To absorb bursts of
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
//     load, as with [golang.org/x/sync/singleflight]; a caller that gives up
//     does not cancel it for the others.
//   - Penetration (requests for keys that do not exist): "not found" answers
//     are cached briefly ([WithNegativeTTL]), and a Bloom filter of existing
//     keys ([WithBloomFilter]) turns away unknown keys before they reach the
//     source.
//   - Stale data after a write: a load in flight when Set or Delete runs
//     writes nothing (see Consistency); [WithDoubleDelete] deletes again
//     after a delay, removing a value that a reader on another instance
//     loaded from the source before the write and put back in L2 after the
//     first delete.
//
// # Consistency
//
// After [Cache.Set] or [Cache.Delete] returns, this instance never serves
// an older value of the key, unless it returned an L2 failure (see below).
// Each key has a version that Set and Delete advance; a load's result, a
// cached "not found", an L2 value copied into L1 and a refresh-ahead
// result are written only if the version they started at still holds,
// and a Get that starts after the change does not share a load that began
// before it. A Set or Delete therefore waits for an L2 write of such a
// fill that is already under way (bounded by the store's own timeout and
// [WithLoadTimeout]). Versions are kept per stripe of keys (1,024
// stripes), so a change to one key can make a fill of another key that is
// in flight skip its write: that costs a later load, never a stale value.
//
// Across instances: an instance drops its L1 copy, and its fills in
// flight, when the announcement of another's change reaches it. A fill
// writes L2 with [Adder.Add] when the store has it (MemoryStore and
// rediscache's Store do), so that it never overwrites a value another
// instance set meanwhile; a fill that began before another instance's
// Delete can still put its value back into L2 after it, which is what
// [WithDoubleDelete] is for. A refresh-ahead replaces the L2 value with
// Set. If Set or Delete returns an L2 error, L2 may keep the older value,
// and an instance may read it again once its L1 copy is gone, unless the
// store repairs what it failed to write (rediscache's does).
//
// # Latency
//
// A miss waits for the L2 lookup and the loader, not for the L2 write: L1
// is filled, the caller answered, and L2 written on a background goroutine
// (at most 64 at once; beyond that a fill is dropped and counted). The L2
// lookup takes at most half the time left before the caller's deadline, or
// half of [WithLoadTimeout] if that is sooner, so that a store that does
// not answer leaves the loader the other half. [Cache.Flush] waits for the
// fills in flight; [Cache.Close] cancels them.
//
// # Several instances
//
// When the L2 store is also an [Invalidator] (the stores of
// [github.com/otelpatterns/patterns/cache/rediscache] are), every Set and
// Delete tells the other instances to drop their L1 copy; an instance
// ignores its own announcements. If the store becomes unreachable,
// L1 keeps serving, L2 failures are counted and recorded on spans, Get falls
// back to the loader, and Set and Delete return the failure after updating
// L1. When the store's subscription is restored, L1 is cleared, since
// announcements may have been missed meanwhile; a cache created while the
// store is down starts anyway and subscribes when it can. Between a change
// and the arrival of its announcement, other instances may serve the old
// value from L1; keep TTLs as short as that staleness allows.
//
// # Cost
//
// An L1 hit is a ristretto Get plus one atomic add when a meter provider
// could read the count (on one of 32 counters, picked by goroutine, so
// that concurrent readers do not contend), and an atomic load of the
// cache's clock to check expiry: no lock of the cache's own, no span, no
// allocation, no time.Now, and nothing that registers it with Close
// (Close runs the garbage collector instead, to know when no lookup is
// still in L1). The clock is the wall time, stored every
// millisecond by a goroutine of the cache's own that Close stops: an
// entry is never served before its TTL has passed, and not more than
// about a millisecond after (longer only while the process is starved of
// CPU; an entry to refresh ahead keeps its expiry to 66 µs, which adds
// that much). An expired entry is removed when it is read; one that is never
// read again stays in L1, unserved, until TinyLFU evicts it to make room.
//
// Set returns once a Get sees the value, and so does a miss that loads
// one. Replacing the value of a key L1 holds is immediate. A key new to
// L1 is queued for ristretto's goroutine to admit; rather than wait for
// it each time (a round trip of a few microseconds, half a miss's cost),
// the cache keeps the queued value beside L1, where a Get that misses in
// ristretto finds it (a hit), and waits for ristretto once for every 64
// such writes, or writes worth a sixteenth of L1's size, whichever comes
// first. A change of a key with a queued value waits for it first.
// Ristretto may decline a new key when L1 is full of more popular ones
// (TinyLFU), which is what keeps its hit ratio high: a declined value is
// served until the cache's next wait, not after.
//
// # Telemetry
//
// Metrics come from the meter named [ScopeName] of the [WithMeterProvider]
// provider (the global one by default). Every data point carries
// cache.name ([WithName]; empty by default).
//
//   - cache.requests (counter, {request}): lookups, by cache.level (l1,
//     l2) and cache.result (hit, miss, error). L2 errors also carry
//     error.type, as their span does (cache.decode for a value the codec
//     could not decode).
//   - cache.evictions (counter, {entry}): entries L1 dropped by itself:
//     evicted to make room for others, or expired and removed when read
//     (see Cost). Entries
//     removed by Delete, by an invalidation, by the clearing of L1 when a
//     lost subscription is restored, or by Close are not evictions.
//   - cache.loads (counter, {load}): loader calls, on a miss or a
//     refresh, by cache.result (success, not_found, error); error.type
//     on errors.
//   - cache.load.duration (histogram, s): the duration of loader calls,
//     with the attributes of cache.loads.
//   - cache.invalidations (counter, {key}): invalidations of L1 copies, by
//     cache.direction: sent to the other instances, or received from them.
//   - cache.write_behind.queue (gauge, {write}): writes queued by
//     [WithWriteBehind] and not yet written.
//   - cache.write_behind.flushes (counter, {flush}): batches written by
//     the write-behind worker, by cache.result (success, error);
//     error.type on errors.
//   - cache.write_behind.dead_letters (counter, {write}): writes the
//     write-behind worker gave up on after [WithWriteBehindRetries] and
//     handed to [WithWriteBehindDeadLetter], by error.type.
//   - cache.l2.fills (counter, {fill}): writes to L2 of loaded values,
//     made in the background once the caller has the value, by
//     cache.result: success; skipped (the key, or another of its version
//     stripe, changed meanwhile, or L2 already held a value or refused
//     the key, as rediscache does for a key whose write failed); dropped
//     (64 fills were in flight already); error, with error.type.
//
// Lookups and evictions are counted in memory and reported by
// asynchronous (observable) instruments when the SDK collects: a
// synchronous SDK counter would double the cost of an L1 hit. What that
// trades: these counts carry no exemplars (the load metrics do), they
// reach the SDK only at collection, and series that never moved are not
// reported. A cache reports them while it is reachable, closed or not,
// and once more at the first collection after it is garbage-collected, so
// that a cache closed before the final collection loses no count; then
// its series end. It reports at most 64 error.type values of L2 errors;
// later ones count under _OTHER. A cache whose meter provider is a no-op
// one, or the global one before a provider is set, does not count
// lookups, which no reader could see: the count would add a tenth to the
// cost of a hit. Once otel.SetMeterProvider installs a provider, it
// counts them from its clock's next tick, a millisecond or so later.
//
// Spans come from the tracer named [ScopeName] of the [WithTracerProvider]
// provider (the global one by default), only for work that leaves the
// process or has its own timeline: none for a lookup that L1 answers.
// Every span carries cache.name; a failed one has status Error and
// error.type.
//
//   - cache.l2.get (client): an L2 read. A miss is not a failure; a value
//     the codec cannot decode is, with error.type cache.decode.
//   - cache.l2.set (client): an L2 write. The fill of a loaded value
//     ends after the Get that loaded it, whose span is its parent.
//   - cache.l2.delete (client): an L2 delete.
//   - cache.load (internal): a loader call. [ErrNotFound] from the loader
//     is not a failure. A cache whose tracer can only make non-recording
//     spans (a no-op provider, or the global one before a provider is
//     set) starts none under a caller's span that is not recording
//     either: the loader's ctx carries the caller's trace as it would,
//     and a miss saves the span's allocations.
//   - cache.refresh (internal): a refresh-ahead reload, in the background,
//     in a trace of its own linked to the read that triggered it; it
//     holds the cache.load span and the writes. A key the source no longer
//     has fails it with error.type cache.not_found.
//   - cache.write_behind.flush (internal): a batch written by the
//     write-behind worker, in a trace of its own; with
//     cache.write_behind.batch_size, the writes in the batch.
//
// Span events, added to the caller's span when it is recording:
//
//   - cache.invalidation_failed: Set or Delete could not tell the other
//     instances to drop their copies (and returns that failure);
//     cache.name and error.type.
package cache
