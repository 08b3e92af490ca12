// Package prodotel sets up OpenTelemetry for a long-running example program
// the standard way: everything is chosen by the OTEL_* environment
// variables, as go.opentelemetry.io/contrib/exporters/autoexport does, so
// that the program runs unchanged under a collector, Jaeger or nothing.
//
//   - OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER: otlp, console or none.
//     Unset, a signal goes over OTLP when an OTLP endpoint is set for it
//     (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
//     OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) and nowhere otherwise: with no
//     OTEL_* variable set nothing is exported and no connection is tried.
//   - OTEL_EXPORTER_OTLP_PROTOCOL (and the per-signal variants): only
//     http/protobuf, the default, is built; the OTLP exporters themselves
//     read the other OTEL_EXPORTER_OTLP_* variables (headers, timeout...).
//     They are in a build with the otlp tag only, as in the exampleotel
//     package (they bring gRPC and protobuf); a main that calls
//     exampleotel.RerunWithOTLP before New runs itself again with the tag
//     when an OTLP endpoint is set, and New fails with an error saying so
//     when OTLP is asked for in a build without it.
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (always_on,
//     always_off, traceidratio, parentbased_*): read by the SDK's tracer
//     provider itself, which is given no sampler.
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: on the resource, over
//     [Config.ServiceName].
//
// The metrics are always readable in the Prometheus text format through
// [Telemetry.Metrics], for a /metrics endpoint, via
// go.opentelemetry.io/otel/exporters/prometheus on a registry of its own.
//
// # Prometheus names
//
// The Prometheus exporter turns an OpenTelemetry instrument name into a
// Prometheus one by replacing each character that Prometheus does not
// allow ('.', '-', '/') by '_', then appending the unit, translated to
// Prometheus' words, unless the name already ends with it ("s" becomes
// _seconds, "ms" _milliseconds, "By" _bytes, "1" and curly-brace
// annotations such as "{call}" nothing) and, for a counter (a monotonic
// sum), _total. A histogram gives the usual _bucket, _sum and _count
// series under that name. Attributes become labels the same way ('.' to
// '_'), and each series carries otel_scope_name and otel_scope_version.
// For instance, circuitbreaker's counter circuitbreaker.calls with unit
// {call} is circuitbreaker_calls_total, its gauge circuitbreaker.state
// is circuitbreaker_state, saga's counter saga.executions with unit
// {saga} is saga_executions_total, its up-down counter saga.active (a
// non-monotonic sum, so a gauge) is saga_active, and its histogram
// saga.duration with unit s is saga_duration_seconds_bucket, _sum and
// _count.
package prodotel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// Config says what New builds besides what the environment asks for.
type Config struct {
	// ServiceName is the service.name of the resource, unless
	// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) is
	// set.
	ServiceName string
	// SpanProcessors are added to the tracer provider, e.g. an in-memory
	// recorder the program prints its trace trees from.
	SpanProcessors []sdktrace.SpanProcessor
	// Readers are added to the meter provider as extra metric readers.
	Readers []sdkmetric.Reader
	// LogOutput is where Logger writes; nil means os.Stderr.
	LogOutput io.Writer
	// ConsoleOutput is where the console exporters write
	// (OTEL_TRACES_EXPORTER=console, OTEL_METRICS_EXPORTER=console); nil
	// means os.Stdout, as autoexport does.
	ConsoleOutput io.Writer
}

// Telemetry is the OpenTelemetry SDK of one program. The providers are
// not installed as the globals (the caller may do so); the W3C trace
// context and baggage propagator is.
type Telemetry struct {
	TracerProvider *sdktrace.TracerProvider
	MeterProvider  *sdkmetric.MeterProvider
	// Metrics serves MeterProvider's metrics in the Prometheus text
	// exposition format, for /metrics.
	Metrics http.Handler
	// Logger writes text records that carry trace_id and span_id when
	// the context passed to it holds a valid span context.
	Logger *slog.Logger

	done bool
}

// New builds the providers, the /metrics handler and the logger from cfg
// and the OTEL_* environment (see the package documentation), and sets the
// global propagator to W3C trace context and baggage. It fails on an
// exporter or sampler name it does not know, and on an OTLP exporter asked
// for in a build without the otlp tag.
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, applied over the above
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("building the resource: %w", err)
	}
	console := cfg.ConsoleOutput
	if console == nil {
		console = os.Stdout
	}

	var started []interface{ Shutdown(context.Context) error }
	fail := func(e error) (*Telemetry, error) {
		for _, s := range started {
			_ = s.Shutdown(ctx)
		}
		return nil, e
	}

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, sp := range cfg.SpanProcessors {
		topts = append(topts, sdktrace.WithSpanProcessor(sp))
	}
	switch kind, err := exporterKind("TRACES"); {
	case err != nil:
		return fail(err)
	case kind == "otlp":
		exp, err := newOTLPSpanExporter(ctx)
		if err != nil {
			return fail(fmt.Errorf("creating the OTLP span exporter: %w", err))
		}
		started = append(started, exp)
		topts = append(topts, sdktrace.WithBatcher(exp))
	case kind == "console":
		exp, err := stdouttrace.New(stdouttrace.WithWriter(console))
		if err != nil {
			return fail(fmt.Errorf("creating the console span exporter: %w", err))
		}
		started = append(started, exp)
		topts = append(topts, sdktrace.WithBatcher(exp))
	}

	// A registry of its own: the global one would mix in whatever else
	// the process registers, and two Telemetry values (tests) would clash.
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return fail(fmt.Errorf("creating the Prometheus exporter: %w", err))
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	for _, r := range cfg.Readers {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	switch kind, err := exporterKind("METRICS"); {
	case err != nil:
		return fail(err)
	case kind == "otlp":
		exp, err := newOTLPMetricExporter(ctx)
		if err != nil {
			return fail(fmt.Errorf("creating the OTLP metric exporter: %w", err))
		}
		// Every OTEL_METRIC_EXPORT_INTERVAL (default 60s), and at shutdown.
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	case kind == "console":
		exp, err := stdoutmetric.New(stdoutmetric.WithWriter(console))
		if err != nil {
			return fail(fmt.Errorf("creating the console metric exporter: %w", err))
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}

	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))

	logOut := cfg.LogOutput
	if logOut == nil {
		logOut = os.Stderr
	}
	return &Telemetry{
		TracerProvider: sdktrace.NewTracerProvider(topts...), // no sampler: the SDK reads OTEL_TRACES_SAMPLER
		MeterProvider:  sdkmetric.NewMeterProvider(mopts...),
		Metrics:        promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Logger:         slog.New(NewTraceHandler(slog.NewTextHandler(logOut, nil))),
	}, nil
}

// exporterKind returns the exporter OTEL_<signal>_EXPORTER names ("otlp",
// "console" or "none"); unset, "otlp" when an OTLP endpoint is set for the
// signal and "none" otherwise, so that a program with no OTEL_* variable
// tries no connection.
func exporterKind(signal string) (string, error) {
	v := strings.TrimSpace(os.Getenv("OTEL_" + signal + "_EXPORTER"))
	if v == "" {
		if otlpConfigured(signal) {
			return "otlp", nil
		}
		return "none", nil
	}
	switch v {
	case "otlp", "console", "none":
		return v, nil
	}
	return "", fmt.Errorf("OTEL_%s_EXPORTER=%q: want otlp, console or none", signal, v)
}

// otlpConfigured reports whether an OTLP endpoint is set for signal
// ("TRACES" or "METRICS").
func otlpConfigured(signal string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// Shutdown flushes the spans and metrics not exported yet and stops the
// providers' goroutines. Calls after the first do nothing.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	return errors.Join(t.TracerProvider.Shutdown(ctx), t.MeterProvider.Shutdown(ctx))
}
