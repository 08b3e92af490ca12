package main

import (
	"context"
	"io"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/gateway"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "gateway-example"

// providers are the OpenTelemetry SDK providers of one run, set up as
// every example does (see exampleotel.New): JSON to w (when not nil) at
// the end, or OTLP.
// Besides, spans are kept in memory (spans) to print a request's tree, and
// metrics can be read at any time (reader).
type providers struct {
	p      *exampleotel.Providers
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
	spans  *exampleotel.Spans
	reader *sdkmetric.ManualReader
	done   bool
}

func newProviders(ctx context.Context, w io.Writer) (*providers, error) {
	reader := sdkmetric.NewManualReader()
	p, err := exampleotel.New(ctx, serviceName, w, reader)
	if err != nil {
		return nil, err
	}
	return &providers{p: p, tp: p.Tracer, mp: p.Meter, spans: p.Spans, reader: reader}, nil
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

// fallbacks reads the gateway.fallbacks counter: the fallback responses
// the gateway counted, over all routes and reasons.
func (p *providers) fallbacks(ctx context.Context) (int64, error) {
	var rm metricdata.ResourceMetrics
	if err := p.reader.Collect(ctx, &rm); err != nil {
		return 0, err
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != gateway.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "gateway.fallbacks" {
				for _, dp := range sum.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n, nil
}
