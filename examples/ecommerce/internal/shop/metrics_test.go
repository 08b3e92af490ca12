package shop

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/app"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// The flow in memory, its metrics read: the patterns report what they
// did with the service's names (the dashboards and the load report read
// them by these attributes).
func TestFlowInMemory(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	flow(t, Config{MeterProvider: mp})

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, want := range []attribute.KeyValue{
		retry.AttrName.String(Inventory),         // the flaky inventory's retries
		circuitbreaker.AttrName.String(Shipping), // the breaker that opened
		saga.AttrName.String(app.SagaName),       // the sagas' outcomes
	} {
		if err := hasPoint(rm, want); err != nil {
			t.Error(err)
		}
	}
}

// hasPoint reports whether a data point of rm carries kv.
func hasPoint(rm metricdata.ResourceMetrics, kv attribute.KeyValue) error {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var sets []attribute.Set
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			}
			for _, s := range sets {
				if v, ok := s.Value(kv.Key); ok && v == kv.Value {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("no metric point with %v", kv)
}
