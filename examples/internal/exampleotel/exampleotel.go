// Package exampleotel sets up the OpenTelemetry SDK for the example
// programs: spans and metrics written as JSON to a writer once at the end,
// or sent over OTLP/HTTP when the standard OTEL_EXPORTER_OTLP_* variables
// say so.
package exampleotel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// Providers are the OpenTelemetry SDK providers of one run. They are passed
// to the code that needs them rather than installed as the globals, so that
// runs (and tests) do not share state.
type Providers struct {
	Tracer *sdktrace.TracerProvider
	Meter  *sdkmetric.MeterProvider

	// spansW and metricsW are where the stdout exporters write, for the
	// headings written before they flush; nil for a signal sent over OTLP.
	spansW, metricsW io.Writer
}

// New builds a tracer provider and a meter provider for serviceName (which
// OTEL_SERVICE_NAME overrides), with readers as extra metric readers.
//
// A signal goes over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or the
// signal's own OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) is set; the exporters read that and
// the other standard OTEL_EXPORTER_OTLP_* variables themselves. Otherwise it
// is written to w as JSON, one object per line, once, when the providers
// shut down, so that it does not interleave with the program's own output.
func New(ctx context.Context, serviceName string, w io.Writer, readers ...sdkmetric.Reader) (*Providers, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("building the resource: %w", err)
	}
	p := &Providers{}

	var spans sdktrace.SpanExporter
	var batch []sdktrace.BatchSpanProcessorOption
	if otlpConfigured("TRACES") {
		spans, err = otlptracehttp.New(ctx)
	} else {
		p.spansW = w
		spans, err = stdouttrace.New(stdouttrace.WithWriter(w))
		// Hold the spans until shutdown, so that they come after the
		// program's own output, in one batch.
		batch = append(batch, sdktrace.WithBatchTimeout(time.Hour),
			sdktrace.WithMaxQueueSize(4096), sdktrace.WithMaxExportBatchSize(4096))
	}
	if err != nil {
		return nil, fmt.Errorf("creating the span exporter: %w", err)
	}

	var metrics sdkmetric.Exporter
	var periodic []sdkmetric.PeriodicReaderOption
	if otlpConfigured("METRICS") {
		// Exported every OTEL_METRIC_EXPORT_INTERVAL (default 60s) and
		// once more at shutdown.
		metrics, err = otlpmetrichttp.New(ctx)
	} else {
		p.metricsW = w
		metrics, err = stdoutmetric.New(stdoutmetric.WithWriter(w))
		// Collect once, when the meter provider shuts down.
		periodic = append(periodic, sdkmetric.WithInterval(time.Hour))
	}
	if err != nil {
		_ = spans.Shutdown(ctx)
		return nil, fmt.Errorf("creating the metric exporter: %w", err)
	}

	p.Tracer = sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithBatcher(spans, batch...),
	)
	opts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics, periodic...)),
	}
	for _, r := range readers {
		opts = append(opts, sdkmetric.WithReader(r))
	}
	p.Meter = sdkmetric.NewMeterProvider(opts...)
	return p, nil
}

// otlpConfigured reports whether an OTLP endpoint is set for signal
// ("TRACES" or "METRICS").
func otlpConfigured(signal string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// Shutdown flushes the spans and metrics not exported yet and stops the
// providers' goroutines.
func (p *Providers) Shutdown(ctx context.Context) error {
	if p.spansW != nil {
		fmt.Fprintln(p.spansW, "\n# spans (stdouttrace, one JSON object per span)")
	}
	errT := p.Tracer.Shutdown(ctx)
	if p.metricsW != nil {
		fmt.Fprintln(p.metricsW, "\n# metrics (stdoutmetric)")
	}
	errM := p.Meter.Shutdown(ctx)
	return errors.Join(errT, errM)
}
