package cache

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/dgraph-io/ristretto/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Cache is a two-level cache of values of type V keyed by strings: an
// in-process L1 (ristretto, with TinyLFU admission) in front of an optional
// shared L2 [Store] such as Redis, with an optional loader behind both.
//
// Make a Cache with [New]: the zero Cache is not usable. A Cache is safe
// for concurrent use. An L1 hit takes no lock of the cache's own, starts
// no span and allocates nothing beyond ristretto's own work. The L2 store is a helper, not a dependency: when it fails, Get
// carries on with the loader and L1, and the failure is recorded.
type Cache[V any] struct {
	// What an L1 hit reads, first and together: on one cache line of
	// their own, which the hit does not have to fetch again after
	// ristretto's lookups have pushed the others out.
	lookups atomic.Pointer[lookups[V]] // L1 for Get, nil once Close has begun
	clock   *clock                     // what L1 hits check expiry and refresh-ahead against
	tel     *instruments               // l1Hits
	closed  atomic.Bool

	l1 *ristretto.Cache[string, entry[V]] // for the calls that enter (see enter)

	opts  options
	id    string // this instance, in invalidation messages
	codec Codec[V]

	load  func(context.Context, string) (V, error)
	write func(context.Context, string, V) error
	wb    *writeBehind[V]
	inv   Invalidator
	unsub func()
	bloom *keyFilter

	vers *[versionStripes]keyVersion // see keyVersion
	seed maphash.Seed

	flightsMu                 sync.Mutex
	flights                   map[string]*flight[V] // shared loads, and L1 writes not yet applied, by key
	queued                    []queuedWrite[V]      // the L1 writes in flights, fewer than maxQueued
	queuedCost, maxQueuedCost int64                 // their cost, kept under a sixteenth of L1's

	fillSlots chan struct{}              // L2 fills in flight, up to maxL2Fills
	fillsMu   sync.Mutex                 // guards fills
	fills     map[chan struct{}]struct{} // closed when each fill in flight ends

	refreshing sync.Map     // keys being refreshed ahead
	refreshes  atomic.Int64 // their number, up to maxRefreshes
	bgMu       sync.Mutex   // orders background starts with Close's wait
	bgClosed   bool
	bg         sync.WaitGroup
	bgCtx      context.Context
	bgCancel   context.CancelFunc
	active     atomic.Int64 // calls that write L1; Close waits for them
	closeOnce  sync.Once
	closeErr   error
}

// versionStripes is how many key versions a cache keeps: a power of two.
const versionStripes = 1024

// keyVersion is the version of the keys that hash to it, which Set, Delete
// and received invalidations advance, and which a fill (a load's result, a
// cached "not found", an L2 value copied into L1, a refresh) must still
// find unchanged to write what it found. Keys share versions by hash, so
// the table is bounded: a change to one key of a stripe makes the fills of
// the others that are in flight skip their write (they still answer their
// callers), which costs a later load and never a stale write.
//
// l1 orders the L1 writes of fills with those of Set and Delete: a fill
// checks the version and writes under it, so no fill writes after a change
// it did not see. l2 is held (read-locked) by fills and refreshes across
// their L2 write, and taken by Set and Delete after advancing the version
// and before their own L2 write: so a fill's L2 write that began before a
// change lands before that change's, not after it.
type keyVersion struct {
	n  atomic.Uint64
	l1 sync.Mutex
	l2 sync.RWMutex
}

// New returns a cache. With no options it is an L1-only cache of about
// 10,000 entries with a 5-minute TTL (±10%), which the caller fills with
// Set (cache-aside).
//
// New returns an error naming every invalid or conflicting option at
// once: a nil option, a nil function, store or codec, a negative size or
// duration, a fraction out of its range (NaN included), an option that
// needs another one (such as [WithWriteQueue] without [WithWriteBehind]).
// An option of another value type than V does not compile (see
// [Option]); one that reaches New all the same, converted to Option[V] by
// hand or kept in a [Setting], is reported too.
func New[V any](opts ...Option[V]) (*Cache[V], error) {
	o := defaultOptions()
	var errs []error
	for i, opt := range opts {
		if opt == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		opt(&o)
	}
	errs = append(errs, o.validate()...)
	c := &Cache[V]{opts: o, codec: JSON[V]{}}
	var flush func(context.Context, []Write[V]) error
	errs = append(errs, typed("WithCodec", o.codec, &c.codec)...)
	errs = append(errs, typed("WithLoader", o.loader, &c.load)...)
	errs = append(errs, typed("WithWriter", o.writer, &c.write)...)
	errs = append(errs, typed("WithWriteBehind", o.writeBehind, &flush)...)
	errs = append(errs, typed[func(context.Context, []Write[V], error)]("WithWriteBehindDeadLetter", o.deadLetter, nil)...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("cache: New: %w", errors.Join(errs...))
	}

	c.tel = newInstruments(o.name, o.tracer, o.meter)
	tel := c.tel // not c: ristretto's goroutine must not keep the cache reachable
	cfg := &ristretto.Config[string, entry[V]]{
		NumCounters: o.maxEntries * defaultCountersFactor,
		MaxCost:     o.maxEntries,
		BufferItems: 64,
		// A cost of 1 per entry is the whole cost: without this ristretto
		// adds its per-item overhead and holds far fewer entries than asked.
		IgnoreInternalCost: true,
		OnEvict:            func(*ristretto.Item[entry[V]]) { tel.onEvict() },
	}
	if h := o.testOnExit; h != nil {
		cfg.OnExit = func(entry[V]) { h() }
	}
	if o.maxBytes > 0 {
		cfg.NumCounters = max(o.maxBytes/64, 1000) * defaultCountersFactor / 10
		cfg.MaxCost = o.maxBytes
	}
	l1, err := ristretto.NewCache(cfg)
	if err != nil {
		return nil, fmt.Errorf("cache: New: L1: %w", err)
	}
	c.l1 = l1
	c.lookups.Store(&lookups[V]{l1})
	c.maxQueuedCost = cfg.MaxCost / 16
	c.clock = startClock(clockTick, c.tel.gateCounts)
	// A cache dropped without Close must not leave its clock ticking.
	runtime.AddCleanup(c, (*clock).release, c.clock)
	c.vers = new([versionStripes]keyVersion)
	c.fillSlots = make(chan struct{}, maxL2Fills)
	c.fills = make(map[chan struct{}]struct{})
	c.flights = make(map[string]*flight[V])
	c.seed = maphash.MakeSeed()
	observe(c.tel, c)
	c.id = newInstanceID()
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	if o.bloomKeys > 0 {
		c.bloom = &keyFilter{f: bloom.NewWithEstimates(o.bloomKeys, o.bloomFP)}
	}
	if inv, ok := o.store.(Invalidator); ok {
		c.inv = inv
		stop, err := inv.Subscribe(c.bgCtx, c.invalidated, c.clearL1)
		if err != nil {
			// The store is unreachable: start anyway, serving from L1 and
			// the loader, and keep trying to subscribe in the background.
			otel.Handle(fmt.Errorf("cache: subscribing to invalidations (will retry): %w", err))
			c.background(func() { c.resubscribe(inv) })
		} else {
			c.unsub = stop
		}
	}
	if flush != nil {
		c.wb = newWriteBehind(c, flush)
	}
	return c, nil
}

