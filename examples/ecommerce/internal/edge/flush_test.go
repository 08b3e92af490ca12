package edge

import (
	"context"
	"sync"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelpatterns/patterns/gateway"
)

// scopes is a metric exporter that remembers which instrumentation
// scopes each export held metrics of.
type scopes struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *scopes) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}

func (s *scopes) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

func (s *scopes) Export(_ context.Context, rm *metricdata.ResourceMetrics) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sm := range rm.ScopeMetrics {
		if len(sm.Metrics) > 0 {
			s.seen[sm.Scope.Name] = true
		}
	}
	return nil
}

func (s *scopes) ForceFlush(context.Context) error { return nil }
func (s *scopes) Shutdown(context.Context) error   { return nil }

func (s *scopes) has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[name]
}

// TestGatewayMetricsExportedAtShutdown: the gateway's own metrics are
// reported by callbacks that Gateway.Close unregisters, so the
// meter provider must be flushed before the gateways close (the gateway
// package's doc.go says so); else what they counted since the last
// export is never exported, and a program that exports on shutdown
// (periodic OTLP) loses them.
func TestGatewayMetricsExportedAtShutdown(t *testing.T) {
	exp := &scopes{seen: map[string]bool{}}
	// An interval longer than the test: only a flush or the shutdown
	// exports.
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(1<<40))))
	r := startEdge(t, newServices(t), func(c *Config) { c.MeterProvider = mp })
	if res := r.do(t, "GET", "/api/products/lamp", r.token(t, "web-app"), ""); res.status != 200 {
		t.Fatalf("GET = %v; want 200", res)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// As a program does once its app has returned.
	if err := mp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !exp.has(gateway.ScopeName) {
		t.Errorf("no metrics of %s exported by the time the meter provider shut down", gateway.ScopeName)
	}
}
