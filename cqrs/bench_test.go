package cqrs_test

import (
	"context"
	"testing"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// BenchmarkDispatch measures dispatching a command through the bus against
// calling its handler directly, with no-op and SDK providers.
func BenchmarkDispatch(b *testing.B) {
	ctx := context.Background()
	handler := func(ctx context.Context, d Deposit) error { return nil }
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = handler(ctx, Deposit{"a", 1})
		}
	})
	for name, opts := range map[string]func(b *testing.B) []cqrs.BusOption{
		"noop": func(*testing.B) []cqrs.BusOption { return nil },
		"sdk": func(b *testing.B) []cqrs.BusOption {
			tel := telemetrytest.New(b)
			return []cqrs.BusOption{cqrs.WithTracerProvider(tel.TracerProvider), cqrs.WithMeterProvider(tel.MeterProvider)}
		},
	} {
		b.Run(name, func(b *testing.B) {
			bus := cqrs.NewBus(opts(b)...)
			if err := cqrs.HandleCommand(bus, handler); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = bus.Dispatch(ctx, Deposit{"a", 1})
			}
		})
	}
}
