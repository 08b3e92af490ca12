package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/nilcheck"
)

// Defaults of a cache built with no options.
const (
	DefaultMaxEntries     = 10_000
	DefaultTTL            = 5 * time.Minute
	DefaultTTLJitter      = 0.1
	DefaultWriteQueue     = 1024
	DefaultWriteBatch     = 100
	DefaultWriteInterval  = time.Second
	DefaultCloseTimeout   = 30 * time.Second
	DefaultLoadTimeout    = 10 * time.Second
	DefaultWriteRetries   = 16
	defaultCountersFactor = 10
)

// Option configures a [Cache] of values of type V.
//
// The options that take a function or a codec of V ([WithLoader],
// [WithWriter], [WithWriteBehind], [WithWriteBehindDeadLetter],
// [WithCodec]) return an Option[V] whose V is inferred from their
// argument, and an Option of one value type is not an Option of another:
// a loader of int given to New[string] does not compile. The other
// options return a [Setting], which is an Option[V] for every V. So the
// two mix with no type arguments written, and New infers V from the
// typed options when there is one:
//
//	c, err := cache.New( // a *cache.Cache[Product]
//		cache.WithLoader(db.LoadProduct), // func(ctx, sku string) (Product, error)
//		cache.WithTTL(10*time.Minute),
//	)
//
// To build a list of options first, make it a []Option[V]: a []Setting
// cannot be passed to New. Do not keep a typed option in a Setting: an
// Option[V] is assignable to a Setting too (the types differ only in
// name), so WithLoader(loadInt) kept in a Setting compiles as an option
// of New[string], and only New's error says so.
//
// The zero Option (nil) is not an option: [New] rejects it.
type Option[V any] func(*options)

// Setting is an option that does not depend on the value type, such as
// [WithTTL] or [WithName]. Its type is unnamed (Setting is an alias of
// it), which is what makes it assignable to Option[V] for every V, where
// an Option of one V is not assignable to an Option of another.
type Setting = func(*options)

// options holds the settings; those that depend on V are kept as any and
// checked against V by New.
type options struct {
	testOnExit   func() // tests: ristretto's OnExit, to hold up its goroutine
	name         string
	maxEntries   int64
	maxBytes     int64
	ttl          time.Duration
	jitter       float64
	store        Store
	codec        any
	loader       any
	writer       any
	writeBehind  any
	queue        int
	batch        int
	interval     time.Duration
	reject       bool
	closeTimeout time.Duration
	loadTimeout  time.Duration
	onFlushError func(error)
	retries      int
	deadLetter   any
	negativeTTL  time.Duration
	bloomKeys    uint
	bloomFP      float64
	refreshAhead float64
	doubleDelete time.Duration
	tracer       trace.TracerProvider
	meter        metric.MeterProvider
	set          map[string]bool // which options were given, for conflicts
	faults       []error         // found by the options themselves: nil functions, bad sizes
}

// fault records a fault that an option found in its own arguments, for
// New to report with the others.
func (o *options) fault(msg string) { o.faults = append(o.faults, errors.New(msg)) }

func defaultOptions() options {
	return options{
		maxEntries:   DefaultMaxEntries,
		ttl:          DefaultTTL,
		jitter:       DefaultTTLJitter,
		queue:        DefaultWriteQueue,
		batch:        DefaultWriteBatch,
		interval:     DefaultWriteInterval,
		closeTimeout: DefaultCloseTimeout,
		loadTimeout:  DefaultLoadTimeout,
		retries:      DefaultWriteRetries,
		set:          map[string]bool{},
	}
}

// WithName names the cache in its telemetry (the cache.name attribute).
func WithName(name string) Setting { return func(o *options) { o.name = name } }

// WithMaxEntries bounds the in-process (L1) cache to about n entries, n
// positive. This is the default way of sizing it, with
// [DefaultMaxEntries] (10,000). Of WithMaxEntries and [WithMaxBytes], the
// last given sizes L1. New allocates L1's admission counters at once:
// about 40 to 80 bytes per entry of n, before any value is stored.
func WithMaxEntries(n int64) Setting {
	return func(o *options) {
		if n <= 0 {
			o.fault(fmt.Sprintf("WithMaxEntries(%d): must be positive", n))
		}
		o.maxEntries, o.maxBytes = n, 0
	}
}

// WithMaxBytes bounds the L1 cache by the size of its values, measured as
// the length of their encoding by the codec, instead of by their number.
// Each L1 write then encodes its value. n must be positive.
func WithMaxBytes(n int64) Setting {
	return func(o *options) {
		if n <= 0 {
			o.fault(fmt.Sprintf("WithMaxBytes(%d): must be positive", n))
		}
		o.maxBytes = n
	}
}

