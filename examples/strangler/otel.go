package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/gateway/strangler"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "strangler-example"

// providers are the OpenTelemetry SDK providers of one run, set up as
// every example does (see exampleotel.New): spans kept in memory for the
// trees printed at the end, and JSON to w (when not nil) or OTLP.
// Besides, metrics can be read at any time (reader), for the facade's
// counts, and the gateway's and the facade's spans can be turned off for a
// while (quiet).
type providers struct {
	p      *exampleotel.Providers
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
	reader *sdkmetric.ManualReader
	quiet  *quietable // over tp
	done   bool
}

func newProviders(ctx context.Context, w io.Writer) (*providers, error) {
	reader := sdkmetric.NewManualReader()
	p, err := exampleotel.New(ctx, serviceName, w, reader)
	if err != nil {
		return nil, err
	}
	return &providers{p: p, tp: p.Tracer, mp: p.Meter, reader: reader, quiet: &quietable{tp: p.Tracer}}, nil
}

// quietable is a tracer provider whose tracers start no-op spans while
// quiet is set, and spans of tp otherwise. The 4000 requests of the
// split, each with its shadow copy, would make some 16,000 spans (30 MB
// of JSON); the program turns tracing off for them and on again for the
// scenes after. Metrics are recorded all along.
type quietable struct {
	embedded.TracerProvider
	tp    trace.TracerProvider
	quiet atomic.Bool
}

// Tracer implements trace.TracerProvider.
func (q *quietable) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &quietTracer{q: q, traced: q.tp.Tracer(name, opts...), off: noop.NewTracerProvider().Tracer(name)}
}

type quietTracer struct {
	embedded.Tracer
	q           *quietable
	traced, off trace.Tracer
}

// Start implements trace.Tracer.
func (t *quietTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t.q.quiet.Load() {
		return t.off.Start(ctx, name, opts...)
	}
	return t.traced.Start(ctx, name, opts...)
}

// printTrees writes the trace of the first request of each shape (see
// exampleotel.OnePerShape) that the gateway served while tracing was on.
func (p *providers) printTrees(out io.Writer) {
	fmt.Fprintln(out, "== spans of one request of each kind (tracing was off for the split and the shadow)")
	exampleotel.Tree{
		Attrs:    []attribute.Key{"http.route", "http.response.status_code", strangler.AttrTarget, strangler.AttrRule},
		MaxLines: 40,
	}.Print(out, "   ", exampleotel.OnePerShape(p.p.Spans.Ended(), nil))
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
