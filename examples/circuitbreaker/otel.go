package main

import (
	"context"
	"fmt"
	"io"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "circuitbreaker-example"

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

// printTelemetry writes the spans of the requests where something
// happened to the breaker (it changed state, or it first rejected a
// request), with the breaker's events, and the breaker's metrics.
func (p *providers) printTelemetry(ctx context.Context, out io.Writer) error {
	var shown []sdktrace.ReadOnlySpan
	number := map[trace.SpanID]int{} // the request's number, by span
	n, rejected := 0, false
	for _, s := range p.p.Spans.Ended() {
		if s.InstrumentationScope().Name != scopeName {
			continue
		}
		n++ // the requests are sent one at a time: they end in order
		for _, e := range s.Events() {
			first := e.Name == "circuitbreaker.rejected" && !rejected
			if e.Name == "circuitbreaker.state_change" || first {
				rejected = rejected || first
				shown = append(shown, s)
				number[s.SpanContext().SpanID()] = n
				break
			}
		}
	}
	fmt.Fprintln(out, "\nspans of the requests where the breaker changed state or first rejected one:")
	exampleotel.Tree{
		Attrs:      []attribute.Key{semconv.HTTPResponseStatusCodeKey},
		Events:     true,
		EventAttrs: []attribute.Key{circuitbreaker.AttrPreviousState, circuitbreaker.AttrState},
		Note: func(s sdktrace.ReadOnlySpan) string {
			return fmt.Sprintf("(request %d)", number[s.SpanContext().SpanID()])
		},
	}.Print(out, "  ", shown)
	fmt.Fprintln(out, "\nthe breaker's metrics:")
	return p.p.PrintMetrics(ctx, out, "  ")
}
