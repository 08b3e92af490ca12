// Package telemetry is the OpenTelemetry plumbing shared by every package of
// the module: the module version, the per-package tracer and meter, and the
// way errors are recorded on spans.
//
// It is internal so that the library can change how it builds instruments
// without breaking users; users configure telemetry through each package's
// WithTracerProvider and WithMeterProvider options.
package telemetry

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns"
)

// Version is the version of the module, reported as the instrumentation
// scope version of every tracer and meter the library creates. It is
// patterns.Version, kept in the root package so that the documentation
// shows its value.
const Version = patterns.Version

// Tracer returns the tracer for the package whose import path is scope,
// taken from tp, or from the global provider when tp is nil. The global
// provider is read when Tracer is called, so a package should call it once,
// at construction, after the service has set up OpenTelemetry.
func Tracer(tp trace.TracerProvider, scope string) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(scope, trace.WithInstrumentationVersion(Version))
}

// Meter returns the meter for the package whose import path is scope, taken
// from mp, or from the global provider when mp is nil.
func Meter(mp metric.MeterProvider, scope string) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(scope, metric.WithInstrumentationVersion(Version))
}

// RecordError marks span as failed with err: status Error with the error's
// message, and the error.type attribute. It does nothing when err is nil or
// the span is not recording, so callers need not check either.
func RecordError(span trace.Span, err error) {
	if err == nil || !span.IsRecording() {
		return
	}
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(ErrorType(err))
}

// AddEvent adds an event to the span in ctx when that span is recording.
// It is how in-memory decisions (a breaker rejecting a call, a cache hit)
// annotate the caller's span instead of starting one of their own; attrs is
// only called when the span records, so building the attributes costs
// nothing otherwise.
func AddEvent(ctx context.Context, name string, attrs func() []attribute.KeyValue) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent(name, trace.WithAttributes(attrs()...))
}
