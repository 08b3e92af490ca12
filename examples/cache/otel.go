package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/otel/attribute"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "cache-example"

// providers are the OpenTelemetry SDK providers of one run, set up as
// every example does (see exampleotel.New): spans kept in memory for the
// trees printed at the end, and JSON to w (when not nil) or OTLP.
type providers struct {
	p  *exampleotel.Providers
	tp *sdktrace.TracerProvider
	mp *sdkmetric.MeterProvider

	// reader is a second reader of mp's metrics, from which the program
	// reads the caches' counters for its own report.
	reader *sdkmetric.ManualReader
}

func newProviders(ctx context.Context, w io.Writer) (*providers, error) {
	reader := sdkmetric.NewManualReader()
	p, err := exampleotel.New(ctx, serviceName, w, reader)
	if err != nil {
		return nil, err
	}
	return &providers{p: p, tp: p.Tracer, mp: p.Meter, reader: reader}, nil
}

func (p *providers) shutdown(ctx context.Context) error { return p.p.Shutdown(ctx) }

// printTrees writes the traces of the phases whose titles start with one
// of prefixes: the cache's spans under each phase's, alike ones folded.
func (p *providers) printTrees(out io.Writer, prefixes ...string) {
	fmt.Fprintln(out, "\nspans of phases 2 and 3 (alike siblings folded: ×N):")
	spans := p.p.Spans.Ended()
	for _, s := range spans {
		for _, prefix := range prefixes {
			if !s.Parent().IsValid() && strings.HasPrefix(s.Name(), prefix) {
				exampleotel.Tree{
					Attrs:       []attribute.Key{cache.AttrName, cache.AttrLevel, cache.AttrResult, cache.AttrDirection},
					Events:      true,
					MaxChildren: 8,
					MaxLines:    14,
				}.Print(out, "  ", p.p.Spans.Trace(s.SpanContext().TraceID()))
			}
		}
	}
}
