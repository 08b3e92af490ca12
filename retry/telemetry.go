package retry

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/retry"

// Attribute keys the package records.
const (
	AttrName     = attribute.Key("retry.name")
	AttrOutcome  = attribute.Key("retry.outcome")
	AttrAttempt  = attribute.Key("retry.attempt")
	AttrAttempts = attribute.Key("retry.attempts")
	AttrDelay    = attribute.Key("retry.delay")
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

// delayBuckets are the boundaries, in seconds, of the retry.delay histogram.
var delayBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// instruments are a retrier's tracer and metric instruments, with the
// attribute sets they use built once.
type instruments struct {
	tracer    trace.Tracer
	spanOpts  []trace.SpanStartOption
	name      attribute.KeyValue
	attempts  metric.Int64Counter
	calls     metric.Int64Counter
	delay     metric.Float64Histogram
	nameOpts  []metric.AddOption
	delayOpts []metric.RecordOption
	callOpts  [numOutcomes][]metric.AddOption
}

func newInstruments(name string, tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(tp, ScopeName), name: AttrName.String(name)}
	var err error
	if t.attempts, err = m.Int64Counter("retry.attempts",
		metric.WithUnit("{attempt}"),
		metric.WithDescription("Calls of the retried operation, first attempts and retries.")); err != nil {
		otel.Handle(err)
	}
	if t.calls, err = m.Int64Counter("retry.calls",
		metric.WithUnit("{call}"),
		metric.WithDescription("Retried operations, by how they ended.")); err != nil {
		otel.Handle(err)
	}
	if t.delay, err = m.Float64Histogram("retry.delay",
		metric.WithUnit("s"),
		metric.WithDescription("Waits before retries."),
		metric.WithExplicitBucketBoundaries(delayBuckets...)); err != nil {
		otel.Handle(err)
	}
	t.spanOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(t.name)}
	set := attribute.NewSet(t.name)
	t.nameOpts = []metric.AddOption{metric.WithAttributeSet(set)}
	t.delayOpts = []metric.RecordOption{metric.WithAttributeSet(set)}
	for o := range numOutcomes {
		t.callOpts[o] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(t.name, AttrOutcome.String(outcomeNames[o])))}
	}
	return t
}
