package natsbus

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/buskit"
)

// BenchmarkDeliveryWork isolates what a subscription adds to a delivery,
// without a server: "bare" is the callback of a bare consumer (an Ack),
// "natsbus" the subscription's process (decoding the headers and the reply
// subject, the handler call, the Ack), with no-op telemetry, on a message
// with the headers Publish writes whose Ack does nothing. What it reports
// is the bus's own cost per message; BenchmarkConsume shows it beside the
// client's and the server's.
func BenchmarkDeliveryWork(b *testing.B) {
	msg := &fakeMsg{data: []byte(`{"order":"42","total":1200}`), reply: "$JS.ACK.S.g-t.1.1042.17.1733500000000000000.5",
		h: nats.Header{nats.MsgIdHdr: {"p.t 17"}, idHeader: {"17"}, jetstream.ExpectedStreamHeader: {"S"}, typeHeader: {"order.placed.v1"}}}
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = msg.Ack()
		}
	})
	b.Run("natsbus", func(b *testing.B) {
		cfg := defaultConfig()
		cfg.tracerProvider, cfg.meterProvider = tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()
		bus := &Bus{cfg: cfg, inst: newInstruments(cfg, nil)}
		sc, err := buskit.NewSubscribeConfig()
		if err != nil {
			b.Fatal(err)
		}
		s := &subscription{bus: bus, topic: "t", subject: "p.t", group: "g", consumer: "g-t", cfg: sc,
			handler: func(context.Context, cqrs.Message) error { return nil }, baseCtx: context.Background(), slots: make([]slot, 1)}
		s.tel.Store(newSubTelemetry(s.subject, s.group, s.consumer, bus.inst.endpoint(time.Now())))
		b.ReportAllocs()
		for b.Loop() {
			s.process(msg, &s.slots[0])
		}
	})
}

// fakeMsg is a delivered message whose settlements do nothing.
type fakeMsg struct {
	data  []byte
	reply string
	h     nats.Header
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) { return &jetstream.MsgMetadata{}, nil }
func (m *fakeMsg) Data() []byte                              { return m.data }
func (m *fakeMsg) Headers() nats.Header                      { return m.h }
func (m *fakeMsg) Subject() string                           { return "p.t" }
func (m *fakeMsg) Reply() string                             { return m.reply }
func (m *fakeMsg) Ack() error                                { return nil }
func (m *fakeMsg) DoubleAck(context.Context) error           { return nil }
func (m *fakeMsg) Nak() error                                { return nil }
func (m *fakeMsg) NakWithDelay(time.Duration) error          { return nil }
func (m *fakeMsg) InProgress() error                         { return nil }
func (m *fakeMsg) Term() error                               { return nil }
func (m *fakeMsg) TermWithReason(string) error               { return nil }
