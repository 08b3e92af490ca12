package aggregate_test

import (
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// documented is the package's telemetry as doc.go describes it.
var (
	documentedMetrics = []telemetrytest.Instrument{
		{Name: aggregate.MetricParts, Kind: telemetrytest.Counter, Unit: "{part}",
			Required: []attribute.Key{semconv.HTTPRouteKey, aggregate.AttrPart, aggregate.AttrOutcome}},
		{Name: aggregate.MetricStageDuration, Kind: telemetrytest.Histogram, Unit: "s",
			Required: []attribute.Key{semconv.HTTPRouteKey, aggregate.AttrStage}},
	}
	documentedSpans = []telemetrytest.Span{
		{Name: aggregate.SpanAggregation, Kind: trace.SpanKindInternal, Parented: true,
			Required: []attribute.Key{semconv.HTTPRouteKey},
			Optional: []attribute.Key{aggregate.AttrClientType, aggregate.AttrCollapsed, semconv.ErrorTypeKey}},
		{Name: aggregate.SpanPart, Kind: trace.SpanKindInternal, Parented: true,
			Required: []attribute.Key{aggregate.AttrPart, gateway.AttrUpstream, aggregate.AttrStage, semconv.HTTPRouteKey},
			Optional: []attribute.Key{aggregate.AttrOutcome, semconv.ErrorTypeKey}},
	}
)

// TestTelemetry runs an aggregation whose parts end every way there is
// and checks the spans (the upstream's client span under its part's,
// under the aggregation's, under the gateway's server span) and the
// metrics by outcome and stage.
func TestTelemetry(t *testing.T) {
	p := telemetrytest.New(t)
	s := newShop(t)
	release := make(chan struct{})
	defer close(release)
	ads := newUpstream(t, "ads", status(500))
	profiles := newUpstream(t, "profiles", jsonAnswer(map[string]any{"vip": true}))
	parts := append(s.parts(),
		aggregate.Part{Name: "ads", Upstream: "ads", Path: "/ads", Optional: true},
		aggregate.Part{Name: "profile", Upstream: "profiles", Path: "/profiles/{order.customer_id}", Optional: true, TTL: time.Nanosecond},
	)
	parts[1].TTL = time.Hour // customer: cached the second time
	parts[2].Timeout = 10 * time.Millisecond
	s.reviews.handle(blocked(release)) // reviews: a timeout
	st := startWith(t, upstreamsOf(append(s.upstreams(), ads, profiles)...), gateway.Route{Pattern: "GET /orders/{id}"}, parts,
		[]gateway.Option{gateway.WithTracerProvider(p.TracerProvider), gateway.WithMeterProvider(p.MeterProvider)},
		aggregate.WithCache(newCache(t)),
		aggregate.WithTracerProvider(p.TracerProvider), aggregate.WithMeterProvider(p.MeterProvider))

	st.get(t, "/orders/7")
	profiles.handle(status(503)) // profile: stale the second time
	resp, doc := st.get(t, "/orders/7")
	if resp.StatusCode != 200 || field(doc, "_stale") != `["profile"]` {
		t.Fatalf("second request: %d %v", resp.StatusCode, doc)
	}

	route := semconv.HTTPRoute("/orders/{id}")
	for _, tt := range []struct {
		part, outcome string
		want          int64
	}{
		{"order", aggregate.OutcomeOK, 2},
		{"customer", aggregate.OutcomeOK, 1},
		{"customer", aggregate.OutcomeCached, 1},
		{"reviews", aggregate.OutcomeTimeout, 2},
		{"ads", aggregate.OutcomeFailed, 2},
		{"profile", aggregate.OutcomeOK, 1},
		{"profile", aggregate.OutcomeStale, 1},
	} {
		got := p.Int64(t, aggregate.MetricParts, route, aggregate.AttrPart.String(tt.part), aggregate.AttrOutcome.String(tt.outcome))
		if got != tt.want {
			t.Errorf("%s{part=%s, outcome=%s} = %d; want %d", aggregate.MetricParts, tt.part, tt.outcome, got, tt.want)
		}
	}
	for stage := range 2 {
		if got := p.HistogramCount(t, aggregate.MetricStageDuration, route, aggregate.AttrStage.Int(stage)); got != 2 {
			t.Errorf("%s{stage=%d} count = %d; want 2", aggregate.MetricStageDuration, stage, got)
		}
	}
	p.CheckMetrics(t, aggregate.ScopeName, documentedMetrics, aggregate.MetricParts, aggregate.MetricStageDuration)
	p.CheckSpans(t, aggregate.ScopeName, documentedSpans, aggregate.SpanAggregation, aggregate.SpanPart)
	telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, documentedSpans)

	// The span tree: server → aggregation → part → client.
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, sp := range p.Spans.Ended() {
		byID[sp.SpanContext().SpanID()] = sp
	}
	parent := func(sp sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan { return byID[sp.Parent().SpanID()] }
	aggs := p.SpansNamed(aggregate.SpanAggregation)
	if len(aggs) != 2 {
		t.Fatalf("%d aggregation spans; want 2", len(aggs))
	}
	for _, agg := range aggs {
		if srv := parent(agg); srv == nil || srv.SpanKind() != trace.SpanKindServer {
			t.Errorf("the aggregation span's parent is %v; want the gateway's server span", srv)
		}
	}
	clients := 0
	for _, sp := range p.Spans.Ended() {
		if sp.SpanKind() != trace.SpanKindClient {
			continue
		}
		clients++
		part := parent(sp)
		if part == nil || part.Name() != aggregate.SpanPart {
			t.Errorf("client span %q under %v; want a part span", sp.Name(), part)
			continue
		}
		if agg := parent(part); agg == nil || agg.Name() != aggregate.SpanAggregation {
			t.Errorf("part span under %v; want the aggregation span", agg)
		}
		attrs := telemetrytest.Attrs(part)
		if attrs[aggregate.AttrOutcome].AsString() == aggregate.OutcomeCached {
			t.Errorf("a cached part has a client span")
		}
	}
	// Two requests of five upstream calls, less the cached customer.
	if clients != 9 {
		t.Errorf("%d client spans; want 9", clients)
	}
	for _, sp := range p.SpansNamed(aggregate.SpanPart) {
		a := telemetrytest.Attrs(sp)
		failed := sp.Status().Code.String() == "Error"
		switch a[aggregate.AttrOutcome].AsString() {
		case aggregate.OutcomeTimeout, aggregate.OutcomeFailed, aggregate.OutcomeStale:
			if !failed || a[semconv.ErrorTypeKey].AsString() == "" {
				t.Errorf("part %s (%s): status %v, error.type %q; want Error with a type", a[aggregate.AttrPart].AsString(),
					a[aggregate.AttrOutcome].AsString(), sp.Status(), a[semconv.ErrorTypeKey].AsString())
			}
		default:
			if failed {
				t.Errorf("part %s (%s) has status Error", a[aggregate.AttrPart].AsString(), a[aggregate.AttrOutcome].AsString())
			}
		}
	}
}

// TestUnreachablePartErrorType checks the error.type of a part whose
// upstream cannot be reached, on its span and on the aggregation's: one
// of the values doc.go lists (aggregate.{reason} here), not the Go type
// of http.Client's error (net/url.Error).
func TestUnreachablePartErrorType(t *testing.T) {
	p := telemetrytest.New(t)
	u := newUpstream(t, "orders", jsonAnswer(map[string]any{}))
	u.Close() // not listening
	st := start(t, []*upstream{u}, "GET /o", []aggregate.Part{{Name: "order", Upstream: "orders", Path: "/o"}}, nil,
		aggregate.WithTracerProvider(p.TracerProvider), aggregate.WithMeterProvider(p.MeterProvider))
	if resp, doc := st.get(t, "/o"); resp.StatusCode != http.StatusBadGateway || field(doc, "_failed.order.error") != `"unreachable"` {
		t.Fatalf("%d %v; want 502, unreachable", resp.StatusCode, doc)
	}
	const want = "aggregate.unreachable"
	for _, name := range []string{aggregate.SpanPart, aggregate.SpanAggregation} {
		spans := p.SpansNamed(name)
		if len(spans) != 1 {
			t.Fatalf("%d %s spans; want 1", len(spans), name)
		}
		if got := telemetrytest.Attrs(spans[0])[semconv.ErrorTypeKey].AsString(); got != want {
			t.Errorf("%s: %s = %q; want %q", name, semconv.ErrorTypeKey, got, want)
		}
	}
}
