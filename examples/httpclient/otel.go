package main

import (
	"context"
	"fmt"
	"io"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "httpclient-example"

// providers are the OpenTelemetry SDK providers of one run, set up as
// every example does (see exampleotel.New): spans kept in memory for the
// trees printed at the end, and JSON to w (when not nil) or OTLP.
type providers struct {
	p  *exampleotel.Providers
	tp *sdktrace.TracerProvider
	mp *sdkmetric.MeterProvider
}

func newProviders(ctx context.Context, w io.Writer) (*providers, error) {
	p, err := exampleotel.New(ctx, serviceName, w)
	if err != nil {
		return nil, err
	}
	return &providers{p: p, tp: p.Tracer, mp: p.Meter}, nil
}

func (p *providers) shutdown(ctx context.Context) error { return p.p.Shutdown(ctx) }

// printTelemetry writes the trace of one request of each kind (ok at
// once, retried, rejected, tripping the breaker...) and a summary of the
// layers' metrics.
func (p *providers) printTelemetry(ctx context.Context, out io.Writer) error {
	fmt.Fprintln(out, "\nspans of the first request of each kind (retried, rejected, ...):")
	spans := exampleotel.OnePerShape(p.p.Spans.Ended(), func(s sdktrace.ReadOnlySpan) bool {
		return s.InstrumentationScope().Name == scopeName
	})
	exampleotel.Tree{
		Attrs:      []attribute.Key{semconv.HTTPResponseStatusCodeKey, semconv.HTTPRequestResendCountKey, "retry.outcome"},
		Events:     true,
		EventAttrs: []attribute.Key{circuitbreaker.AttrPreviousState, circuitbreaker.AttrState},
		MaxLines:   45,
	}.Print(out, "  ", spans)
	fmt.Fprintln(out, "\nmetrics:")
	return p.p.PrintMetrics(ctx, out, "  ", "retry.calls", "retry.attempts", "circuitbreaker.calls", "circuitbreaker.state.transitions")
}
