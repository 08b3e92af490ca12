package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"unsafe"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/cache"

// Attribute keys the package records.
const (
	AttrName      = attribute.Key("cache.name")
	AttrLevel     = attribute.Key("cache.level")
	AttrResult    = attribute.Key("cache.result")
	AttrDirection = attribute.Key("cache.direction")
	batchSize     = attribute.Key("cache.write_behind.batch_size")
)

// Levels, results and directions, as recorded.
const (
	levelL1 = iota
	levelL2
	numLevels
)

const (
	resultHit = iota
	resultMiss
	numLookupResults // an L2 lookup's errors are counted by error.type
	resultError      = numLookupResults
	numResults       = numLookupResults + 1
)

const (
	loadSuccess = iota
	loadNotFound
	loadError
	numLoadResults
)

// Results of an L2 fill, the write of a loaded value to L2 after the
// caller has it.
const (
	fillSuccess    = iota // written
	fillSkipped           // the key changed meanwhile, or L2 held a value (Add)
	fillDropped           // too many fills in flight
	numFillResults        // errors are counted by error.type
)

var (
	fillResultNames = [numFillResults]string{"success", "skipped", "dropped"}
	levelNames      = [numLevels]string{"l1", "l2"}
	resultNames     = [numResults]string{"hit", "miss", "error"}
	loadResultNames = [numLoadResults]string{"success", "not_found", "error"}
)

// maxErrorTypes is how many distinct error.type values a cache reports
// on its L2 lookup errors; later ones count under _OTHER. error.type
// values are of low cardinality by design, so only a store whose errors
// are of many exported types gets there.
const maxErrorTypes = 64

var loadBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// instruments are a cache's tracer and metric instruments, with the
// attribute sets they use built once so that recording allocates nothing.
//
// Lookups (cache.requests) and evictions are counted in memory and
// reported by one callback when the SDK collects: an L1 hit costs about
// as much as a synchronous SDK counter's Add, so counting it that way
// would double its cost. The rest, counted off the hit path, is recorded
// synchronously.
type instruments struct {
	tracer trace.Tracer
	// spans says when a cache.load span would be a non-recording one
	// (see startLoad).
	spans        telemetry.SpanGate
	clientSpan   []trace.SpanStartOption
	internalSpan []trace.SpanStartOption
	meter        metric.Meter
	name         attribute.KeyValue

	// counting is whether lookups are counted (see countHit and count):
	// the gate's answer as of New or the last tick of the cache's clock
	// (gateCounts), since asking the gate on every hit would cost about as
	// much as the count it spares.
	counts   telemetry.MeterGate
	counting atomic.Bool
	l1Hits   stripedCounter // requests[levelL1][resultHit] is not used
	_        [64]byte       // keeps the other counters off the cache lines read on every call
	requests [numLevels][numLookupResults]telemetry.Counter
	_        [64]byte

	l2Errors  errorCounts
	evictions telemetry.Counter
	// clearing is non-zero while L1 is being cleared (when a lost
	// subscription is restored, and at Close): ristretto reports every
	// entry it drops then as an eviction, but cache.evictions counts only
	// what L1 dropped by itself.
	clearing atomic.Int32
	reg      *telemetry.Registration

	loads        metric.Int64Counter
	loadOpts     [numLoadResults][]metric.AddOption
	loadDuration metric.Float64Histogram
	loadDurOpts  [numLoadResults][]metric.RecordOption
	invalidation metric.Int64Counter
	sentOpts     []metric.AddOption
	receivedOpts []metric.AddOption
	flushes      metric.Int64Counter
	flushOpts    []metric.AddOption // success
	deadLetters  metric.Int64Counter
	l2Fills      metric.Int64Counter
	l2FillOpts   [numFillResults][]metric.AddOption
}

