package retry

import (
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/retry"

// Attribute keys the package records.
const (
	// AttrName is the retrier's name (WithName), on its metrics and span.
	AttrName = attribute.Key("retry.name")
	// AttrOutcome is how a call of Retrier.Do ended: success,
	// success_after_retry, exhausted, permanent, budget_exhausted or
	// canceled.
	AttrOutcome = attribute.Key("retry.outcome")
	// AttrAttempt is the number of a failed attempt (1 for the first), on
	// the retry.attempt_failed event.
	AttrAttempt = attribute.Key("retry.attempt")
	// AttrAttempts is how many attempts a call made, on the retry span and
	// the retry.gave_up event.
	AttrAttempts = attribute.Key("retry.attempts")
	// AttrDelay is the wait before the next attempt, in seconds, on the
	// retry.attempt_failed event.
	AttrDelay = attribute.Key("retry.delay")
)

// The values of retry.outcome.
const (
	outcomeSuccess = iota
	outcomeSuccessAfterRetry
	outcomeExhausted
	outcomePermanent
	outcomeBudgetExhausted
	outcomeCanceled
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"success", "success_after_retry", "exhausted", "permanent", "budget_exhausted", "canceled"}

// maxErrorTypes is how many distinct (retry.outcome, error.type) pairs of
// calls that gave up one retrier reports; later pairs are counted under
// error.type _OTHER. error.type values are of low cardinality by design,
// so only an operation whose errors are of many exported types gets there.
const maxErrorTypes = 64

// delayBuckets are the boundaries, in seconds, of the retry.delay histogram.
var delayBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// instruments are a retrier's tracer and metric instruments. Calls and
// attempts are counted in memory and reported by one callback when the
// SDK collects (see observe): a synchronous SDK counter's Add would cost
// ten times the whole first attempt. A first attempt that succeeds is one
// atomic add, to firstSuccess, which stands for one call with outcome
// success and one attempt. Only the retry.delay histogram, recorded on
// the retry path, is synchronous.
type instruments struct {
	tracer   trace.Tracer
	spanOpts []trace.SpanStartOption
	name     attribute.KeyValue

	_            [64]byte // keeps the hot counter off the cache lines read on every call
	firstSuccess telemetry.Counter
	_            [64]byte

	attempts          telemetry.Counter // attempts of calls whose first attempt failed
	successAfterRetry telemetry.Counter
	failures          failureCounts

	delay     metric.Float64Histogram
	delayOpts []metric.RecordOption
	reg       *telemetry.Registration
}

func newInstruments(name string, tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(tp, ScopeName), name: AttrName.String(name)}
	var err error
	if t.delay, err = m.Float64Histogram("retry.delay",
		metric.WithUnit("s"),
		metric.WithDescription("Waits before retries."),
		metric.WithExplicitBucketBoundaries(delayBuckets...)); err != nil {
		otel.Handle(err)
	}
	t.spanOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(t.name)}
	t.delayOpts = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(t.name))}
	t.failures.name = t.name
	return t
}

// observe registers the callback that reports the calls and attempts
// counted in t, the instruments of r: while r is reachable, and once more
// after it is garbage-collected, so that a retrier dropped just before the
// final collection loses no count, and one that is thrown away leaves no
// callback and no series behind.
func (t *instruments) observe(r *Retrier, mp metric.MeterProvider) {
	m := telemetry.Meter(mp, ScopeName)
	attempts := telemetry.Int64ObservableCounter(m, "retry.attempts",
		metric.WithUnit("{attempt}"),
		metric.WithDescription("Calls of the retried operation, first attempts and retries."))
	calls := telemetry.Int64ObservableCounter(m, "retry.calls",
		metric.WithUnit("{call}"),
		metric.WithDescription("Retried operations, by how they ended."))
	nameOpts := []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(t.name))}
	var callOpts [2][]metric.ObserveOption
	for _, o := range []int{outcomeSuccess, outcomeSuccessAfterRetry} {
		callOpts[o] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(t.name, AttrOutcome.String(outcomeNames[o])))}
	}
	t.reg = telemetry.ObserveState(m, r, t, func(t *instruments, o metric.Observer) {
		// Series that never moved are not reported.
		first := t.firstSuccess.Load()
		if n := first + t.attempts.Load(); n > 0 {
			o.ObserveInt64(attempts, n, nameOpts...)
		}
		if first > 0 {
			o.ObserveInt64(calls, first, callOpts[outcomeSuccess]...)
		}
		if n := t.successAfterRetry.Load(); n > 0 {
			o.ObserveInt64(calls, n, callOpts[outcomeSuccessAfterRetry]...)
		}
		t.failures.observe(o, calls)
	}, attempts, calls)
}

// failureKey is one series of retry.calls for calls that gave up.
type failureKey struct {
	outcome   int
	errorType string
}

type failureCount struct {
	n    telemetry.Counter
	opts []metric.ObserveOption
}

// failureCounts counts the calls that gave up, by outcome and error.type.
// Giving up is not the hot path, but during an outage every call does it
// (an open breaker's rejection is not retried), so the count is a read
// lock and an atomic add once the series exists.
type failureCounts struct {
	name attribute.KeyValue
	mu   sync.RWMutex
	m    map[failureKey]*failureCount
}

func (f *failureCounts) inc(outcome int, errorType string) {
	k := failureKey{outcome, errorType}
	f.mu.RLock()
	c := f.m[k]
	f.mu.RUnlock()
	if c == nil {
		c = f.add(k)
	}
	c.n.Inc()
}

func (f *failureCounts) add(k failureKey) *failureCount {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.m[k]; c != nil {
		return c
	}
	if len(f.m) >= maxErrorTypes {
		k.errorType = semconv.ErrorTypeOther.Value.AsString()
		if c := f.m[k]; c != nil {
			return c
		}
	}
	if f.m == nil {
		f.m = make(map[failureKey]*failureCount)
	}
	set := attribute.NewSet(f.name, AttrOutcome.String(outcomeNames[k.outcome]), semconv.ErrorTypeKey.String(k.errorType))
	c := &failureCount{opts: []metric.ObserveOption{metric.WithAttributeSet(set)}}
	f.m[k] = c
	return c
}

func (f *failureCounts) observe(o metric.Observer, calls metric.Int64Observable) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, c := range f.m {
		o.ObserveInt64(calls, c.n.Load(), c.opts...)
	}
}
