package circuitbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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

// BenchmarkExecute measures a call through the breaker closed (the hot
// path) and rejected while open, with the default global no-op providers
// and with an SDK meter provider.
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
			br := circuitbreaker.New("bench", append(tc.opts(b), circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour))...)
			_ = br.Execute(ctx, fail)
			b.ReportAllocs()
			for b.Loop() {
				_ = br.Execute(ctx, ok)
			}
		})
	}
}

// BenchmarkGroupGet measures finding a host's breaker, the extra step of
// the HTTP transport.
func BenchmarkGroupGet(b *testing.B) {
	g := circuitbreaker.NewGroup()
	for i := range 100 {
		g.Get(fmt.Sprintf("host-%d.example:443", i))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = g.Get("host-42.example:443")
		}
	})
}

// BenchmarkTimed measures the cost of timing calls for slow-call detection.
func BenchmarkTimed(b *testing.B) {
	ctx := context.Background()
	br := circuitbreaker.New("bench", circuitbreaker.WithSlowCalls(time.Second, 50))
	b.ReportAllocs()
	for b.Loop() {
		_ = br.Execute(ctx, ok)
	}
}

// BenchmarkReject measures the rejection path in each rejecting state: open
// after a trip, opened by hand (Trip) and half-open with its probe slot
// taken. The rejection error is built once per period, so none allocates.
func BenchmarkReject(b *testing.B) {
	ctx := context.Background()
	open := func(b *testing.B) *circuitbreaker.Breaker {
		br := circuitbreaker.New("bench", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour))
		_ = br.Execute(ctx, fail)
		return br
	}
	tripped := func(b *testing.B) *circuitbreaker.Breaker {
		br := circuitbreaker.New("bench")
		br.Trip()
		return br
	}
	halfOpen := func(b *testing.B) *circuitbreaker.Breaker {
		br := circuitbreaker.New("bench", circuitbreaker.WithConsecutiveFailures(1),
			circuitbreaker.WithOpenDuration(time.Nanosecond), circuitbreaker.WithProbeTimeout(time.Hour))
		_ = br.Execute(ctx, fail)
		for br.State() != circuitbreaker.StateHalfOpen {
		}
		if _, err := br.Allow(ctx); err != nil { // the probe that holds the only slot
			b.Fatal(err)
		}
		return br
	}
	for _, tc := range []struct {
		name string
		new  func(*testing.B) *circuitbreaker.Breaker
	}{{"open", open}, {"tripped", tripped}, {"half-open", halfOpen}} {
		b.Run(tc.name, func(b *testing.B) {
			br := tc.new(b)
			if err := br.Execute(ctx, ok); err == nil {
				b.Fatal("Execute() = nil; want a rejection")
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = br.Execute(ctx, ok)
			}
		})
	}
}

// BenchmarkRejectedErrorMessage measures reading a rejection's message,
// which is written when read so that the time left is current.
func BenchmarkRejectedErrorMessage(b *testing.B) {
	br := circuitbreaker.New("payments", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour))
	_ = br.Execute(context.Background(), fail)
	err := br.Execute(context.Background(), ok)
	b.ReportAllocs()
	for b.Loop() {
		_ = err.Error()
	}
}
