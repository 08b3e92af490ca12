// Package telemetrytest provides in-memory OpenTelemetry providers for the
// module's tests: a span recorder and a manual metric reader, passed to the
// code under test through its WithTracerProvider and WithMeterProvider
// options so that tests never swap the global providers and can run in
// parallel.
package telemetrytest

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Providers holds an SDK tracer provider that records every span in memory
// and an SDK meter provider read on demand.
type Providers struct {
	Spans          *tracetest.SpanRecorder
	Reader         *sdkmetric.ManualReader
	TracerProvider *sdktrace.TracerProvider
	MeterProvider  *sdkmetric.MeterProvider
}

// New returns providers that are shut down when the test ends.
func New(t testing.TB) *Providers {
	t.Helper()
	p := &Providers{
		Spans:  tracetest.NewSpanRecorder(),
		Reader: sdkmetric.NewManualReader(),
	}
	p.TracerProvider = sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(p.Spans),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	)
	p.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(p.Reader))
	t.Cleanup(func() {
		_ = p.TracerProvider.Shutdown(context.Background())
		_ = p.MeterProvider.Shutdown(context.Background())
	})
	return p
}

// Collect reads every metric recorded so far.
func (p *Providers) Collect(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := p.Reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	return rm
}

// Metric returns the metric called name, failing the test if it was not
// recorded.
func (p *Providers) Metric(t testing.TB, name string) metricdata.Metrics {
	t.Helper()
	m, ok := p.find(t, name)
	if !ok {
		t.Fatalf("metric %q was not recorded", name)
	}
	return m
}

// HasMetric reports whether the metric called name was recorded.
func (p *Providers) HasMetric(t testing.TB, name string) bool {
	t.Helper()
	_, ok := p.find(t, name)
	return ok
}

func (p *Providers) find(t testing.TB, name string) (metricdata.Metrics, bool) {
	rm := p.Collect(t)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// Int64 returns the value of the int64 sum or gauge data point of the metric
// called name whose attributes are exactly attrs, and 0 when the metric has
// no such point.
func (p *Providers) Int64(t testing.TB, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	want := attribute.NewSet(attrs...)
	var points []metricdata.DataPoint[int64]
	switch d := p.Metric(t, name).Data.(type) {
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	default:
		t.Fatalf("metric %q is a %T, not an int64 sum or gauge", name, d)
	}
	for _, dp := range points {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

// HistogramCount returns how many measurements the float64 histogram called
// name holds in the data point whose attributes are exactly attrs.
func (p *Providers) HistogramCount(t testing.TB, name string, attrs ...attribute.KeyValue) uint64 {
	t.Helper()
	want := attribute.NewSet(attrs...)
	h, ok := p.Metric(t, name).Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("metric %q is not a float64 histogram", name)
	}
	for _, dp := range h.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Count
		}
	}
	return 0
}

// Describe returns a one-line description of every data point of the metric
// called name, for failure messages.
func (p *Providers) Describe(t testing.TB, name string) string {
	t.Helper()
	m, ok := p.find(t, name)
	if !ok {
		return "(not recorded)"
	}
	return fmt.Sprintf("%+v", m.Data)
}

// SpansNamed returns the ended spans called name, in the order they ended.
func (p *Providers) SpansNamed(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range p.Spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// Attrs returns the attributes of span s by key.
func Attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}