// WithTTL sets how long an entry lives in L1 and L2. 0 keeps entries until
// they are evicted or deleted. The default is [DefaultTTL] (5 minutes).
func WithTTL(d time.Duration) Setting { return func(o *options) { o.ttl = d } }

// WithTTLJitter spreads expiries at random by up to fraction (in [0, 1)) of
// the TTL either way, so that entries written together do not all expire
// together and send a wave of loads to the source (a cache avalanche). The
// default is [DefaultTTLJitter] (10%).
func WithTTLJitter(fraction float64) Setting {
	return func(o *options) { o.jitter = fraction }
}

// WithStore adds a shared second level (L2), such as Redis. If s is also an
// [Invalidator], every instance's L1 copy of a key is dropped when any
// instance sets or deletes it. s must not be nil (nor a nil pointer). The
// default is no L2.
func WithStore(s Store) Setting {
	return func(o *options) {
		if nilcheck.IsNil(s) {
			o.fault("WithStore(nil): the store must not be nil (leave the option out for no L2)")
			return
		}
		o.store = s
	}
}

// WithCodec sets how values are encoded for the L2 store (and measured for
// [WithMaxBytes]). c must not be nil. The default is [JSON].
func WithCodec[V any](c Codec[V]) Option[V] {
	return func(o *options) {
		if nilcheck.IsNil(c) {
			o.fault("WithCodec(nil): the codec must not be nil (leave the option out for JSON)")
			return
		}
		o.codec = c
	}
}

// WithLoader makes the cache read-through: a Get that misses both levels
// calls load, once per key however many callers miss it together
// (singleflight), fills L1, returns its value, and fills L2 in the
// background. load returns an error matching [ErrNotFound] for a key that
// does not exist. A load that panics on a goroutine of the cache (a shared
// load, a refresh) is reported to otel.Handle and its callers get an
// error naming the panic; the process goes on. load must not be nil. Use
// it when every reader would otherwise write the same load-then-set code.
func WithLoader[V any](load func(ctx context.Context, key string) (V, error)) Option[V] {
	return func(o *options) {
		o.set["WithLoader"] = true
		if load == nil {
			o.fault("WithLoader(nil): the loader must not be nil")
			return
		}
		o.loader = load
	}
}

// WithWriter makes the cache write-through: Set first writes the value to
// the source of truth with write, and only if that succeeds updates the
// cache; a failed write leaves the cache untouched. write must not be nil,
// and [WithWriteBehind] cannot be given too. Use it when the cache must
// never hold a value the source does not.
func WithWriter[V any](write func(ctx context.Context, key string, v V) error) Option[V] {
	return func(o *options) {
		o.set["WithWriter"] = true
		if write == nil {
			o.fault("WithWriter(nil): the writer must not be nil")
			return
		}
		o.writer = write
	}
}

// Write is one value queued by a write-behind cache.
type Write[V any] struct {
	Key   string
	Value V
}

// WithWriteBehind makes the cache write-behind: Set updates the cache at
// once and queues the write, and a background worker hands queued writes
// to flush in batches (of up to [WithWriteBatch] writes, at least every
// [WithWriteBatch] interval). [Cache.Flush] and [Cache.Close] write out
// everything queued. Use it to absorb bursts of writes to a slow source
// when losing the latest writes on a crash is acceptable.
//
// The queue holds at most one write per key: a Set of a key already
// queued replaces its value in place (last write wins, and takes no more
// room), and [Cache.Delete] cancels it. So a batch never holds a key
// twice, and an upsert of the whole batch in one statement works. A Set
// of a key whose write is being flushed is queued after it; a Delete of
// such a key waits for that attempt to end (or for its ctx), so that once
// Delete returns no write of the key queued before it can reach the
// source: delete from the source after Delete returns. flush itself may
// call Delete for a key of its batch, with the ctx it was given (or one
// derived from it): that Delete does not wait for flush, and a retry of
// the batch leaves the key out.
//
// A failed flush is reported to [WithFlushErrorHandler], counted, and
// retried with backoff (exponential from 100ms to 10s, full jitter) up to
// [WithWriteBehindRetries] times, leaving out writes deleted or
// overwritten meanwhile; then its writes go to
// [WithWriteBehindDeadLetter] and leave the queue, so that the writes
// behind them go on.
//
// flush must not be nil.
func WithWriteBehind[V any](flush func(ctx context.Context, batch []Write[V]) error) Option[V] {
	return func(o *options) {
		o.set["WithWriteBehind"] = true
		if flush == nil {
			o.fault("WithWriteBehind(nil): the flush function must not be nil")
			return
		}
		o.writeBehind = flush
	}
}

// WithWriteQueue bounds the write-behind queue to n writes. When it is
// full, Set waits for room (back-pressure) until its context is done,
// unless [WithWriteBehindReject] is set. The default is
// [DefaultWriteQueue] (1024). It needs [WithWriteBehind].
func WithWriteQueue(n int) Setting {
	return func(o *options) { o.queue = n; o.set["WithWriteQueue"] = true }
}

