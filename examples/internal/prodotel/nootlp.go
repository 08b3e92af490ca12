//go:build !otlp

package prodotel

import (
	"context"
	"errors"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// errNoOTLP is New's error when OTLP is asked for in a build without the
// OTLP exporters.
var errNoOTLP = errors.New("OTLP export is asked for (OTEL_EXPORTER_OTLP_*ENDPOINT or OTEL_*_EXPORTER=otlp), " +
	"but this build has no OTLP exporter: build with -tags otlp (the exporters bring gRPC and protobuf, " +
	"left out of the default build to keep the first one short); a main that calls exampleotel.RerunWithOTLP first " +
	"runs itself again that way when OTEL_EXPORTER_OTLP_ENDPOINT is set")

func newOTLPSpanExporter(context.Context) (sdktrace.SpanExporter, error) { return nil, errNoOTLP }

func newOTLPMetricExporter(context.Context) (sdkmetric.Exporter, error) { return nil, errNoOTLP }
