package storekit_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/storekit"
)

// TestTraceContextWithoutGlobalPropagator protects the fallback to the W3C
// trace context: a service that set no global propagator (this package's
// tests set none) still gets events that projections can link to.
func TestTraceContextWithoutGlobalPropagator(t *testing.T) {
	if n := len(otel.GetTextMapPropagator().Fields()); n != 0 {
		t.Skipf("a global propagator with %d fields is set", n)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	out := storekit.PrepareAppend(ctx, []eventsource.NewEvent{{Type: "t"}})
	if out[0].Metadata["traceparent"] == "" {
		t.Fatalf("PrepareAppend metadata = %q; want a traceparent", out[0].Metadata)
	}
	got := trace.SpanContextFromContext(eventsource.TraceContext(context.Background(), eventsource.Event{Metadata: out[0].Metadata}))
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() {
		t.Errorf("TraceContext() = %v; want %v", got, sc)
	}
}
