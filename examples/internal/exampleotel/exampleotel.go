// Package exampleotel sets up the OpenTelemetry SDK for the example
// programs and prints what they recorded in a form a reader can take in
// at a glance.
//
// By default an example keeps its telemetry in memory: it prints the trace
// trees of the requests it finds interesting ([Tree]) and a few lines of
// metric summary ([Providers.PrintMetrics]) as part of its story. The full
// telemetry goes
//
//   - to an OpenTelemetry collector over OTLP/HTTP when
//     OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
//     OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) is set. The OTLP exporters are
//     only in a build with the otlp tag: they bring gRPC and protobuf, 152
//     more packages to compile (420 instead of 268 for
//     examples/circuitbreaker) and 16 MB more modules to download for the
//     first build of every example. A go run without the tag runs itself
//     again with it (see [JSONOut]);
//   - to stderr as JSON (the stdouttrace and stdoutmetric exporters), once,
//     at the end, with the flag -telemetry=json.
package exampleotel

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// telemetryFlag is the -telemetry flag of every example.
var telemetryFlag = flag.String("telemetry", "summary",
	"what to do with the spans and metrics besides the trees and summary printed: "+
		`"summary" (nothing more) or "json" (all of them as JSON on stderr at the end); `+
		"set OTEL_EXPORTER_OTLP_ENDPOINT in a build with -tags otlp to send them to a collector")

// JSONOut parses the command line (flag.Parse) and returns where an
// example's main writes its full telemetry as JSON: os.Stderr with
// -telemetry=json, nil otherwise. It exits with status 2 on a bad flag
// value, as flag.Parse does on a bad flag.
//
// When an OTLP endpoint is set (see [New]) in a build without the otlp
// tag, JSONOut runs the example again with go run -tags otlp, and exits
// with that run's status: setting OTEL_EXPORTER_OTLP_ENDPOINT is all it
// takes, at the price of the longer build, once. It is called from main
// only, so that tests never do that.
func JSONOut() io.Writer {
	flag.Parse()
	rerunWithOTLP()
	switch *telemetryFlag {
	case "summary":
		return nil
	case "json":
		return os.Stderr
	}
	fmt.Fprintf(os.Stderr, "invalid value %q for flag -telemetry: want summary or json\n", *telemetryFlag)
	flag.Usage()
	os.Exit(2)
	return nil
}

// RerunWithOTLP runs the program again with go run -tags otlp and exits
// with that run's status when an OTLP endpoint is set in a build without
// the otlp tag, as [JSONOut] does, for a main that does not use JSONOut's
// flag (the prodotel package's programs); otherwise it returns. It is to
// be called from main only, so that tests never run again.
func RerunWithOTLP() { rerunWithOTLP() }

// Providers are the OpenTelemetry SDK providers of one run. They are passed
// to the code that needs them rather than installed as the globals, so that
// runs (and tests) do not share state.
type Providers struct {
	Tracer *sdktrace.TracerProvider
	Meter  *sdkmetric.MeterProvider

	// Spans holds the spans the tracer provider ended, for the trees the
	// program prints.
	Spans *Spans

	// reader reads the meter provider's metrics for PrintMetrics.
	reader *sdkmetric.ManualReader

	// spansW and metricsW are where the stdout exporters write, for the
	// headings written before they flush; nil when there is no JSON.
	spansW, metricsW io.Writer
	done             bool
}

// New builds a tracer provider and a meter provider for serviceName (which
// OTEL_SERVICE_NAME overrides), with readers as extra metric readers. The
// ended spans are kept in memory (p.Spans), and the metrics can be read at
// any time, for the trees and summaries the program prints.
//
// Besides, when w is not nil, every span and metric is written to w as
// JSON, one object per line, once, when the providers shut down, so that
// it does not interleave with the program's own output (main passes
// [JSONOut], tests a buffer). And a signal goes over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT (or the signal's own
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)
// is set; the exporters read that and the other standard
// OTEL_EXPORTER_OTLP_* variables themselves. In a build without the otlp
// tag, New then fails with an error that says how to build with it.
func New(ctx context.Context, serviceName string, w io.Writer, readers ...sdkmetric.Reader) (*Providers, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("building the resource: %w", err)
	}
	p := &Providers{Spans: NewSpans(), reader: sdkmetric.NewManualReader()}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSpanProcessor(p.Spans)}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(p.reader)}
	for _, r := range readers {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}

	var exporters []interface{ Shutdown(context.Context) error }
	fail := func(e error) (*Providers, error) {
		for _, x := range exporters {
			_ = x.Shutdown(ctx)
		}
		return nil, e
	}
	if otlpConfigured("TRACES") || otlpConfigured("METRICS") {
		if !otlpBuilt {
			return nil, errNoOTLP
		}
	}
	if otlpConfigured("TRACES") {
		spans, err := newOTLPSpanExporter(ctx)
		if err != nil {
			return fail(fmt.Errorf("creating the OTLP span exporter: %w", err))
		}
		exporters = append(exporters, spans)
		topts = append(topts, sdktrace.WithBatcher(spans))
	}
	if otlpConfigured("METRICS") {
		// Exported every OTEL_METRIC_EXPORT_INTERVAL (default 60s) and
		// once more at shutdown.
		metrics, err := newOTLPMetricExporter(ctx)
		if err != nil {
			return fail(fmt.Errorf("creating the OTLP metric exporter: %w", err))
		}
		exporters = append(exporters, metrics)
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics)))
	}
	if w != nil {
		p.spansW, p.metricsW = w, w
		spans, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return fail(fmt.Errorf("creating the span exporter: %w", err))
		}
		exporters = append(exporters, spans)
		// Hold the spans until shutdown, so that they come after the
		// program's own output, in one batch.
		topts = append(topts, sdktrace.WithBatcher(spans, sdktrace.WithBatchTimeout(time.Hour),
			sdktrace.WithMaxQueueSize(4096), sdktrace.WithMaxExportBatchSize(4096)))
		metrics, err := stdoutmetric.New(stdoutmetric.WithWriter(w))
		if err != nil {
			return fail(fmt.Errorf("creating the metric exporter: %w", err))
		}
		// Collect once, when the meter provider shuts down.
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics, sdkmetric.WithInterval(time.Hour))))
	}
	p.Tracer = sdktrace.NewTracerProvider(topts...)
	p.Meter = sdkmetric.NewMeterProvider(mopts...)
	return p, nil
}

// errNoOTLP is New's error when an OTLP endpoint is set in a build without
// the OTLP exporters.
var errNoOTLP = errors.New("OTEL_EXPORTER_OTLP_ENDPOINT (or a per-signal OTEL_EXPORTER_OTLP_*_ENDPOINT) is set, " +
	"but this build has no OTLP exporter: build with the otlp tag (go run -tags otlp ./examples/...) to send the telemetry there, " +
	"or unset the variable (the exporters bring gRPC and protobuf, left out of the default build to keep the first one short)")

// otlpConfigured reports whether an OTLP endpoint is set for signal
// ("TRACES" or "METRICS").
func otlpConfigured(signal string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// Shutdown flushes the spans and metrics not exported yet and stops the
// providers' goroutines. Calls after the first do nothing.
func (p *Providers) Shutdown(ctx context.Context) error {
	if p.done {
		return nil
	}
	p.done = true
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
