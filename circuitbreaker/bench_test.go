package circuitbreaker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

var errBench = errors.New("bench failure")

func ok(context.Context) error   { return nil }
func fail(context.Context) error { return errBench }

// BenchmarkBaseline is the bare call every other row pays on top of.
func BenchmarkBaseline(b *testing.B) {
	ctx := context.Background()
	f := ok
	b.ReportAllocs()
	for b.Loop() {
		_ = f(ctx)
	}
}

func BenchmarkExecute(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts func(b *testing.B) []circuitbreaker.Option
	}{
		{"noop", func(*testing.B) []circuitbreaker.Option { return nil }},
		{"sdk", func(b *testing.B) []circuitbreaker.Option {
			return []circuitbreaker.Option{circuitbreaker.WithMeterProvider(telemetrytest.New(b).MeterProvider)}
		}},
	} {
		b.Run("closed/"+tc.name, func(b *testing.B) {
			br := circuitbreaker.New("bench", tc.opts(b)...)
			b.ReportAllocs()
			for b.Loop() {
				_ = br.Execute(ctx, ok)
			}
		})
		b.Run("closed-parallel/"+tc.name, func(b *testing.B) {
			br := circuitbreaker.New("bench", tc.opts(b)...)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = br.Execute(ctx, ok)
				}
			})
		})
		b.Run("open/"+tc.name, func(b *testing.B) {
			br := circuitbreaker.New("bench", tc.opts(b)...)
			br.Trip()
			b.ReportAllocs()
			for b.Loop() {
				_ = br.Execute(ctx, ok)
			}
		})
	}
}
