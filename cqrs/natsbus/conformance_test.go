package natsbus_test

import (
	"testing"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/bustest"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
)

// TestConformance runs the event bus conformance suite, each subtest with
// a stream of its own. It is not parallel: one subtest sets the global
// propagator.
func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) cqrs.EventBus {
		b, _, _ := newBus(t)
		return b
	})
}

// TestTelemetryConformance runs the suite of the telemetry every bus of
// the module records. It is not parallel: it sets the global propagator.
func TestTelemetryConformance(t *testing.T) {
	bustest.RunTelemetry(t, func(t *testing.T, tp trace.TracerProvider, mp metric.MeterProvider) cqrs.EventBus {
		b, _, _ := newBus(t, natsbus.WithTracerProvider(tp), natsbus.WithMeterProvider(mp))
		return b
	})
}
