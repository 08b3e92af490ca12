package main

import (
	"context"
	"io"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "bank-example"

// providers are the OpenTelemetry SDK providers of one run, set up as
// every example does (see exampleotel.New): JSON to w at the end, or OTLP.
// traces also keeps the ended spans in memory, for the trees the program
// prints.
type providers struct {
	p      *exampleotel.Providers
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
	traces *traces
}

func newProviders(ctx context.Context, w io.Writer) (*providers, error) {
	p, err := exampleotel.New(ctx, serviceName, w)
	if err != nil {
		return nil, err
	}
	return &providers{p: p, tp: p.Tracer, mp: p.Meter, traces: &traces{spans: p.Spans}}, nil
}

func (p *providers) shutdown(ctx context.Context) error { return p.p.Shutdown(ctx) }
