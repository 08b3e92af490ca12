package hexagonal_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// total is an order total: a hot domain call, a few nanoseconds of pure
// computation that the benchmarks wrap.
//
//go:noinline
func total(_ context.Context, lines []int) (int, error) {
	sum := 0
	for _, l := range lines {
		sum += l
	}
	return sum, nil
}

var lines = []int{250, 1200, 99}

// BenchmarkInstrument compares a hot domain call, bare, with the same
// call wrapped by Instrument: with the default (global, unset) providers,
// with explicit no-op ones, with SDK providers outside a trace, and with
// SDK providers inside a sampled trace (a span per call). The ratio of
// the noop rows to the bare row is the wrapper's cost.
func BenchmarkInstrument(b *testing.B) {
	ctx := context.Background()
	b.Run("bare", func(b *testing.B) {
		f := total
		b.ReportAllocs()
		for b.Loop() {
			_, _ = f(ctx, lines)
		}
	})
	b.Run("global-noop", func(b *testing.B) {
		f := hexagonal.Instrument(hexagonal.Domain, "Orders", "Total", total)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = f(ctx, lines)
		}
	})
	b.Run("noop", func(b *testing.B) {
		f := hexagonal.Instrument(hexagonal.Domain, "Orders", "Total", total, hexagonal.WithTracerProvider(noop.NewTracerProvider()))
		b.ReportAllocs()
		for b.Loop() {
			_, _ = f(ctx, lines)
		}
	})
	b.Run("noop-parallel", func(b *testing.B) {
		f := hexagonal.Instrument(hexagonal.Domain, "Orders", "Total", total)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = f(ctx, lines)
			}
		})
	})
	b.Run("sdk-untraced", func(b *testing.B) {
		p := telemetrytest.New(b)
		f := hexagonal.Instrument(hexagonal.Domain, "Orders", "Total", total,
			hexagonal.WithTracerProvider(p.TracerProvider), hexagonal.WithMeterProvider(p.MeterProvider))
		b.ReportAllocs()
		for b.Loop() {
			_, _ = f(ctx, lines)
		}
	})
	b.Run("sdk-untraced-no-histogram", func(b *testing.B) {
		// The duration histogram dropped by a view: the SDK reports it
		// disabled, and calls are neither timed nor recorded.
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()),
			sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "hexagonal.call.duration"},
				sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}})))
		defer func() { _ = mp.Shutdown(context.Background()) }()
		f := hexagonal.Instrument(hexagonal.Domain, "Orders", "Total", total, hexagonal.WithMeterProvider(mp))
		b.ReportAllocs()
		for b.Loop() {
			_, _ = f(ctx, lines)
		}
	})
	b.Run("sdk-traced", func(b *testing.B) {
		// Spans are sampled and ended, but go to no processor: the
		// cost is the wrapper's and the SDK's, not an exporter's.
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		p := telemetrytest.New(b)
		f := hexagonal.Instrument(hexagonal.Domain, "Orders", "Total", total,
			hexagonal.WithTracerProvider(tp), hexagonal.WithMeterProvider(p.MeterProvider))
		tctx, span := tp.Tracer("bench").Start(ctx, "request")
		defer span.End()
		b.ReportAllocs()
		for b.Loop() {
			_, _ = f(tctx, lines)
		}
	})
}

// BenchmarkHealthCached measures a readiness probe answered from the
// cache, the common case under frequent probes.
func BenchmarkHealthCached(b *testing.B) {
	h, err := hexagonal.NewHealth(hexagonal.WithReadinessCheck("db", ok), hexagonal.WithReadinessCheck("cache", ok),
		hexagonal.WithCheckInterval(1<<62))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	h.Ready(ctx)
	b.ReportAllocs()
	for b.Loop() {
		h.Ready(ctx)
	}
}

// BenchmarkInstrumentRatio times a million bare calls and a million
// wrapped ones (with the default no-op providers) in each iteration, and
// reports the wrapped call's time as a multiple of the bare one's, and the
// nanoseconds it adds per call.
func BenchmarkInstrumentRatio(b *testing.B) {
	const calls = 1 << 20
	ctx := context.Background()
	f := hexagonal.Instrument(hexagonal.Domain, "Orders", "Total", total)
	bareF := total
	var bare, wrapped time.Duration
	for b.Loop() {
		begin := time.Now()
		for range calls {
			_, _ = bareF(ctx, lines)
		}
		bare += time.Since(begin)
		begin = time.Now()
		for range calls {
			_, _ = f(ctx, lines)
		}
		wrapped += time.Since(begin)
	}
	b.ReportMetric(float64(wrapped)/float64(bare), "wrapped/bare")
	b.ReportMetric(float64(wrapped-bare)/float64(calls*b.N), "ns-added/call")
}
