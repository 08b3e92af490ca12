package natsbus_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// BenchmarkProcess compares consuming and acknowledging messages through a
// bus subscription (default options: global no-op providers, Concurrency 1,
// DefaultPrefetch) with a bare JetStream durable consumer with nats.go's
// defaults doing the same, on b.N messages published beforehand. It
// reports messages per second. The natsbus-sdk row has SDK providers that
// record every span in memory. The machine's load moves both a lot: run
// them interleaved (-count 1 in a loop) and compare run by run.
func BenchmarkProcess(b *testing.B) {
	data := []byte(`{"order":"42","total":1200}`)
	run := func(b *testing.B, opts []natsbus.Option, consume func(b *testing.B, bus cqrs.EventBus, js jetstream.JetStream, stream, prefix string, done func())) {
		bus, js, stream := newBus(b, opts...)
		prefix := "" // recovered from the bus's publish below
		ctx := context.Background()
		n := b.N
		for i := range n {
			m := cqrs.Message{ID: strconv.Itoa(i), Type: "order.placed.v1", Data: data}
			if err := bus.Publish(ctx, "bench", m); err != nil {
				b.Fatal(err)
			}
		}
		info, err := js.Stream(ctx, stream)
		if err != nil {
			b.Fatal(err)
		}
		prefix = info.CachedInfo().Config.Subjects[0]
		prefix = prefix[:len(prefix)-1] // "prefix.>" -> "prefix."
		var handled atomic.Int64
		all := make(chan struct{})
		done := func() {
			if handled.Add(1) == int64(n) {
				close(all)
			}
		}
		b.ResetTimer()
		start := time.Now()
		consume(b, bus, js, stream, prefix, done)
		select {
		case <-all:
		case <-time.After(time.Minute):
			b.Fatalf("handled %d of %d messages", handled.Load(), n)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
	}
	b.Run("bare", func(b *testing.B) {
		run(b, nil, func(b *testing.B, _ cqrs.EventBus, js jetstream.JetStream, stream, prefix string, done func()) {
			ctx := context.Background()
			cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
				Durable: "bare", FilterSubject: prefix + "bench", AckPolicy: jetstream.AckExplicitPolicy,
			})
			if err != nil {
				b.Fatal(err)
			}
			cc, err := cons.Consume(func(m jetstream.Msg) {
				if err := m.Ack(); err != nil {
					b.Error(err)
				}
				done()
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(cc.Stop)
		})
	})
	for _, tc := range []struct {
		name string
		opts []natsbus.Option
	}{
		{"natsbus", nil},
		{"natsbus-sdk", nil}, // SDK providers, set below
		{"natsbus-prefetch2", []natsbus.Option{natsbus.WithPrefetch(2)}}, // the default before 256
	} {
		b.Run(tc.name, func(b *testing.B) {
			opts := tc.opts
			if tc.name == "natsbus-sdk" {
				p := telemetrytest.New(b)
				opts = []natsbus.Option{natsbus.WithTracerProvider(p.TracerProvider), natsbus.WithMeterProvider(p.MeterProvider)}
			}
			run(b, opts, func(b *testing.B, bus cqrs.EventBus, _ jetstream.JetStream, _, _ string, done func()) {
				subscribe(b, bus, "bench", "bench", func(context.Context, cqrs.Message) error {
					done()
					return nil
				})
			})
		})
	}
}
