package telemetry

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestSpanGate(t *testing.T) {
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	recording, span := sdk.Tracer("t").Start(context.Background(), "parent")
	defer span.End()

	nop := noop.NewTracerProvider()
	cases := []struct {
		name string
		gate SpanGate
		ctx  context.Context
		want bool
	}{
		{"no-op tracer, no parent", NewSpanGate(nop, Tracer(nop, "s")), context.Background(), true},
		{"no-op tracer, recording parent", NewSpanGate(nop, Tracer(nop, "s")), recording, false},
		{"SDK tracer", NewSpanGate(sdk, Tracer(sdk, "s")), context.Background(), false},
	}
	for _, c := range cases {
		if got := c.gate.Skip(c.ctx); got != c.want {
			t.Errorf("%s: Skip = %v, want %v", c.name, got, c.want)
		}
	}
}