// WithWriteBatch sets the largest batch handed to the write-behind flush
// function and the longest a write waits before being flushed. The
// defaults are [DefaultWriteBatch] (100) and [DefaultWriteInterval] (1s).
// Both must be positive. It needs [WithWriteBehind].
func WithWriteBatch(size int, interval time.Duration) Setting {
	return func(o *options) { o.batch, o.interval = size, interval; o.set["WithWriteBatch"] = true }
}

// WithWriteBehindReject makes Set fail at once with [ErrQueueFull] instead
// of waiting when the write-behind queue is full. It needs
// [WithWriteBehind].
func WithWriteBehindReject() Setting {
	return func(o *options) { o.reject = true; o.set["WithWriteBehindReject"] = true }
}

// WithCloseTimeout bounds how long [Cache.Close] keeps trying to flush the
// write-behind queue; 0 makes Close report the writes still queued without
// trying. The default is [DefaultCloseTimeout] (30s).
func WithCloseTimeout(d time.Duration) Setting {
	return func(o *options) { o.closeTimeout = d }
}

// WithLoadTimeout bounds a shared fill: the L2 lookup and the loader call
// that concurrent misses of a key wait on, and the L2 write that follows
// in the background. A fill runs without the callers' own cancellation,
// since one caller giving up must not fail the others, so this is its
// bound, with one more: the L2 lookup takes at most half the time left
// before the deadline of the caller that started the fill, or half of d
// if that is sooner, so that a store that does not answer leaves the
// loader time. It bounds refresh-ahead reloads ([WithRefreshAhead]) too.
// 0 removes the bound. The default is [DefaultLoadTimeout] (10s).
func WithLoadTimeout(d time.Duration) Setting {
	return func(o *options) { o.loadTimeout = d }
}

// WithFlushErrorHandler is told of every failed write-behind flush. It runs
// on the worker goroutine. f must not be nil. It needs [WithWriteBehind].
func WithFlushErrorHandler(f func(error)) Setting {
	return func(o *options) {
		if f == nil {
			o.fault("WithFlushErrorHandler(nil): the handler must not be nil")
			return
		}
		o.onFlushError = f
		o.set["WithFlushErrorHandler"] = true
	}
}

// WithWriteBehindRetries bounds how many times a failed write-behind
// batch is tried again, after its first attempt, before its writes go to
// [WithWriteBehindDeadLetter]: 0 tries each batch once. The default is
// [DefaultWriteRetries] (16), which with the backoff of [WithWriteBehind]
// gives up on a batch after about 50 seconds of failures (at most about
// 100). It needs [WithWriteBehind].
func WithWriteBehindRetries(n int) Setting {
	return func(o *options) { o.retries = n; o.set["WithWriteBehindRetries"] = true }
}

// WithWriteBehindDeadLetter receives the writes of a write-behind batch
// that failed every attempt (see [WithWriteBehindRetries]), with the last
// attempt's error, so that they can be parked, logged or written another
// way; the cache no longer holds them for the source. It runs on the
// worker goroutine, which waits for it, with a context that ends when
// [Cache.Close] gives up. Writes given up on are also counted
// (cache.write_behind.dead_letters) and make [Cache.Flush] return an
// error. The default is none: they are only counted and reported. f must
// not be nil. It needs [WithWriteBehind].
func WithWriteBehindDeadLetter[V any](f func(ctx context.Context, batch []Write[V], err error)) Option[V] {
	return func(o *options) {
		o.set["WithWriteBehindDeadLetter"] = true
		if f == nil {
			o.fault("WithWriteBehindDeadLetter(nil): the handler must not be nil")
			return
		}
		o.deadLetter = f
	}
}

// WithNegativeTTL caches "not found" answers of the loader for d, so that
// requests for keys that do not exist do not all reach the source (cache
// penetration). d should be short: a key created meanwhile stays "not
// found" until it expires or is Set. It needs [WithLoader], whose answers
// it caches. The default, 0, caches no negative answers.
func WithNegativeTTL(d time.Duration) Setting {
	return func(o *options) { o.negativeTTL = d }
}

// WithBloomFilter keeps a Bloom filter of the keys that exist, sized for
// expectedKeys at falsePositiveRate: a Get for a key not in the filter
// returns [ErrNotFound] without reaching L2 or the loader. Keys enter the
// filter through Set, successful loads and [Cache.AddKeys], with which the
// service must seed it with every existing key at start-up. Use it against
// floods of requests for random keys that do not exist.
func WithBloomFilter(expectedKeys uint, falsePositiveRate float64) Setting {
	return func(o *options) {
		o.bloomKeys, o.bloomFP = expectedKeys, falsePositiveRate
		o.set["WithBloomFilter"] = true
	}
}

