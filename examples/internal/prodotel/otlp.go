//go:build otlp

package prodotel

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// newOTLPSpanExporter returns the OTLP/HTTP span exporter, which reads the
// OTEL_EXPORTER_OTLP_* variables itself.
func newOTLPSpanExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if err := otlpProtocol("TRACES"); err != nil {
		return nil, err
	}
	return otlptracehttp.New(ctx)
}

// newOTLPMetricExporter returns the OTLP/HTTP metric exporter, which reads
// the OTEL_EXPORTER_OTLP_* variables itself.
func newOTLPMetricExporter(ctx context.Context) (sdkmetric.Exporter, error) {
	if err := otlpProtocol("METRICS"); err != nil {
		return nil, err
	}
	return otlpmetrichttp.New(ctx)
}

// otlpProtocol checks the OTLP protocol asked for signal: only
// http/protobuf is built.
func otlpProtocol(signal string) error {
	p := os.Getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL")
	if p == "" {
		p = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if p == "" || p == "http/protobuf" {
		return nil
	}
	return fmt.Errorf("OTLP protocol %q for %s: only http/protobuf is supported (the collector's port 4318)",
		p, strings.ToLower(signal))
}