func newInstruments(name string, tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(tp, ScopeName), meter: m, name: AttrName.String(name)}
	t.spans = telemetry.NewSpanGate(tp, t.tracer)
	t.counts = telemetry.NewMeterGate(mp)
	t.gateCounts()
	t.clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(t.name)}
	t.internalSpan = []trace.SpanStartOption{trace.WithAttributes(t.name)}
	check := func(err error) {
		if err != nil {
			otel.Handle(err)
		}
	}
	var err error
	t.loads, err = m.Int64Counter("cache.loads", metric.WithUnit("{load}"),
		metric.WithDescription("Calls of the loader on a miss or a refresh, by result."))
	check(err)
	t.loadDuration, err = m.Float64Histogram("cache.load.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of loader calls."), metric.WithExplicitBucketBoundaries(loadBuckets...))
	check(err)
	t.invalidation, err = m.Int64Counter("cache.invalidations", metric.WithUnit("{key}"),
		metric.WithDescription("Invalidations of L1 copies sent to and received from other instances."))
	check(err)
	t.flushes, err = m.Int64Counter("cache.write_behind.flushes", metric.WithUnit("{flush}"),
		metric.WithDescription("Batches written by the write-behind worker, by result."))
	check(err)
	t.deadLetters, err = m.Int64Counter("cache.write_behind.dead_letters", metric.WithUnit("{write}"),
		metric.WithDescription("Writes that the write-behind worker gave up on after its retries, by error.type."))
	check(err)
	t.l2Fills, err = m.Int64Counter("cache.l2.fills", metric.WithUnit("{fill}"),
		metric.WithDescription("Writes to L2 of loaded values, made in the background after the caller has the value, by result."))
	check(err)

	set := func(kv ...attribute.KeyValue) attribute.Set {
		return attribute.NewSet(append([]attribute.KeyValue{t.name}, kv...)...)
	}
	add := func(kv ...attribute.KeyValue) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(set(kv...))}
	}
	for r := range numLoadResults {
		t.loadOpts[r] = add(AttrResult.String(loadResultNames[r]))
		t.loadDurOpts[r] = []metric.RecordOption{metric.WithAttributeSet(set(AttrResult.String(loadResultNames[r])))}
	}
	t.sentOpts = add(AttrDirection.String("sent"))
	t.receivedOpts = add(AttrDirection.String("received"))
	t.flushOpts = add(AttrResult.String("success"))
	for r := range numFillResults {
		t.l2FillOpts[r] = add(AttrResult.String(fillResultNames[r]))
	}
	t.l2Errors.base = []attribute.KeyValue{t.name, AttrLevel.String(levelNames[levelL2]), AttrResult.String(resultNames[resultError])}
	return t
}

// observe registers the callback that reports the lookups and evictions
// counted in t, the instruments of owner: while owner is reachable, and
// once more after it is garbage-collected, so that a cache closed and
// dropped just before the final collection loses no count, and one that
// is thrown away leaves no callback and no series behind.
func observe[V any](t *instruments, owner *Cache[V]) {
	requests := telemetry.Int64ObservableCounter(t.meter, "cache.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Lookups per cache level, by result."))
	evictions := telemetry.Int64ObservableCounter(t.meter, "cache.evictions", metric.WithUnit("{entry}"),
		metric.WithDescription("Entries that the in-process (L1) cache dropped by itself: evicted to make room, or expired."))
	var reqOpts [numLevels][numLookupResults][]metric.ObserveOption
	for l := range numLevels {
		for r := range numLookupResults {
			reqOpts[l][r] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(t.name,
				AttrLevel.String(levelNames[l]), AttrResult.String(resultNames[r])))}
		}
	}
	evictOpts := []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(t.name))}
	t.reg = telemetry.ObserveState(t.meter, owner, t, func(t *instruments, o metric.Observer) {
		// Series that never moved are not reported.
		for l := range numLevels {
			for r := range numLookupResults {
				n := t.requests[l][r].Load()
				if l == levelL1 && r == resultHit {
					n = t.l1Hits.Load()
				}
				if n > 0 {
					o.ObserveInt64(requests, n, reqOpts[l][r]...)
				}
			}
		}
		t.l2Errors.observe(o, requests)
		if n := t.evictions.Load(); n > 0 {
			o.ObserveInt64(evictions, n, evictOpts...)
		}
	}, requests, evictions)
}

// stripes is how many counters a stripedCounter spreads its adds over: a
// power of two, 5 bits.
const (
	stripeBits = 5
	stripes    = 1 << stripeBits
)

// stripedCounter counts L1 hits. Every Get that hits adds one, from every
// goroutine that reads the cache, and on one counter the adds of several
// cores contend for its cache line: on 2 cores that add took 14% of the
// time of parallel hits (which cost 1.4 times ristretto's own Get), and
// 2% once spread. The adds are spread over counters 128 bytes apart (so
// that no two share a cache line, or a pair of lines that the CPU fetches
// together), picked by the address of the calling goroutine's stack:
// different goroutines, such as the handlers of concurrent requests,
// mostly add to different counters, and one goroutine's adds mostly stay
// on one. Load sums them.
type stripedCounter struct {
	s [stripes]struct {
		n telemetry.Counter
		_ [120]byte
	}
}

