package main

import (
	"context"
	"io"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "bff-example"

// providers are the OpenTelemetry SDK providers of one run, set up as
// every example does (see exampleotel.New): JSON to w (when not nil) at
// the end, or OTLP.
// Besides, spans are kept in memory (spans) to print a query's tree.
type providers struct {
	p     *exampleotel.Providers
	tp    *sdktrace.TracerProvider
	mp    *sdkmetric.MeterProvider
	spans *exampleotel.Spans
	done  bool
}

func newProviders(ctx context.Context, w io.Writer) (*providers, error) {
	p, err := exampleotel.New(ctx, serviceName, w)
	if err != nil {
		return nil, err
	}
	return &providers{p: p, tp: p.Tracer, mp: p.Meter, spans: p.Spans}, nil
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
