package retry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/retry"
)

// benchTelemetry are the retrier rows of every benchmark, after the bare
// call: noop gives no provider, so the retrier uses the global ones, no-ops
// unless a program installs an SDK; sdk records every span and metric into
// OpenTelemetry SDK providers (an in-memory span recorder and a manual
// metric reader).
var benchTelemetry = []struct {
	name string
	opts func(testing.TB) []retry.Option
}{
	{"noop", func(testing.TB) []retry.Option { return nil }},
	{"sdk", func(tb testing.TB) []retry.Option {
		p := telemetrytest.New(tb)
		return []retry.Option{retry.WithTracerProvider(p.TracerProvider), retry.WithMeterProvider(p.MeterProvider)}
	}},
}

var errBenchFailure = errors.New("bench failure")

// BenchmarkDo measures [retry.Retrier.Do] in three scenarios, each with
// three rows: bare (the operation called directly, or a plain loop of 3
// tries: the floor), noop (global no-op providers) and sdk (SDK providers).
//
//   - first-success: sequential calls of an operation that returns nil at
//     once, with a default retrier: the cost every call pays, which should
//     start no span and allocate nothing.
//   - first-success-parallel: the same from GOMAXPROCS goroutines sharing
//     one retrier (b.RunParallel), which shows contention on the retrier's
//     instruments.
//   - two-failures: an operation that fails twice then succeeds, through a
//     retrier with WithBackoff(Constant(0)) and WithMaxAttempts(3): the cost
//     of the retry path (span, classification, delays, per-attempt
//     telemetry) without any wait.
func BenchmarkDo(b *testing.B) {
	ctx := context.Background()
	succeed := func(context.Context) error { return nil }

	b.Run("first-success/bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = succeed(ctx)
		}
	})
	for _, tel := range benchTelemetry {
		b.Run("first-success/"+tel.name, func(b *testing.B) {
			r := retry.New(tel.opts(b)...)
			b.ReportAllocs()
			for b.Loop() {
				_ = r.Do(ctx, succeed)
			}
		})
	}

	b.Run("first-success-parallel/bare", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = succeed(ctx)
			}
		})
	})
	for _, tel := range benchTelemetry {
		b.Run("first-success-parallel/"+tel.name, func(b *testing.B) {
			r := retry.New(tel.opts(b)...)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = r.Do(ctx, succeed)
				}
			})
		})
	}

	// calls counts the attempts of the current sequence; the loops reset it
	// before each one.
	calls := 0
	failTwice := func(context.Context) error {
		calls++
		if calls <= 2 {
			return errBenchFailure
		}
		return nil
	}
	b.Run("two-failures/bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			calls = 0
			for range 3 {
				if failTwice(ctx) == nil {
					break
				}
			}
		}
	})
	for _, tel := range benchTelemetry {
		b.Run("two-failures/"+tel.name, func(b *testing.B) {
			r := retry.New(append(tel.opts(b), retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(3))...)
			b.ReportAllocs()
			for b.Loop() {
				calls = 0
				if err := r.Do(ctx, failTwice); err != nil {
					b.Fatalf("Do() = %v; want nil", err)
				}
			}
		})
	}
}

// BenchmarkDoGeneric measures the generic [retry.Do] with an operation that
// returns a value and a nil error at once, in the same three rows as
// BenchmarkDo: its cost over [retry.Retrier.Do] is the closure that carries
// the value, which should not escape to the heap.
func BenchmarkDoGeneric(b *testing.B) {
	ctx := context.Background()
	value := func(context.Context) (int, error) { return 42, nil }

	b.Run("first-success/bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = value(ctx)
		}
	})
	for _, tel := range benchTelemetry {
		b.Run("first-success/"+tel.name, func(b *testing.B) {
			r := retry.New(tel.opts(b)...)
			b.ReportAllocs()
			for b.Loop() {
				_, _ = retry.Do(ctx, r, value)
			}
		})
	}
}