// gateCounts updates counting. A provider set as the global one after
// New is seen at the next tick: lookups are counted from about then.
func (t *instruments) gateCounts() {
	// A store only on a change: counting shares its cache line with what
	// hits read.
	if on := !t.counts.Skip(); on != t.counting.Load() {
		t.counting.Store(on)
	}
}

// countHit counts an L1 hit, unless no reader could see it.
func (t *instruments) countHit() {
	if t.counting.Load() {
		t.l1Hits.Inc()
	}
}

// count counts a lookup of level other than an L1 hit, unless no reader
// could see it: under the same gate as countHit, so that the series of
// cache.requests start together.
func (t *instruments) count(level, result int) {
	if t.counting.Load() {
		t.requests[level][result].Inc()
	}
}

// countL2Error counts an L2 lookup that failed with err, under the same
// gate as count.
func (t *instruments) countL2Error(err error) {
	if t.counting.Load() {
		t.l2Errors.inc(telemetry.ErrorTypeString(err))
	}
}

// Inc adds one to the calling goroutine's counter.
func (c *stripedCounter) Inc() {
	var onStack byte
	// Goroutine stacks are at least 2 KiB apart; the multiplication
	// (Fibonacci hashing) spreads neighbouring stacks over the counters.
	sp := uint64(uintptr(unsafe.Pointer(&onStack))) >> 10
	c.s[sp*0x9E3779B97F4A7C15>>(64-stripeBits)].n.Inc()
}

// Load returns the sum of the counters.
func (c *stripedCounter) Load() int64 {
	var n int64
	for i := range c.s {
		n += c.s[i].n.Load()
	}
	return n
}

// onEvict is ristretto's OnEvict: it runs for entries evicted to make
// room and for expired entries removed, on ristretto's goroutine, and for
// every entry dropped by Clear, on the clearing goroutine.
func (t *instruments) onEvict() {
	if t.clearing.Load() == 0 {
		t.evictions.Inc()
	}
}

// failed records a failed operation's error on its span, and with
// error.type on the data points of its metrics: the attribute sets of
// failures depend on the error, so they are built here, off the hot path.
func (t *instruments) failed(ctx context.Context, span trace.Span, err error, counter metric.Int64Counter, hist metric.Float64Histogram, seconds float64) {
	telemetry.RecordError(span, err)
	set := metric.WithAttributeSet(attribute.NewSet(t.name, AttrResult.String("error"), telemetry.ErrorType(err)))
	counter.Add(ctx, 1, set)
	if hist != nil {
		hist.Record(ctx, seconds, set)
	}
}

// errorCounts counts failures by error.type, in memory, for an observable
// counter. The first failure of a type builds its attribute set; the
// following ones take a read lock and an atomic add.
type errorCounts struct {
	base []attribute.KeyValue
	mu   sync.RWMutex
	m    map[string]*errorCount
}

type errorCount struct {
	n    telemetry.Counter
	opts []metric.ObserveOption
}

func (e *errorCounts) inc(errorType string) {
	e.mu.RLock()
	c := e.m[errorType]
	e.mu.RUnlock()
	if c == nil {
		c = e.add(errorType)
	}
	c.n.Inc()
}

func (e *errorCounts) add(errorType string) *errorCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.m[errorType]; c != nil {
		return c
	}
	if len(e.m) >= maxErrorTypes {
		errorType = semconv.ErrorTypeOther.Value.AsString()
		if c := e.m[errorType]; c != nil {
			return c
		}
	}
	if e.m == nil {
		e.m = make(map[string]*errorCount)
	}
	kvs := append(append([]attribute.KeyValue(nil), e.base...), semconv.ErrorTypeKey.String(errorType))
	c := &errorCount{opts: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}}
	e.m[errorType] = c
	return c
}

func (e *errorCounts) observe(o metric.Observer, inst metric.Int64Observable) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, c := range e.m {
		o.ObserveInt64(inst, c.n.Load(), c.opts...)
	}
}

// startLoad starts the cache.load span of a loader call, unless the
// tracer can only make a non-recording one and ctx's span is not
// recording either: that span would cost a miss three allocations (the
// global provider's, before one is set) and carry nothing the loader's
// ctx does not hold already, since it would only pass ctx's span context
// on. The span returned then is a no-op one, and ctx is unchanged.
func (t *instruments) startLoad(ctx context.Context) (context.Context, trace.Span) {
	if t.spans.Skip(ctx) {
		return ctx, noopSpan
	}
	return t.tracer.Start(ctx, "cache.load", t.internalSpan...)
}

// noopSpan is the span of a loader call that startLoad does not trace.
var noopSpan = trace.SpanFromContext(context.Background())
