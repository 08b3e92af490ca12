package cache

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
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
	resultError
	numResults
)

const (
	loadSuccess = iota
	loadNotFound
	loadError
	numLoadResults
)

var (
	levelNames      = [numLevels]string{"l1", "l2"}
	resultNames     = [numResults]string{"hit", "miss", "error"}
	loadResultNames = [numLoadResults]string{"success", "not_found", "error"}
)

var loadBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// instruments are a cache's tracer and metric instruments, with the
// attribute sets they use built once so that recording allocates nothing.
type instruments struct {
	tracer       trace.Tracer
	clientSpan   []trace.SpanStartOption
	internalSpan []trace.SpanStartOption
	meter        metric.Meter
	name         attribute.KeyValue
	requests     metric.Int64Counter
	requestOpts  [numLevels][numResults][]metric.AddOption
	loads        metric.Int64Counter
	loadOpts     [numLoadResults][]metric.AddOption
	loadDuration metric.Float64Histogram
	loadDurOpts  [numLoadResults][]metric.RecordOption
	evictions    metric.Int64Counter
	nameOpts     []metric.AddOption
	invalidation metric.Int64Counter
	sentOpts     []metric.AddOption
	receivedOpts []metric.AddOption
	flushes      metric.Int64Counter
	flushOpts    [2][]metric.AddOption // success, error
}

func newInstruments(name string, tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(tp, ScopeName), meter: m, name: AttrName.String(name)}
	t.clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(t.name)}
	t.internalSpan = []trace.SpanStartOption{trace.WithAttributes(t.name)}
	check := func(err error) {
		if err != nil {
			otel.Handle(err)
		}
	}
	var err error
	t.requests, err = m.Int64Counter("cache.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Lookups per cache level, by result."))
	check(err)
	t.loads, err = m.Int64Counter("cache.loads", metric.WithUnit("{load}"),
		metric.WithDescription("Calls of the loader on a miss or a refresh, by result."))
	check(err)
	t.loadDuration, err = m.Float64Histogram("cache.load.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of loader calls."), metric.WithExplicitBucketBoundaries(loadBuckets...))
	check(err)
	t.evictions, err = m.Int64Counter("cache.evictions", metric.WithUnit("{entry}"),
		metric.WithDescription("Entries that the in-process (L1) cache dropped by itself: evicted to make room, or expired."))
	check(err)
	t.invalidation, err = m.Int64Counter("cache.invalidations", metric.WithUnit("{key}"),
		metric.WithDescription("Invalidations of L1 copies sent to and received from other instances."))
	check(err)
	t.flushes, err = m.Int64Counter("cache.write_behind.flushes", metric.WithUnit("{flush}"),
		metric.WithDescription("Batches written by the write-behind worker, by result."))
	check(err)

	add := func(kv ...attribute.KeyValue) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{t.name}, kv...)...))}
	}
	for l := range numLevels {
		for r := range numResults {
			t.requestOpts[l][r] = add(AttrLevel.String(levelNames[l]), AttrResult.String(resultNames[r]))
		}
	}
	for r := range numLoadResults {
		t.loadOpts[r] = add(AttrResult.String(loadResultNames[r]))
		t.loadDurOpts[r] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(t.name, AttrResult.String(loadResultNames[r])))}
	}
	t.nameOpts = add()
	t.sentOpts = add(AttrDirection.String("sent"))
	t.receivedOpts = add(AttrDirection.String("received"))
	t.flushOpts[0] = add(AttrResult.String("success"))
	t.flushOpts[1] = add(AttrResult.String("error"))
	return t
}
