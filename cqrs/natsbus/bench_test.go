package natsbus_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// BenchmarkPublish compares one message published through the bus with a
// bare JetStream publish of the same message ID, with the default (global
// no-op) providers and with SDK providers.
func BenchmarkPublish(b *testing.B) {
	data := []byte(`{"order":"42","total":1200}`)
	b.Run("bare", func(b *testing.B) {
		stream, prefix := names(b)
		_, js := connect(b)
		bus, err := natsbus.New(js, natsbus.WithStream(stream), natsbus.WithSubjectPrefix(prefix))
		if err != nil {
			b.Fatal(err)
		}
		if err := bus.Setup(context.Background()); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for i := 0; b.Loop(); i++ {
			if _, err := js.Publish(ctx, prefix+"bench", data, jetstream.WithMsgID("bare-"+strconv.Itoa(i))); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, mode := range []string{"default", "sdk"} {
		b.Run(mode, func(b *testing.B) {
			var opts []natsbus.Option
			if mode == "sdk" {
				p := telemetrytest.New(b)
				opts = append(opts, natsbus.WithTracerProvider(p.TracerProvider), natsbus.WithMeterProvider(p.MeterProvider))
			}
			bus, _, _ := newBus(b, opts...)
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				m := cqrs.Message{ID: mode + "-" + strconv.Itoa(i), Type: "order.placed.v1", Data: data}
				if err := bus.Publish(ctx, "bench", m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
