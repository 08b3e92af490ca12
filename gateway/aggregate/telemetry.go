package aggregate

import (
	"context"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer
// and meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/gateway/aggregate"

// Names of the spans and metrics the package records.
const (
	SpanAggregation     = "gateway.aggregation"
	SpanPart            = "gateway.aggregation.part"
	MetricParts         = "gateway.aggregation.parts"
	MetricStageDuration = "gateway.aggregation.stage.duration"
)

// Attribute keys the package records.
const (
	AttrPart       = attribute.Key("gateway.aggregation.part")
	AttrOutcome    = attribute.Key("gateway.aggregation.outcome")
	AttrStage      = attribute.Key("gateway.aggregation.stage")
	AttrClientType = attribute.Key("gateway.aggregation.client_type")
	AttrCollapsed  = attribute.Key("gateway.aggregation.collapsed")
)

// The values of gateway.aggregation.outcome: how a part's value was had.
const (
	OutcomeOK      = "ok"      // the upstream answered
	OutcomeFailed  = "failed"  // it failed, and no cached answer stood in
	OutcomeTimeout = "timeout" // its time ran out, and no cached answer stood in
	OutcomeCached  = "cached"  // a fresh cached answer, the upstream not called
	OutcomeStale   = "stale"   // it failed, and an older cached answer stood in
)

// stageBuckets are the boundaries, in seconds, of the stage duration
// histogram: those of the HTTP semantic conventions.
var stageBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

type instruments struct {
	tracer trace.Tracer
	parts  metric.Int64Counter
	stage  metric.Float64Histogram
}

func newInstruments(tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	parts, err := m.Int64Counter(MetricParts, metric.WithUnit("{part}"),
		metric.WithDescription("Parts of aggregations, by how their value was had."))
	if err != nil {
		otel.Handle(err)
	}
	stage, err := m.Float64Histogram(MetricStageDuration, metric.WithUnit("s"),
		metric.WithDescription("The duration of each stage of an aggregation: its parts, run concurrently."),
		metric.WithExplicitBucketBoundaries(stageBuckets...))
	if err != nil {
		otel.Handle(err)
	}
	return &instruments{tracer: telemetry.Tracer(tp, ScopeName), parts: parts, stage: stage}
}

// count records one part's outcome. The attribute set is built per call:
// next to an upstream call, its few allocations do not show.
func (t *instruments) count(ctx context.Context, route, part, outcome string) {
	if t.parts == nil || !t.parts.Enabled(ctx) {
		return
	}
	t.parts.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(
		semconv.HTTPRoute(route), AttrPart.String(part), AttrOutcome.String(outcome))))
}

func (t *instruments) observeStage(ctx context.Context, route string, stage int, d time.Duration) {
	if t.stage == nil || !t.stage.Enabled(ctx) {
		return
	}
	t.stage.Record(ctx, d.Seconds(), metric.WithAttributeSet(attribute.NewSet(
		semconv.HTTPRoute(route), AttrStage.Int(stage))))
}

// routeOf returns the http.route of a request: the path part of the
// pattern of the gateway's route (or of the ServeMux that served it).
func routeOf(r *http.Request) string {
	p, ok := gateway.RouteFrom(r.Context())
	if !ok {
		p = r.Pattern
	}
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[i:]
	}
	return ""
}
