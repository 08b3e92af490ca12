//go:build !otlp

package exampleotel

import (
	"context"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpBuilt says whether this build has the OTLP exporters: not without
// the otlp tag, since they bring gRPC and protobuf (go.opentelemetry.io's
// OTLP/HTTP exporters and their generated collector packages import
// google.golang.org/grpc), some 100 packages that more than double the
// first build of an example.
const otlpBuilt = false

func newOTLPSpanExporter(context.Context) (sdktrace.SpanExporter, error) { return nil, errNoOTLP }

func newOTLPMetricExporter(context.Context) (sdkmetric.Exporter, error) { return nil, errNoOTLP }
