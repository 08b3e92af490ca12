package circuitbreaker_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

func attrs(name string, kv ...attribute.KeyValue) []attribute.KeyValue {
	return append([]attribute.KeyValue{circuitbreaker.AttrName.String(name)}, kv...)
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := telemetrytest.New(t)
		b := circuitbreaker.New("payments", circuitbreaker.WithMeterProvider(tel.MeterProvider),
			circuitbreaker.WithConsecutiveFailures(2), circuitbreaker.WithOpenDuration(time.Second),
			circuitbreaker.WithSlowCalls(time.Second, 100), circuitbreaker.WithMinimumCalls(1000))

		outcome := func(o string) []attribute.KeyValue {
			return attrs("payments", circuitbreaker.AttrOutcome.String(o))
		}
		state := func(s string) []attribute.KeyValue { return attrs("payments", circuitbreaker.AttrState.String(s)) }

		assert.Equal(t, int64(1), tel.Int64(t, "circuitbreaker.state", state("closed")...))
		assert.Equal(t, int64(0), tel.Int64(t, "circuitbreaker.state", state("open")...))

		run(t, b, "ssi")
		require.NoError(t, b.Execute(context.Background(), func(context.Context) error { time.Sleep(2 * time.Second); return nil }))
		run(t, b, "ff")
		_ = b.Execute(context.Background(), succeed) // rejected

		assert.Equal(t, int64(2), tel.Int64(t, "circuitbreaker.calls", outcome("success")...))
		assert.Equal(t, int64(1), tel.Int64(t, "circuitbreaker.calls", outcome("slow")...))
		assert.Equal(t, int64(2), tel.Int64(t, "circuitbreaker.calls", outcome("failure")...))
		assert.Equal(t, int64(1), tel.Int64(t, "circuitbreaker.calls", outcome("ignored")...))
		assert.Equal(t, int64(1), tel.Int64(t, "circuitbreaker.calls", outcome("rejected")...))
		assert.Equal(t, int64(1), tel.Int64(t, "circuitbreaker.state.transitions",
			attrs("payments", circuitbreaker.AttrPreviousState.String("closed"), circuitbreaker.AttrState.String("open"))...))
		assert.Equal(t, int64(0), tel.Int64(t, "circuitbreaker.state", state("closed")...))
		assert.Equal(t, int64(1), tel.Int64(t, "circuitbreaker.state", state("open")...))
		assert.Equal(t, uint64(2), tel.HistogramCount(t, "circuitbreaker.call.duration", outcome("success")...))
		assert.Equal(t, uint64(1), tel.HistogramCount(t, "circuitbreaker.call.duration", outcome("slow")...))

		m := tel.Metric(t, "circuitbreaker.call.duration")
		assert.Equal(t, "s", m.Unit)
		h := m.Data.(metricdata.Histogram[float64])
		for _, dp := range h.DataPoints {
			if dp.Attributes.HasValue(circuitbreaker.AttrOutcome) {
				if v, _ := dp.Attributes.Value(circuitbreaker.AttrOutcome); v.AsString() == "slow" {
					assert.Equal(t, 2.0, dp.Sum, "durations are in seconds")
				}
			}
		}
		assert.Equal(t, "{call}", tel.Metric(t, "circuitbreaker.calls").Unit)
		calls := tel.Metric(t, "circuitbreaker.calls").Data.(metricdata.Sum[int64])
		assert.True(t, calls.IsMonotonic)

		time.Sleep(time.Second)
		synctest.Wait()
		assert.Equal(t, circuitbreaker.StateHalfOpen, b.State())
		assert.Equal(t, int64(1), tel.Int64(t, "circuitbreaker.state", state("half-open")...))
	})
}

func TestNoDurationWithoutTiming(t *testing.T) {
	tel := telemetrytest.New(t)
	b := circuitbreaker.New("x", circuitbreaker.WithMeterProvider(tel.MeterProvider))
	run(t, b, "sf")
	assert.False(t, tel.HasMetric(t, "circuitbreaker.call.duration"), "calls are not timed unless asked")

	b = circuitbreaker.New("y", circuitbreaker.WithMeterProvider(tel.MeterProvider), circuitbreaker.WithDurationHistogram())
	run(t, b, "sf")
	assert.Equal(t, uint64(1), tel.HistogramCount(t, "circuitbreaker.call.duration", attrs("y", circuitbreaker.AttrOutcome.String("failure"))...))
}

func TestSpanEvents(t *testing.T) {
	tel := telemetrytest.New(t)
	b := circuitbreaker.New("payments", circuitbreaker.WithMeterProvider(tel.MeterProvider), circuitbreaker.WithConsecutiveFailures(1))
	tracer := tel.TracerProvider.Tracer("test")

	ctx, span := tracer.Start(context.Background(), "checkout")
	_ = b.Execute(ctx, failWith(errBoom))
	_ = b.Execute(ctx, succeed)
	span.End()

	ended := tel.Spans.Ended()
	require.Len(t, ended, 1, "the breaker starts no span of its own")
	events := ended[0].Events()
	require.Len(t, events, 2)
	assert.Equal(t, "circuitbreaker.state_change", events[0].Name)
	assert.ElementsMatch(t, attrs("payments", circuitbreaker.AttrPreviousState.String("closed"), circuitbreaker.AttrState.String("open")), events[0].Attributes)
	assert.Equal(t, "circuitbreaker.rejected", events[1].Name)
	assert.ElementsMatch(t, attrs("payments", circuitbreaker.AttrState.String("open"), attribute.String("error.type", "circuitbreaker.open")), events[1].Attributes)
}

func TestNoEventsOnUnsampledSpan(t *testing.T) {
	tel := telemetrytest.New(t)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithSpanProcessor(tel.Spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	b := circuitbreaker.New("x", circuitbreaker.WithConsecutiveFailures(1))
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	_ = b.Execute(ctx, failWith(errBoom))
	_ = b.Execute(ctx, succeed)
	span.End()
	assert.Empty(t, tel.Spans.Ended())
}

// TestZeroAllocations protects the hot paths' promise: with the default
// (no-op) providers and with the SDK meter provider, admission, recording
// and rejection allocate nothing.
func TestZeroAllocations(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	for name, opts := range map[string][]circuitbreaker.Option{
		"noop": nil,
		"sdk":  {circuitbreaker.WithMeterProvider(tel.MeterProvider)},
	} {
		closed := circuitbreaker.New("closed", opts...)
		if n := testing.AllocsPerRun(1000, func() { _ = closed.Execute(ctx, succeed) }); n != 0 {
			t.Errorf("%s: Execute() while closed allocates %v times; want 0", name, n)
		}
		failing := circuitbreaker.New("failing", append(opts, circuitbreaker.WithFailureRate(100), circuitbreaker.WithCountWindow(10))...)
		f := failWith(errBoom)
		if n := testing.AllocsPerRun(1000, func() { _ = failing.Execute(ctx, f); _ = failing.Execute(ctx, succeed) }); n != 0 {
			t.Errorf("%s: Execute() recording failures while closed allocates %v times; want 0", name, n)
		}
		open := circuitbreaker.New("open", append(opts, circuitbreaker.WithConsecutiveFailures(1))...)
		_ = open.Execute(ctx, failWith(errBoom))
		if n := testing.AllocsPerRun(1000, func() { _ = open.Execute(ctx, succeed) }); n != 0 {
			t.Errorf("%s: Execute() while open allocates %v times; want 0", name, n)
		}
	}
}
