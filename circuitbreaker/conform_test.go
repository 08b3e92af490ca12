package circuitbreaker_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// documented is the package's telemetry as doc.go describes it.
var documented = []telemetrytest.Instrument{
	{Name: "circuitbreaker.calls", Kind: telemetrytest.Counter, Unit: "{call}",
		Required: []attribute.Key{circuitbreaker.AttrName, circuitbreaker.AttrOutcome}},
	{Name: "circuitbreaker.state", Kind: telemetrytest.Gauge, Unit: "{state}",
		Required: []attribute.Key{circuitbreaker.AttrName, circuitbreaker.AttrState}},
	{Name: "circuitbreaker.state.transitions", Kind: telemetrytest.Counter, Unit: "{transition}",
		Required: []attribute.Key{circuitbreaker.AttrName, circuitbreaker.AttrPreviousState, circuitbreaker.AttrState}},
	{Name: "circuitbreaker.call.duration", Kind: telemetrytest.Histogram, Unit: "s",
		Required: []attribute.Key{circuitbreaker.AttrName, circuitbreaker.AttrOutcome}},
}

// TestTelemetryConforms runs a breaker through every state and checks
// every data point against the documented instruments, and doc.go against
// them.
func TestTelemetryConforms(t *testing.T) {
	tel := telemetrytest.New(t)
	b := circuitbreaker.New("payments", circuitbreaker.WithMeterProvider(tel.MeterProvider),
		circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Millisecond),
		circuitbreaker.WithDurationHistogram())
	run(t, b, "sf")
	_ = b.Execute(context.Background(), succeed) // rejected
	time.Sleep(5 * time.Millisecond)
	run(t, b, "s") // the probe closes it
	tel.CheckMetrics(t, circuitbreaker.ScopeName, documented,
		"circuitbreaker.calls", "circuitbreaker.state", "circuitbreaker.state.transitions", "circuitbreaker.call.duration")
	telemetrytest.CheckDoc(t, "doc.go", documented, nil)
	for _, event := range []string{"circuitbreaker.rejected", "circuitbreaker.state_change", string(semconv.ErrorTypeKey)} {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: event}}, nil)
	}
}

// TestGroupBoundsSeries protects the cardinality promise of doc.go: a
// group reports the series of the breakers it holds, not of every key it
// ever saw, and only outcomes that happened.
func TestGroupBoundsSeries(t *testing.T) {
	tel := telemetrytest.New(t)
	g := circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(4), circuitbreaker.WithMeterProvider(tel.MeterProvider))
	ctx := context.Background()
	for i := range 50 {
		_ = g.Get(fmt.Sprintf("host-%d", i)).Execute(ctx, succeed)
	}
	runtime.GC()
	names := map[string]bool{}
	for _, sm := range tel.Collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			sets := telemetrytest.AttributeSets(m)
			for _, set := range sets {
				v, _ := set.Value(circuitbreaker.AttrName)
				names[v.AsString()] = true
			}
			if m.Name == "circuitbreaker.calls" && len(sets) != 4 {
				t.Errorf("circuitbreaker.calls has %d series; want 4 (one success series per breaker held)", len(sets))
			}
		}
	}
	if len(names) != 4 {
		t.Errorf("series name %d breakers; want the 4 the group holds: %v", len(names), names)
	}
	runtime.KeepAlive(g)
}
