package benchmarks

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// sdkProviders are OpenTelemetry SDK providers set up as a service has
// them, minus the export: a meter provider with a manual reader, and a
// tracer provider that samples every trace. The -sdk scenarios give them
// to otelpatterns; the peers have no telemetry and run their plain row
// again, so that each scenario has a reference row to compare with.
type sdkProviders struct {
	mp *sdkmetric.MeterProvider
	tp *sdktrace.TracerProvider
}

// newSDK returns providers shut down when the benchmark or test ends.
func newSDK(tb testing.TB) *sdkProviders {
	p := &sdkProviders{
		mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
		tp: sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())),
	}
	tb.Cleanup(func() {
		_ = p.tp.Shutdown(context.Background())
		_ = p.mp.Shutdown(context.Background())
	})
	return p
}

// sampledContext returns a context holding a sampled, recording span, as
// the context of a traced request does: a synchronous SDK instrument
// records an exemplar for each measurement made in it (the SDK's default
// trace-based exemplar filter). The -sampled scenarios call every
// implementation with it. The span ends when the benchmark or test ends.
func sampledContext(tb testing.TB) context.Context {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	ctx, span := tp.Tracer("benchmarks").Start(context.Background(), "request")
	tb.Cleanup(func() {
		span.End()
		_ = tp.Shutdown(context.Background())
	})
	if !span.SpanContext().IsSampled() || !span.IsRecording() {
		tb.Fatal("sampledContext: the span is not sampled and recording")
	}
	return ctx
}
