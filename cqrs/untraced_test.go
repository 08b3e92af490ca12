package cqrs_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestDispatchUntraced: with a tracer that can only make non-recording
// spans (a no-op provider), Dispatch starts none, so that it allocates
// nothing of its own, and the handler's ctx still carries the caller's
// span context.
func TestDispatchUntraced(t *testing.T) {
	bus := cqrs.NewBus(cqrs.WithTracerProvider(noop.NewTracerProvider()))
	var got trace.SpanContext
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, _ Deposit) error {
		got = trace.SpanContextFromContext(ctx)
		return nil
	}))
	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), caller)
	require.NoError(t, bus.Dispatch(ctx, Deposit{"a", 1}))
	assert.Equal(t, caller, got, "the handler's span context")

	var cmd any = Deposit{"a", 1} // boxed once, outside the measure
	allocs := testing.AllocsPerRun(100, func() { _ = bus.Dispatch(ctx, cmd) })
	assert.Zero(t, allocs, "allocations per Dispatch with a no-op tracer")
}

// TestDispatchTracedOnceGlobalSet: a bus built on the global provider
// before any was set starts no span then, and starts them once
// otel.SetTracerProvider installs one. It runs in a process of its own,
// since the global provider cannot be unset.
func TestDispatchTracedOnceGlobalSet(t *testing.T) {
	if !testenv.InOwnProcess(t) {
		return
	}
	ctx := context.Background()
	bus := cqrs.NewBus() // the global provider, not set yet
	require.NoError(t, cqrs.HandleCommand(bus, func(context.Context, Deposit) error { return nil }))
	require.NoError(t, bus.Dispatch(ctx, Deposit{"a", 1}))
	var cmd any = Deposit{"a", 1}
	allocs := testing.AllocsPerRun(100, func() { _ = bus.Dispatch(ctx, cmd) })
	assert.Zero(t, allocs, "allocations per Dispatch before a global provider is set")

	tel := telemetrytest.New(t)
	otel.SetTracerProvider(tel.TracerProvider)
	require.NoError(t, bus.Dispatch(ctx, Deposit{"b", 2}))
	spans := tel.SpansNamed("cqrs.command")
	require.Len(t, spans, 1, "the Dispatch after the global provider was set")
	assert.Contains(t, spans[0].Attributes(), cqrs.AttrCommandType.String("cqrs_test.Deposit"))
}

// TestDispatchUntracedUnderRecordingSpan: under a recording span of the
// caller's, a bus with a no-op tracer starts its (non-recording) span as
// before, so that what Deduplication records on the span of its ctx does
// not land on the caller's.
func TestDispatchUntracedUnderRecordingSpan(t *testing.T) {
	tel := telemetrytest.New(t)
	ctx, caller := tel.TracerProvider.Tracer("test").Start(context.Background(), "caller")
	bus := cqrs.NewBus(cqrs.WithTracerProvider(noop.NewTracerProvider()))
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, _ Deposit) error {
		assert.False(t, trace.SpanFromContext(ctx).IsRecording(), "the handler's span")
		return nil
	}))
	require.NoError(t, bus.Dispatch(ctx, Deposit{"a", 1}))
	caller.End()
}