// WithRefreshAhead reloads an entry in the background once fraction (in
// (0, 1)) of its TTL has passed and it is read again, while the old value
// keeps being served: hot keys then never expire in front of readers. At
// most one refresh per key runs at a time, under [WithLoadTimeout], and
// after a failed one the next waits a second; at most 1,024 run at once
// (an entry due meanwhile is refreshed by a later read). It needs
// [WithLoader] and a TTL. Each L1 hit then reads the clock.
//
// An entry keeps its refresh time as a lead over its expiry, to within a
// thousandth: a refresh may come that much of the lead later than asked
// (with a 5-minute TTL and a fraction of 0.8, up to 60 ms), and the
// retry after a failed one that much of the time the entry has left.
func WithRefreshAhead(fraction float64) Setting {
	return func(o *options) { o.refreshAhead = fraction }
}

// WithDoubleDelete makes Delete delete the key again after d (delayed
// double delete), to remove a stale value that a reader on another
// instance loaded from the source before the source's update committed
// and wrote to L2 after the first delete: an instance that has not heard
// of the Delete yet, or whose store announces nothing. (The deleting
// instance, and one that hears of it in time, write no such value.) d
// should exceed a load's duration. The default, 0, deletes once.
func WithDoubleDelete(d time.Duration) Setting {
	return func(o *options) { o.doubleDelete = d }
}

// WithTracerProvider sets where the cache's spans go. The default, also
// used when tp is nil, is the global provider at the time of New.
func WithTracerProvider(tp trace.TracerProvider) Setting {
	return func(o *options) { o.tracer = tp }
}

// WithMeterProvider sets where the cache's metrics go. The default, also
// used when mp is nil, is the global provider at the time of New.
func WithMeterProvider(mp metric.MeterProvider) Setting {
	return func(o *options) { o.meter = mp }
}

// validate returns every fault of the options, in the order of the
// options' declarations, after those the options found themselves.
func (o *options) validate() []error {
	errs := o.faults
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.maxBytes <= 0 && o.maxEntries > math.MaxInt64/defaultCountersFactor {
		bad("WithMaxEntries(%d): too large to count", o.maxEntries)
	}
	if o.ttl < 0 {
		bad("WithTTL(%v): must not be negative", o.ttl)
	}
	if !(o.jitter >= 0 && o.jitter < 1) {
		bad("WithTTLJitter(%v): must be in [0, 1)", o.jitter)
	}
	if o.queue <= 0 {
		bad("WithWriteQueue(%d): must be positive", o.queue)
	}
	if o.batch <= 0 || o.interval <= 0 {
		bad("WithWriteBatch(%d, %v): size and interval must be positive", o.batch, o.interval)
	}
	if o.closeTimeout < 0 {
		bad("WithCloseTimeout(%v): must not be negative", o.closeTimeout)
	}
	if o.loadTimeout < 0 {
		bad("WithLoadTimeout(%v): must not be negative", o.loadTimeout)
	}
	if o.negativeTTL < 0 {
		bad("WithNegativeTTL(%v): must not be negative", o.negativeTTL)
	}
	if o.negativeTTL > 0 && !o.set["WithLoader"] {
		bad("WithNegativeTTL(%v): needs WithLoader, whose answers it caches", o.negativeTTL)
	}
	if o.set["WithBloomFilter"] && (o.bloomKeys == 0 || !(o.bloomFP > 0 && o.bloomFP < 1)) {
		bad("WithBloomFilter(%d, %v): need a positive key count and a rate in (0, 1)", o.bloomKeys, o.bloomFP)
	}
	if o.refreshAhead != 0 && !(o.refreshAhead > 0 && o.refreshAhead < 1) {
		bad("WithRefreshAhead(%v): must be in (0, 1)", o.refreshAhead)
	}
	if o.refreshAhead > 0 && (!o.set["WithLoader"] || o.ttl == 0) {
		bad("WithRefreshAhead(%v): needs WithLoader and a positive WithTTL", o.refreshAhead)
	}
	if o.doubleDelete < 0 {
		bad("WithDoubleDelete(%v): must not be negative", o.doubleDelete)
	}
	if o.retries < 0 {
		bad("WithWriteBehindRetries(%d): must not be negative", o.retries)
	}
	if !o.set["WithWriteBehind"] {
		for _, name := range []string{"WithWriteQueue", "WithWriteBatch", "WithWriteBehindReject",
			"WithWriteBehindRetries", "WithWriteBehindDeadLetter", "WithFlushErrorHandler"} {
			if o.set[name] {
				bad("%s: needs WithWriteBehind", name)
			}
		}
	}
	if o.set["WithWriter"] && o.set["WithWriteBehind"] {
		bad("WithWriter and WithWriteBehind: choose one write strategy")
	}
	return errs
}
