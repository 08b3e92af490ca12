package telemetry

import (
	"context"
	"reflect"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// SpanGate tells a hot path when starting a span is pointless: when the
// tracer can only make non-recording spans that carry the caller's span
// context on (a no-op tracer, or the global provider's before a provider
// is set) and the caller's span does not record either. Such a span costs
// two or three allocations and tells the code below nothing its ctx does
// not hold already.
type SpanGate struct {
	noop bool
	// unsetGlobal is the global provider as it was when the gate was made,
	// if it was the one before any provider is set; it stays so until
	// otel.SetTracerProvider replaces it, and spans start again from then.
	unsetGlobal trace.TracerProvider
}

// NewSpanGate returns the gate of tracer, got from tp (nil: the global
// provider) by [Tracer].
func NewSpanGate(tp trace.TracerProvider, tracer trace.Tracer) SpanGate {
	var g SpanGate
	_, g.noop = tracer.(noop.Tracer)
	if tp == nil {
		// The global provider's own type, before a provider is set, is
		// unexported: told by its name. Another name only costs the span.
		if p := otel.GetTracerProvider(); reflect.TypeOf(p).String() == "*global.tracerProvider" {
			g.unsetGlobal = p
		}
	}
	return g
}

// Skip reports whether a span started now under ctx would be a
// non-recording one passing ctx's span context on, so that the caller
// may run without one.
func (g SpanGate) Skip(ctx context.Context) bool {
	if !g.noop && (g.unsetGlobal == nil || otel.GetTracerProvider() != g.unsetGlobal) {
		return false
	}
	return !trace.SpanFromContext(ctx).IsRecording()
}
