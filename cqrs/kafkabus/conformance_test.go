package kafkabus_test

import (
	"testing"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/bustest"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
)

// TestConformance runs the event bus conformance suite, each subtest on a
// kfake cluster of three brokers of its own (or on the cluster of
// PATTERNS_KAFKA_BROKERS, with topics of its own), with four partitions a
// topic. It is not parallel: one subtest sets the global propagator.
func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) cqrs.EventBus {
		return newBus(t, newCluster(t, 3))
	})
}

// TestTelemetryConformance runs the suite of the telemetry every bus of
// the module records. It is not parallel: it sets the global propagator.
func TestTelemetryConformance(t *testing.T) {
	bustest.RunTelemetry(t, func(t *testing.T, tp trace.TracerProvider, mp metric.MeterProvider) cqrs.EventBus {
		return newBus(t, newCluster(t, 3), kafkabus.WithTracerProvider(tp), kafkabus.WithMeterProvider(mp))
	})
}
