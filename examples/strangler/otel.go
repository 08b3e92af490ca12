package main

import (
	"context"
	"io"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/gateway/strangler"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "strangler-example"

// providers are the OpenTelemetry SDK providers of one run, set up as
// every example does (see exampleotel.New): JSON to w at the end, or OTLP.
// Besides, metrics can be read at any time (reader), for the facade's
// counts.
type providers struct {
	p      *exampleotel.Providers
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
	reader *sdkmetric.ManualReader
	done   bool
}

func newProviders(ctx context.Context, w io.Writer) (*providers, error) {
	reader := sdkmetric.NewManualReader()
	p, err := exampleotel.New(ctx, serviceName, w, reader)
	if err != nil {
		return nil, err
	}
	return &providers{p: p, tp: p.Tracer, mp: p.Meter, reader: reader}, nil
}

// shutdown flushes the telemetry and stops the providers; calls after the
// first do nothing.
func (p *providers) shutdown(ctx context.Context) error {
	if p.done {
		return nil
	}
	p.done = true
	return p.p.Shutdown(ctx)
}

// stranglerCounts reads a counter of the facade (gateway.strangler.routed
// or gateway.strangler.shadow) summed by the value of one attribute.
func (p *providers) stranglerCounts(ctx context.Context, metric string, by attribute.Key) (map[string]int64, error) {
	var rm metricdata.ResourceMetrics
	if err := p.reader.Collect(ctx, &rm); err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != strangler.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || m.Name != metric {
				continue
			}
			for _, dp := range sum.DataPoints {
				v, _ := dp.Attributes.Value(by)
				counts[v.AsString()] += dp.Value
			}
		}
	}
	return counts, nil
}