// typed stores v, the argument of the option name if it was given, in dst
// (when dst is not nil), and reports an error if v is not a T: an option
// of another value type converted to Option[V] by hand.
func typed[T any](name string, v any, dst *T) []error {
	if v == nil {
		return nil
	}
	t, ok := v.(T)
	if !ok {
		return []error{fmt.Errorf("%s: built for another value type: given a %T where this cache needs a %s", name, v, reflect.TypeFor[T]())}
	}
	if dst != nil {
		*dst = t
	}
	return nil
}

func newInstanceID() string {
	var b [8]byte
	_, _ = cryptorand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// resubscribe retries subscribing to invalidations until it succeeds or
// the cache closes. Close reads c.unsub after waiting for this goroutine.
func (c *Cache[V]) resubscribe(inv Invalidator) {
	wait := 100 * time.Millisecond
	for {
		t := time.NewTimer(wait)
		select {
		case <-c.bgCtx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		stop, err := inv.Subscribe(c.bgCtx, c.invalidated, c.clearL1)
		if err == nil {
			c.unsub = stop
			// Announcements sent before now were missed.
			c.clearL1()
			return
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// clearL1 drops every L1 entry, when announcements may have been missed
// or every key may have changed. As for a change of one key (changedL1),
// it advances every version first, so that no fill in flight writes what
// it found before, and a Get that starts later does not join a load that
// began before. The entries dropped are not evictions: cache.evictions
// counts what L1 drops by itself.
func (c *Cache[V]) clearL1() {
	c.tel.clearing.Add(1)
	defer c.tel.clearing.Add(-1)
	// Every write to L1 holds its key's stripe (changedL1, fillL1): with
	// them all held until ristretto's Clear returns, the clear sees each
	// write whole, before or after it, never one half done (queued after
	// the flights were cleared, then dropped by ristretto's Clear, which
	// let a Get after the Set answer with what the key held before).
	for i := range c.vers {
		kv := &c.vers[i]
		kv.l1.Lock()
		kv.n.Add(1)
	}
	defer func() {
		for i := range c.vers {
			c.vers[i].l1.Unlock()
		}
	}()
	c.flightsMu.Lock()
	clear(c.flights)
	c.queued, c.queuedCost = nil, 0 // Clear drops the writes ristretto has not applied
	c.flightsMu.Unlock()
	c.l1.Clear()
}

// invalidated drops the L1 copy of a key another instance changed.
func (c *Cache[V]) invalidated(source, key string) {
	if source == c.id {
		return
	}
	c.changedL1(c.version(key), key, func() { c.l1.Del(key) })
	if c.bloom != nil {
		c.bloom.add(key) // another instance has (or had) it
	}
	c.tel.invalidation.Add(context.Background(), 1, c.tel.receivedOpts...)
}

// background runs f on a goroutine that Close waits for, unless the cache
// is closing, in which case it reports false and does not run f.
func (c *Cache[V]) background(f func()) bool {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.bgClosed {
		return false
	}
	c.bg.Go(f)
	return true
}

// Get returns the value for key: from L1, else from L2 (and copies it into
// L1), else from the loader if there is one (and fills L1, then L2 in the
// background, see Latency in the package documentation). It
// returns an error matching [ErrNotFound] when no level has the key and no
// loader can load it, and the loader's error when the loader fails.
//
// Concurrent Gets that miss the same key share one load. A caller whose ctx
// is done stops waiting for it, with ctx's error; the load goes on for the
// others (and for the cache, even when every caller has left) until it
// ends, times out ([WithLoadTimeout]) or [Cache.Close] cancels it. Get
// returns [ErrClosed] after Close.
func (c *Cache[V]) Get(ctx context.Context, key string) (v V, err error) {
	// A hit is not counted by enter, which would put two contended atomic
	// writes on every hit, nor guarded by a deferred recover, which cost
	// as much: the lookup keeps the lookups it loaded reachable instead,
	// which Close waits to see collected before it closes ristretto (see
	// lookups).
	l1 := c.lookups.Load()
	if l1 == nil {
		return v, ErrClosed
	}
	e, ok := l1.c.Get(key)
	runtime.KeepAlive(l1)
	if !ok {
		return c.getMiss(ctx, key, false)
	}
	if exp := expiresAt(e.meta); exp != 0 && c.clock.Now() >= exp {
		return c.getMiss(ctx, key, true)
	}
	if c.tel.counting.Load() { // countHit, which is not inlined
		c.tel.l1Hits.Inc()
	}
	if e.meta&flagMask != 0 { // a "not found", or a refresh (WithRefreshAhead)
		if e.notFound() {
			return v, ErrNotFound
		}
		if c.clock.Now() >= e.refreshAt() {
			c.refresh(ctx, key)
		}
	}
	return e.v, nil
}

// getMiss is Get after an L1 miss, or after finding an expired entry in L1.
func (c *Cache[V]) getMiss(ctx context.Context, key string, expired bool) (V, error) {
	if !c.enter() {
		c.tel.count(levelL1, resultMiss)
		var zero V
		return zero, ErrClosed
	}
	defer c.leave()
	if expired {
		c.expire(key)
	}
	return c.miss(ctx, key)
}

// expire removes key's L1 entry if it has expired: it is not served, and
// must not take the room of live entries until TinyLFU finds it cold. A
// Set or fill of key that replaced it meanwhile is kept (they write under
// the same lock). The removal counts as an eviction, as ristretto's own
// removal of expired entries did.
func (c *Cache[V]) expire(key string) {
	kv := c.version(key)
	kv.l1.Lock()
	defer kv.l1.Unlock()
	if e, ok := c.l1.Get(key); ok && e.expires() != 0 && c.clock.Now() >= e.expires() {
		c.l1.Del(key)
		c.tel.onEvict()
	}
}

// miss is Get after ristretto's L1 lookup missed: an L1 write that
// ristretto has not applied yet answers (see writeL1), else L2 or the
// loader.
func (c *Cache[V]) miss(ctx context.Context, key string) (V, error) {
	var zero V
	if (c.bloom != nil && !c.bloom.has(key)) || (c.opts.store == nil && c.load == nil) {
		if e, ok := c.queuedEntry(key); ok {
			return c.queuedHit(e)
		}
		if e, ok := c.appliedEntry(key); ok {
			return c.queuedHit(e)
		}
		c.tel.count(levelL1, resultMiss)
		return zero, ErrNotFound
	}
	// Nobody can give up waiting on a ctx without Done: its miss loads on
	// this goroutine, which Close waits for (enter), and need not wait on
	// a channel.
	canLeave := ctx.Done() != nil
	f, lead, hit := c.join(key, canLeave)
	if hit {
		return c.queuedHit(f.entry)
	}
	if lead {
		if e, ok := c.appliedEntry(key); ok {
			v, err := c.queuedHit(e)
			c.land(key, f, v, err)
			return v, err
		}
	}
	c.tel.count(levelL1, resultMiss)
	if lead {
		budget := c.l2Budget(ctx)
		// The shared load must not end because the first caller gave up,
		// so it runs without the caller's cancellation (but with its
		// trace).
		if !canLeave {
			c.fly(ctx, key, f, budget)
			return f.v, f.err // landed, on this goroutine
		}
		if !c.background(func() { c.fly(ctx, key, f, budget) }) {
			c.land(key, f, zero, ErrClosed)
		}
	}
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-c.bgCtx.Done():
		return zero, ErrClosed
	}
}

// queuedHit answers a Get with e, an L1 write not yet applied: an L1 hit.
func (c *Cache[V]) queuedHit(e entry[V]) (V, error) {
	c.tel.countHit()
	if e.notFound() {
		var zero V
		return zero, ErrNotFound
	}
	return e.v, nil
}

// flight is a shared load of one key: concurrent misses of the key wait
// for the one that started it (as with golang.org/x/sync/singleflight,
// but on goroutines that Close cancels and waits for).
//
// A flight also stands for an L1 write of the key that ristretto has
// queued and not applied yet (queued, see writeL1): a miss of the key then
// answers with entry, as a hit, until the cache has waited for ristretto
// to apply it (maxQueued) or the key changes.
type flight[V any] struct {
	// done is closed when v and err are set. It is made (under flightsMu)
	// by the first caller that must wait on it: a leader that loads on its
	// own goroutine reads v and err when the load returns, and a miss
	// that nobody shares costs no channel.
	done chan struct{}
	v    V
	err  error
	ctx  loadContext // the load's, here to save an allocation

	// queued is set, with entry, when the flight stands for an L1 write
	// not yet applied; entry does not change after. afterQueued marks a
	// load that replaced an expired queued write: the write may still be
	// in ristretto's queue, which the load's own L1 write must wait for.
	// Both are guarded by flightsMu.
	queued      bool
	afterQueued bool
	entry       entry[V]
}

// queuedWrite is an L1 write ristretto had not applied when it was made.
type queuedWrite[V any] struct {
	key string
	f   *flight[V]
}

// maxQueued is how many L1 writes may wait in ristretto's queue, standing
// in flights, before the cache waits for ristretto to apply them: one
// Wait (a round trip to ristretto's goroutine) for maxQueued writes,
// rather than one for each. Their cost is bounded too, by a sixteenth of
// L1's (maxQueuedCost), so that the values the flights map holds, which
// ristretto may evict or decline meanwhile, add little to L1's bound.
const maxQueued = 64

// live reports whether e has not expired.
func (c *Cache[V]) live(e entry[V]) bool {
	return e.expires() == 0 || c.clock.Now() < e.expires()
}

// appliedEntry returns key's live L1 entry, if L1 holds one now: a Get
// whose lookup in ristretto missed a queued write, and whose lookup in
// the flights map came after the cache had waited for ristretto to apply
// the write and taken it out of the map, finds it here. GetTTL first,
// which does not count as a read: the key is usually not there.
func (c *Cache[V]) appliedEntry(key string) (entry[V], bool) {
	if _, ok := c.l1.GetTTL(key); !ok {
		return entry[V]{}, false
	}
	e, ok := c.l1.Get(key)
	return e, ok && c.live(e)
}

// queuedEntry returns the L1 write of key not yet applied, if there is a
// live one.
func (c *Cache[V]) queuedEntry(key string) (entry[V], bool) {
	c.flightsMu.Lock()
	defer c.flightsMu.Unlock()
	if f, ok := c.flights[key]; ok && f.queued && c.live(f.entry) {
		return f.entry, true
	}
	return entry[V]{}, false
}

// join returns the load of key in flight, or starts one, and reports
// whether the caller leads it (must run it). A leader that will wait on
// the load's done channel, rather than run it itself, says so with wait.
// If key has a live L1 write that ristretto has not applied, join
// returns its flight with hit set instead: its entry answers.
func (c *Cache[V]) join(key string, wait bool) (f *flight[V], lead, hit bool) {
	c.flightsMu.Lock()
	defer c.flightsMu.Unlock()
	afterQueued := false
	if f, ok := c.flights[key]; ok {
		switch {
		case f.queued && c.live(f.entry):
			return f, false, true
		case f.queued:
			afterQueued = true // expired: load afresh
		default:
			if f.done == nil {
				f.done = make(chan struct{})
			}
			return f, false, false
		}
	}
	f = &flight[V]{afterQueued: afterQueued}
	if wait {
		f.done = make(chan struct{})
	}
	c.flights[key] = f
	return f, true, false
}

// fly runs the load f of key under the load timeout, cancelled if the
// cache closes, with the values of the caller's ctx, and lands it.
func (c *Cache[V]) fly(caller context.Context, key string, f *flight[V], l2Budget time.Duration) {
	ctx := &f.ctx
	ctx.bg, ctx.values = c.bgCtx, caller
	if d := c.opts.loadTimeout; d > 0 {
		ctx.deadline = time.Now().Add(d)
	}
	defer ctx.end()
	var zero V
	landed := false
	defer func() {
		if !landed {
			// The loader (or codec) panicked. On a goroutine of the cache
			// the panic would end the process; the waiters get it as an
			// error instead, and must not wait forever either way.
			r := recover()
			err := fmt.Errorf("cache: the load of %s panicked: %v", brief.Quote(key), r)
			otel.Handle(err)
			c.land(key, f, zero, err)
		}
	}()
	v, err := c.fill(ctx, key, f, l2Budget)
	landed = true
	c.land(key, f, v, err)
}

// land ends f with its result: later misses start a load of their own,
// unless f stands for its L1 write, not yet applied (then they answer
// with that until the write is applied). Once f is out of the map (forget
// may have taken it out before), no caller can join it and make its
// channel: land reads it after.
func (c *Cache[V]) land(key string, f *flight[V], v V, err error) {
	c.flightsMu.Lock()
	if f.afterQueued && !f.queued {
		// The load replaced an expired L1 write that ristretto may still
		// hold in its queue, and wrote nothing itself: once f is out of
		// the map, nothing tells the next write of key to wait for it
		// (forget), and ristretto would drop that write. Wait here.
		c.flightsMu.Unlock()
		c.l1.Wait()
		c.flightsMu.Lock()
	}
	if g, ok := c.flights[key]; ok && g == f && !f.queued {
		delete(c.flights, key)
	}
	f.v, f.err = v, err
	done := f.done
	c.flightsMu.Unlock()
	if done != nil {
		close(done)
	}
}

// forget removes whatever load of key is in flight (or L1 write of key
// not yet applied), so that the next miss starts a new load. It reports
// whether ristretto may still hold an L1 write of key in its queue: then
// the caller must wait for it (l1.Wait) before writing key in L1 (see
// writeL1).
func (c *Cache[V]) forget(key string) (queued bool) {
	c.flightsMu.Lock()
	defer c.flightsMu.Unlock()
	if g, ok := c.flights[key]; ok {
		delete(c.flights, key)
		return g.queued || g.afterQueued
	}
	return false
}

// takeQueued removes the L1 write of key not yet applied, if there is
// one, as a write of key must before it writes L1, and reports whether
// ristretto may still hold an L1 write of key in its queue, which it must
// wait for (see writeL1). A load in flight stays.
func (c *Cache[V]) takeQueued(key string) (wait bool) {
	c.flightsMu.Lock()
	defer c.flightsMu.Unlock()
	g, ok := c.flights[key]
	if ok && g.queued {
		delete(c.flights, key)
	}
	return ok && (g.queued || g.afterQueued)
}

// enter registers a call that may write L1 (or wait on a shared load),
// unless the cache is closed. Close waits for registered calls before it
// closes L1, which must not be written after that (ristretto panics or
// blocks). Atomics order the two sides: a
// call either sees closed and backs out, or is counted before Close looks.
func (c *Cache[V]) enter() bool {
	c.active.Add(1)
	if c.closed.Load() {
		c.active.Add(-1)
		return false
	}
	return true
}

func (c *Cache[V]) leave() { c.active.Add(-1) }

// l2Budget returns how long the L2 lookup of a miss may take: half the
// time left, until ctx's deadline or the load timeout, whichever comes
// first, so that a store that does not answer leaves the loader the other
// half; 0 for no bound.
func (c *Cache[V]) l2Budget(ctx context.Context) time.Duration {
	limit := c.opts.loadTimeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); limit == 0 || left < limit {
			limit = max(left, 2) // 1ns: a lookup that fails at once
		}
	}
	return limit / 2
}

// loadContext is the context of a shared load: the deadline of the load
// timeout and the cancellation of the cache's background context (Close),
// with the values of the context of the caller that started it (its
// trace, for one).
//
// It makes its Done channel only when asked for it: most loaders that
// return at once never ask, and context.WithTimeout would cost each load a
// timer, four allocations and a lock of the background context (to
// register a child) that every concurrent load takes. Until Done is
// called, Err reads the clock and the background context itself; once it
// is, the channel and Err come from a context.WithDeadline of the
// background context, made then.
type loadContext struct {
	bg       context.Context // the cache's background context
	values   context.Context // the caller's
	deadline time.Time       // zero: none

	once    sync.Once
	started atomic.Bool // ctx and cancel are set
	ctx     context.Context
	cancel  context.CancelFunc
}

// Deadline returns the load timeout's deadline.
func (l *loadContext) Deadline() (time.Time, bool) {
	if l.deadline.IsZero() {
		return l.bg.Deadline()
	}
	return l.deadline, true
}

// Done makes the context's channel the first time it is called.
func (l *loadContext) Done() <-chan struct{} {
	l.once.Do(func() {
		if l.deadline.IsZero() {
			l.ctx, l.cancel = l.bg, func() {}
		} else {
			l.ctx, l.cancel = context.WithDeadline(l.bg, l.deadline)
		}
		l.started.Store(true)
	})
	return l.ctx.Done()
}

// Err reports Close (context.Canceled) or the load timeout
// (context.DeadlineExceeded), as the Done channel would.
func (l *loadContext) Err() error {
	if l.started.Load() {
		return l.ctx.Err()
	}
	if err := l.bg.Err(); err != nil {
		return err
	}
	if !l.deadline.IsZero() && !time.Now().Before(l.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value looks key up in the cache's context first (in the one Done made,
// once made), which holds no values but those by which the context
// package finds the cancellation of a parent (so that contexts derived
// from this one, which call Done first, need no goroutine), then in the
// caller's.
func (l *loadContext) Value(key any) any {
	parent := l.bg
	if l.started.Load() {
		parent = l.ctx
	}
	if v := parent.Value(key); v != nil {
		return v
	}
	return l.values.Value(key)
}

// end cancels the context, when the load is over: a Done called later,
// by something the loader left running, finds it done.
func (l *loadContext) end() {
	l.once.Do(func() {
		l.ctx, l.cancel = endedContext, func() {}
		l.started.Store(true)
	})
	l.cancel()
}

// endedContext is the context of a load that ended before anything asked
// for its Done channel.
var endedContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// fill looks key up in L2 (for at most l2Budget, if positive), then loads
// it, filling L1 unless key changed meanwhile (see keyVersion), and then
// L2 in the background.
func (c *Cache[V]) fill(ctx context.Context, key string, f *flight[V], l2Budget time.Duration) (V, error) {
	var zero V
	kv := c.version(key)
	ver := kv.n.Load()
	undecodable := false
	if c.opts.store != nil {
		var v V
		var ok bool
		l2ctx, cancel := ctx, context.CancelFunc(func() {})
		if l2Budget > 0 {
			l2ctx, cancel = context.WithTimeout(ctx, l2Budget)
		}
		v, ok, undecodable = c.getL2(l2ctx, key)
		cancel()
		if ok {
			ttl := c.ttl()
			e, cost := c.newEntry(v, ttl)
			c.fillL1(kv, ver, key, f, e, cost, ttl)
			return v, nil
		}
	}
	if c.load == nil {
		return zero, ErrNotFound
	}
	v, err := c.loadValue(ctx, key)
	if err != nil {
		if isNotFound(err) && c.opts.negativeTTL > 0 {
			c.fillL1(kv, ver, key, f, notFoundEntry[V](), 1, c.opts.negativeTTL)
		}
		return zero, err
	}
	ttl := c.ttl()
	e, cost := c.newEntry(v, ttl)
	c.fillL1(kv, ver, key, f, e, cost, ttl)
	if c.bloom != nil {
		c.bloom.add(key)
	}
	if c.opts.store != nil {
		// Add, unless L2 holds a value the codec cannot decode, which the
		// fill is to replace.
		c.fillL2Later(ctx, kv, ver, key, v, ttl, !undecodable)
	}
	return v, nil
}

// maxL2Fills bounds the L2 fills in flight; a fill beyond it is dropped
// and counted.
const maxL2Fills = 64

// fillL2Later writes v to L2 on a background goroutine, so that the caller
// does not wait for it, and counts the outcome in cache.l2.fills. Its span
// is a child of ctx's. It runs under the load timeout, and Close cancels
// it.
func (c *Cache[V]) fillL2Later(ctx context.Context, kv *keyVersion, ver uint64, key string, v V, ttl time.Duration, add bool) {
	select {
	case c.fillSlots <- struct{}{}:
	default:
		c.tel.l2Fills.Add(ctx, 1, c.tel.l2FillOpts[fillDropped]...)
		return
	}
	done := make(chan struct{})
	c.fillsMu.Lock()
	c.fills[done] = struct{}{}
	c.fillsMu.Unlock()
	end := func() {
		c.fillsMu.Lock()
		delete(c.fills, done)
		c.fillsMu.Unlock()
		close(done)
		<-c.fillSlots
	}
	parent := trace.SpanContextFromContext(ctx)
	started := c.background(func() {
		defer end()
		ctx := trace.ContextWithSpanContext(c.bgCtx, parent)
		if d := c.opts.loadTimeout; d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		result, err := c.fillL2(ctx, kv, ver, key, v, ttl, add)
		if err != nil {
			// Its span, cache.l2.set, has recorded it.
			c.tel.failed(ctx, trace.SpanFromContext(context.Background()), err, c.tel.l2Fills, nil, 0)
			return
		}
		c.tel.l2Fills.Add(ctx, 1, c.tel.l2FillOpts[result]...)
	})
	if !started {
		end()
	}
}

// waitFills waits until the L2 fills in flight when it was called have
// ended, or ctx is done.
func (c *Cache[V]) waitFills(ctx context.Context) error {
	c.fillsMu.Lock()
	pending := make([]chan struct{}, 0, len(c.fills))
	for ch := range c.fills {
		pending = append(pending, ch)
	}
	c.fillsMu.Unlock()
	for _, ch := range pending {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// version returns the version of key (shared with the keys of its stripe).
func (c *Cache[V]) version(key string) *keyVersion {
	return &c.vers[maphash.String(c.seed, key)&(versionStripes-1)]
}

// changing advances kv before a Set or Delete writes L2: fills in flight
// will not write, and an L2 write of a fill that already checked kv ends
// before changing returns, so that the change's own L2 write follows it.
func (c *Cache[V]) changing(kv *keyVersion) {
	kv.l2.Lock()
	kv.n.Add(1)
	kv.l2.Unlock()
}

// changedL1 advances kv again and applies a change of key to L1 with
// write: no fill that began before (nor one that read L2 before the
// change reached it) writes L1 after it, and a Get that starts later does
// not join a load that began before.
func (c *Cache[V]) changedL1(kv *keyVersion, key string, write func()) {
	kv.l1.Lock()
	defer kv.l1.Unlock()
	kv.n.Add(1)
	if c.forget(key) {
		c.l1.Wait() // see writeL1; a Del must not let the queued write show after it either
	}
	write()
}

// fillL1 writes e into L1 if key's version is still ver, and reports
// whether it did; f is the load whose result e is (nil for a refresh).
func (c *Cache[V]) fillL1(kv *keyVersion, ver uint64, key string, f *flight[V], e entry[V], cost int64, ttl time.Duration) bool {
	kv.l1.Lock()
	defer kv.l1.Unlock()
	if kv.n.Load() != ver {
		return false
	}
	if c.takeQueued(key) {
		c.l1.Wait()
	}
	c.writeL1(key, f, c.stamped(e, ttl), cost)
	return true
}

// fillL2 writes v into L2 if key's version is still ver, with Add if add
// is set and the store is an [Adder] (a fill must not overwrite a value
// another instance wrote meanwhile), else with Set (a refresh replaces the
// value). It reports fillSkipped if key changed or is being changed, or
// if Add found a value.
func (c *Cache[V]) fillL2(ctx context.Context, kv *keyVersion, ver uint64, key string, v V, ttl time.Duration, add bool) (int, error) {
	if !kv.l2.TryRLock() {
		return fillSkipped, nil
	}
	defer kv.l2.RUnlock()
	if kv.n.Load() != ver {
		return fillSkipped, nil
	}
	if a, ok := c.opts.store.(Adder); ok && add {
		added, err := c.addL2(ctx, a, key, v, ttl)
		if err == nil && !added {
			return fillSkipped, nil
		}
		return fillSuccess, err
	}
	return fillSuccess, c.setL2(ctx, key, v, ttl)
}

// getL2 reads key from the store, reporting a hit, and whether it found a
// value the codec could not decode. Misses, store errors and undecodable
// values all count as misses for the caller.
func (c *Cache[V]) getL2(ctx context.Context, key string) (_ V, hit, undecodable bool) {
	var zero V
	ctx, span := c.tel.tracer.Start(ctx, "cache.l2.get", c.tel.clientSpan...)
	defer span.End()
	b, err := c.opts.store.Get(ctx, key)
	switch {
	case err == nil:
	case isNotFound(err):
		c.tel.count(levelL2, resultMiss)
		return zero, false, false
	default:
		c.tel.countL2Error(err)
		telemetry.RecordError(span, err)
		return zero, false, false
	}
	v, err := c.codec.Unmarshal(b)
	if err != nil {
		err = &DecodeError{Key: key, Err: err}
		c.tel.countL2Error(err)
		telemetry.RecordError(span, err)
		return zero, false, true
	}
	c.tel.count(levelL2, resultHit)
	return v, true, false
}

func (c *Cache[V]) addL2(ctx context.Context, a Adder, key string, v V, ttl time.Duration) (bool, error) {
	b, err := c.codec.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("cache: encoding the value of %q: %w", key, err)
	}
	ctx, span := c.tel.tracer.Start(ctx, "cache.l2.set", c.tel.clientSpan...)
	defer span.End()
	added, err := a.Add(ctx, key, b, ttl)
	if err != nil {
		telemetry.RecordError(span, err)
		return false, fmt.Errorf("cache: L2 add %q: %w", key, err)
	}
	return added, nil
}

func (c *Cache[V]) setL2(ctx context.Context, key string, v V, ttl time.Duration) error {
	b, err := c.codec.Marshal(v)
	if err != nil {
		return encodeError{fmt.Errorf("cache: encoding the value of %s: %w", brief.Quote(key), err)}
	}
	ctx, span := c.tel.tracer.Start(ctx, "cache.l2.set", c.tel.clientSpan...)
	defer span.End()
	if err := c.opts.store.Set(ctx, key, b, ttl); err != nil {
		telemetry.RecordError(span, err)
		return fmt.Errorf("cache: L2 set %s: %w", brief.Quote(key), err)
	}
	return nil
}

// encodeError is setL2's report of a value the codec could not encode.
type encodeError struct{ error }

func (e encodeError) Unwrap() error { return e.error }

// newEntry returns the L1 entry of v and its cost.
func (c *Cache[V]) newEntry(v V, ttl time.Duration) (entry[V], int64) {
	e := entry[V]{v: v}
	cost := int64(1)
	if c.opts.maxBytes > 0 {
		if b, err := c.codec.Marshal(v); err == nil {
			cost = int64(len(b)) + 1
		}
	}
	return e, cost
}

// writeL1 stores e, stamped with its expiry (see stamped), so that a Get
// that follows finds it; f is the load whose result e is, if any. It
// is called under key's stripe lock (see keyVersion), after waiting for
// any earlier write of key that ristretto may still hold in its queue
// (forget, mustWait).
//
// Ristretto replaces the value of a key it holds at once, but queues a new
// key for its goroutine to admit (or decline) later. So after the write,
// writeL1 looks the key up without counting it as a read (GetTTL): if it
// is there, the value is e. If it is not there yet, rather than wait for
// ristretto to apply its queue (Wait, a round trip to its goroutine that
// costs microseconds, about half a miss's cost), writeL1 keeps e in the
// flights map, in f or a flight of its own, marked queued: a Get that
// misses in ristretto finds it there and answers with it, as a hit
// (join, queuedEntry). After maxQueued such writes the cache waits once
// for ristretto and takes them out of the map; a Set, Delete, fill or
// invalidation of the key waits for ristretto first, since ristretto
// would drop a second queued write of a key it has not admitted yet (its
// policy takes it for an update of a key it holds), and since a queued
// write must not show after a Delete. As before, a key TinyLFU declines
// is not kept once the wait is over.
func (c *Cache[V]) writeL1(key string, f *flight[V], e entry[V], cost int64) {
	c.l1.Set(key, e, cost)
	if _, ok := c.l1.GetTTL(key); ok {
		return
	}
	c.flightsMu.Lock()
	if len(c.queued) < maxQueued-1 && c.queuedCost+cost <= c.maxQueuedCost {
		if f == nil {
			f = &flight[V]{}
		}
		f.queued, f.entry = true, e
		c.flights[key] = f
		c.queued = append(c.queued, queuedWrite[V]{key, f})
		c.queuedCost += cost
		c.flightsMu.Unlock()
		return
	}
	// Full: wait for ristretto to apply this write and the queued ones.
	c.applyQueued()
}

// applyQueued waits for ristretto to apply the L1 writes it had queued,
// and takes those the flights map holds out of it. It is called with
// flightsMu held, and releases it.
func (c *Cache[V]) applyQueued() {
	applied := c.queued
	c.queued, c.queuedCost = nil, 0
	c.flightsMu.Unlock()
	c.l1.Wait()
	if len(applied) == 0 {
		return
	}
	c.flightsMu.Lock()
	for _, w := range applied {
		if g, ok := c.flights[w.key]; ok && g == w.f {
			delete(c.flights, w.key)
		}
	}
	if c.queued == nil { // reuse the slice
		clear(applied)
		c.queued = applied[:0]
	}
	c.flightsMu.Unlock()
}

// loadValue calls the loader under a span, recording its outcome. With
// write-behind, a write of key that the source may not have yet answers
// instead, unrecorded: loading would read the older value.
func (c *Cache[V]) loadValue(ctx context.Context, key string) (V, error) {
	if c.wb != nil {
		// The source is older than a write still queued for it.
		if v, ok := c.wb.latest(key); ok {
			return v, nil
		}
	}
	ctx, span := c.tel.startLoad(ctx)
	defer span.End()
	// The clock is read only for a duration histogram that records: two
	// time.Now are a tenth of the cache's own work on a miss.
	var hist metric.Float64Histogram
	var start time.Time
	if c.tel.loadDuration.Enabled(ctx) {
		hist, start = c.tel.loadDuration, time.Now()
	}
	v, err := c.load(ctx, key)
	var d float64
	if hist != nil {
		d = time.Since(start).Seconds()
	}
	result := loadSuccess
	switch {
	case err == nil:
	case isNotFound(err):
		result = loadNotFound
	default:
		c.tel.failed(ctx, span, err, c.tel.loads, hist, d)
		return v, err
	}
	c.tel.loads.Add(ctx, 1, c.tel.loadOpts[result]...)
	if hist != nil {
		hist.Record(ctx, d, c.tel.loadDurOpts[result]...)
	}
	return v, err
}

// refresh reloads key, whose L1 entry is due for a refresh, in the
// background, once at a time per key and under the load timeout. The map
// of keys being refreshed holds those in flight, at most maxRefreshes:
// when it is full, a due entry is refreshed by a later read.
func (c *Cache[V]) refresh(ctx context.Context, key string) {
	if c.closed.Load() {
		return
	}
	if _, busy := c.refreshing.Load(key); busy {
		return
	}
	if c.refreshes.Add(1) > maxRefreshes {
		c.refreshes.Add(-1)
		return
	}
	if _, busy := c.refreshing.LoadOrStore(key, struct{}{}); busy {
		c.refreshes.Add(-1)
		return
	}
	done := func() {
		c.refreshing.Delete(key)
		c.refreshes.Add(-1)
	}
	link := trace.LinkFromContext(ctx)
	started := c.background(func() {
		// Last: a read meanwhile must still find the key being refreshed.
		defer done()
		defer func() {
			if r := recover(); r != nil { // a panicking loader must not end the process
				otel.Handle(fmt.Errorf("cache: the refresh of %s panicked: %v", brief.Quote(key), r))
			}
		}()
		ctx, span := c.tel.tracer.Start(c.bgCtx, "cache.refresh", trace.WithLinks(link), trace.WithAttributes(c.tel.name))
		defer span.End()
		if d := c.opts.loadTimeout; d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		kv := c.version(key)
		ver := kv.n.Load()
		v, err := c.loadValue(ctx, key)
		if err != nil {
			// Keep serving the old value until it expires, and refresh it
			// again a second from now, so that a failing source sees one
			// reload a second rather than one per read; a "not found"
			// removes it, since the key is gone from the source.
			if isNotFound(err) {
				c.dropL1(kv, key)
			} else {
				c.retryRefresh(kv, ver, key)
			}
			telemetry.RecordError(span, err)
			return
		}
		// A Set or Delete since the load began wins: the refresh writes
		// nothing then.
		ttl := c.ttl()
		if c.opts.store != nil {
			_, _ = c.fillL2(ctx, kv, ver, key, v, ttl, false)
		}
		e, cost := c.newEntry(v, ttl)
		c.fillL1(kv, ver, key, nil, e, cost, ttl)
	})
	if !started {
		done()
	}
}

// retryRefresh puts off the next refresh of key, whose reload failed,
// by refreshRetry. It rewrites the entry L1 holds now, not the one that
// triggered the refresh: a Set may have replaced that one before the
// refresh read ver.
func (c *Cache[V]) retryRefresh(kv *keyVersion, ver uint64, key string) {
	kv.l1.Lock()
	defer kv.l1.Unlock()
	if kv.n.Load() != ver {
		return
	}
	cur, ok := c.l1.Get(key)
	if !ok || cur.notFound() {
		return
	}
	now := time.Now().UnixNano()
	if exp := cur.expires(); exp != 0 && exp <= now {
		return
	}
	_, cost := c.newEntry(cur.v, 0)
	if c.takeQueued(key) {
		c.l1.Wait()
	}
	// The same expiry, and a refresh a second from now: no later than
	// that by more than 0.1% of the time the entry has left (see packed).
	c.writeL1(key, nil, cur.packed(cur.expires(), now+int64(refreshRetry)), cost)
}

// dropL1 removes key from L1 (and its L1 write not yet applied), when a
// refresh finds it gone from the source.
func (c *Cache[V]) dropL1(kv *keyVersion, key string) {
	kv.l1.Lock()
	defer kv.l1.Unlock()
	if c.takeQueued(key) {
		c.l1.Wait()
	}
	c.l1.Del(key)
}

// refreshRetry is how long after a failed refresh-ahead reload the next
// one may start.
const refreshRetry = time.Second

// stamped returns e set to expire ttl from now (never if ttl is 0) and,
// with WithRefreshAhead, to be refreshed once its fraction of ttl has
// passed. A TTL that would end past what an entry can hold (the year
// 2116) ends there.
func (c *Cache[V]) stamped(e entry[V], ttl time.Duration) entry[V] {
	if ttl <= 0 {
		return e.packed(0, 0)
	}
	now := time.Now().UnixNano()
	limit := time.Duration(expiryMask&^codeMask - now)
	expires := now + int64(min(ttl, limit))
	var refreshAt int64
	if c.opts.refreshAhead > 0 {
		in := float64(ttl) * c.opts.refreshAhead
		refreshAt = now + int64(limit)
		if in < float64(limit) {
			refreshAt = now + int64(in)
		}
	}
	return e.packed(expires, refreshAt)
}

// maxRefreshes bounds the refresh-ahead reloads in flight.
const maxRefreshes = 1024

// ttl returns the TTL for a new entry, jittered.
func (c *Cache[V]) ttl() time.Duration {
	t := c.opts.ttl
	if t == 0 || c.opts.jitter == 0 {
		return t
	}
	j := c.opts.jitter * (2*rand.Float64() - 1)
	if jt := float64(t) + j*float64(t); jt >= math.MaxInt64 {
		return math.MaxInt64 // not a wrap to the past
	}
	return t + time.Duration(j*float64(t))
}

// Set stores v under key in L1 and L2, and tells the other instances to
// drop their L1 copies.
//
// With [WithWriter] (write-through), Set first writes v to the source and
// returns the writer's error, leaving the cache untouched, if that fails.
// With [WithWriteBehind], Set updates the cache and queues the write,
// waiting for room in a full queue until ctx is done (or failing with
// [ErrQueueFull], see [WithWriteBehindReject]).
//
// An L2 or invalidation failure does not undo the rest: L1 is updated, and
// Set returns the failure so that the caller knows other instances may not
// see v until their copies expire.
//
// Once Set returns, this instance never serves an older value of key: a
// load, an L2 read or a refresh that was in flight writes nothing, and a
// Get that starts later does not share a load that began before (see
// Consistency in the package documentation for what holds across
// instances). A Set whose ctx is already done changes nothing and returns
// ctx's error.
func (c *Cache[V]) Set(ctx context.Context, key string, v V) error {
	if !c.enter() {
		return ErrClosed
	}
	defer c.leave()
	if err := ctx.Err(); err != nil {
		return err // the store would not try, nor remember the key (see Consistency)
	}
	switch {
	case c.write != nil:
		if err := c.write(ctx, key, v); err != nil {
			return err
		}
	case c.wb != nil:
		if err := c.wb.enqueue(ctx, Write[V]{key, v}); err != nil {
			return err
		}
	}
	if c.bloom != nil {
		c.bloom.add(key)
	}
	ttl := c.ttl()
	var errs []error
	kv := c.version(key)
	if c.opts.store != nil {
		c.changing(kv)
		if err := c.setL2(ctx, key, v, ttl); err != nil {
			errs = append(errs, err)
			if errors.As(err, new(encodeError)) {
				// L2 cannot hold v: it must not keep the older value.
				ctx, span := c.tel.tracer.Start(ctx, "cache.l2.delete", c.tel.clientSpan...)
				if err := c.opts.store.Delete(ctx, key); err != nil {
					telemetry.RecordError(span, err)
					errs = append(errs, fmt.Errorf("cache: L2 delete %s: %w", brief.Quote(key), err))
				}
				span.End()
			}
		}
	}
	e, cost := c.newEntry(v, ttl)
	c.changedL1(kv, key, func() { c.writeL1(key, nil, c.stamped(e, ttl), cost) })
	if err := c.publish(ctx, key); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Delete removes key from L1 and L2 and tells the other instances to drop
// their L1 copies. With [WithDoubleDelete] it deletes again after the delay.
// Like Set, it returns L2 and invalidation failures after doing the rest.
//
// Once Delete returns, this instance never serves the deleted value: as
// for Set, loads, L2 reads and refreshes in flight write nothing, and a Get
// that starts later loads afresh. A Delete whose ctx is already done
// changes nothing and returns ctx's error.
func (c *Cache[V]) Delete(ctx context.Context, key string) error {
	if !c.enter() {
		return ErrClosed
	}
	defer c.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.wb != nil {
		if err := c.wb.forget(ctx, key); err != nil {
			return err
		}
	}
	err := c.delete(ctx, key)
	if d := c.opts.doubleDelete; d > 0 {
		// If the cache is closing, the second delete is skipped: nothing
		// can read a stale value from this instance any more.
		c.background(func() {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-c.bgCtx.Done(): // closing: delete now rather than never
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = c.delete(ctx, key)
		})
	}
	return err
}

func (c *Cache[V]) delete(ctx context.Context, key string) error {
	var errs []error
	kv := c.version(key)
	if c.opts.store != nil {
		c.changing(kv)
		ctx, span := c.tel.tracer.Start(ctx, "cache.l2.delete", c.tel.clientSpan...)
		if err := c.opts.store.Delete(ctx, key); err != nil {
			telemetry.RecordError(span, err)
			errs = append(errs, fmt.Errorf("cache: L2 delete %s: %w", brief.Quote(key), err))
		}
		span.End()
	}
	// After L2: a fill that read L2 before the delete reached it does not
	// write L1 after this.
	c.changedL1(kv, key, func() { c.l1.Del(key) })
	if err := c.publish(ctx, key); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Cache[V]) publish(ctx context.Context, key string) error {
	if c.inv == nil {
		return nil
	}
	if err := c.inv.Publish(ctx, c.id, key); err != nil {
		telemetry.AddEvent(ctx, "cache.invalidation_failed", func() []attribute.KeyValue {
			return []attribute.KeyValue{c.tel.name, telemetry.ErrorType(err)}
		})
		return fmt.Errorf("cache: publishing the invalidation of %s: %w", brief.Quote(key), err)
	}
	c.tel.invalidation.Add(ctx, 1, c.tel.sentOpts...)
	return nil
}

// AddKeys adds keys that exist in the source to the Bloom filter of
// [WithBloomFilter]; without one it does nothing. Seed the filter with every
// existing key before serving, or Gets for those keys return ErrNotFound.
func (c *Cache[V]) AddKeys(keys ...string) {
	if c.bloom == nil {
		return
	}
	for _, k := range keys {
		c.bloom.add(k)
	}
}

// Flush writes out every write queued by [WithWriteBehind] before it was
// called, retrying failed batches, and waits for the L2 fills of loaded
// values in flight when it was called; it returns when they are done or
// ctx is done. A fill that fails is not retried (it is counted). It returns
// an error if queued writes were given up on (see
// [WithWriteBehindDeadLetter]) since the previous Flush returned. After
// [Cache.Close] it returns [ErrClosed].
func (c *Cache[V]) Flush(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.wb != nil {
		if err := c.wb.flush(ctx); err != nil {
			return err
		}
	}
	return c.waitFills(ctx)
}

// Close flushes the write-behind queue (for up to [WithCloseTimeout]),
// stops background work and releases the cache. It cancels the contexts of
// the loads, refreshes and L2 fills in flight and waits for them: every
// goroutine the cache started has ended when it returns (a loader that
// ignores its context delays it). To know that no Get is still reading
// L1, which Gets do without registering with the cache, it runs the
// garbage collector, once unless a Get was in the middle of a lookup: a
// full collection, which takes longer the more the process holds (about
// a millisecond for a few megabytes, a tenth of a second for a hundred).
// It returns an error saying how many
// queued writes could not be written, if any. Later calls return the same
// result; other methods return [ErrClosed].
func (c *Cache[V]) Close() error {
	c.closeOnce.Do(func() {
		// Gets that found L1 in lookups end their lookups meanwhile; those
		// that start now return ErrClosed.
		hitsDone := collected(c.lookups.Swap(nil))
		c.closed.Store(true)
		c.bgCancel() // ends waits on shared loads, refreshes, retries of Subscribe
		var errs []error
		if c.wb != nil {
			errs = append(errs, c.wb.close(c.opts.closeTimeout))
		}
		c.bgMu.Lock()
		c.bgClosed = true
		c.bgMu.Unlock()
		c.bg.Wait()
		if c.unsub != nil {
			c.unsub()
		}
		// Calls that entered before closed was set finish with L1 first; a
		// load one of them runs itself has been cancelled.
		for c.active.Load() != 0 {
			time.Sleep(time.Millisecond)
		}
		<-hitsDone
		c.tel.clearing.Add(1) // ristretto's Close clears L1: not evictions
		c.l1.Close()
		c.clock.Stop()
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// keyFilter is a Bloom filter safe for concurrent use.
type keyFilter struct {
	mu sync.RWMutex
	f  *bloom.BloomFilter
}

func (k *keyFilter) add(key string) {
	k.mu.Lock()
	k.f.AddString(key)
	k.mu.Unlock()
}

func (k *keyFilter) has(key string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.f.TestString(key)
}
