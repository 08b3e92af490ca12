package natsbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/messagingconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// The attribute keys of the bus's spans and metrics.
var (
	system   = semconv.MessagingSystemKey
	opName   = semconv.MessagingOperationNameKey
	opType   = semconv.MessagingOperationTypeKey
	dest     = semconv.MessagingDestinationNameKey
	group    = semconv.MessagingConsumerGroupNameKey
	sub      = semconv.MessagingDestinationSubscriptionNameKey
	address  = semconv.ServerAddressKey
	port     = semconv.ServerPortKey
	errType  = semconv.ErrorTypeKey
	msgID    = semconv.MessagingMessageIDKey
	bodySize = semconv.MessagingMessageBodySizeKey
)

// documentedMetrics are the package's metrics as doc.go describes them.
// server.address and server.port are required: the tests run against a
// server.
var documentedMetrics = []telemetrytest.Instrument{
	{Name: messagingconv.ClientOperationDuration{}.Name(), Kind: telemetrytest.Histogram,
		Unit:     messagingconv.ClientOperationDuration{}.Unit(),
		Required: []attribute.Key{system, opName, opType, dest, address, port},
		Optional: []attribute.Key{group, sub, errType}},
	{Name: messagingconv.ClientSentMessages{}.Name(), Kind: telemetrytest.Counter,
		Unit:     messagingconv.ClientSentMessages{}.Unit(),
		Required: []attribute.Key{system, opName, dest, address, port},
		Optional: []attribute.Key{errType}},
	{Name: messagingconv.ClientConsumedMessages{}.Name(), Kind: telemetrytest.Counter,
		Unit:     messagingconv.ClientConsumedMessages{}.Unit(),
		Required: []attribute.Key{system, opName, dest, group, sub, address, port}},
	{Name: messagingconv.ProcessDuration{}.Name(), Kind: telemetrytest.Histogram,
		Unit:     messagingconv.ProcessDuration{}.Unit(),
		Required: []attribute.Key{system, opName, dest, group, sub, address, port},
		Optional: []attribute.Key{errType}},
	{Name: cqrs.MetricRedeliveries, Kind: telemetrytest.Counter, Unit: "{message}",
		Required: []attribute.Key{system, dest, group}},
	{Name: cqrs.MetricDeadLetters, Kind: telemetrytest.Counter, Unit: "{message}",
		Required: []attribute.Key{system, dest, group}},
	{Name: natsbus.MetricUnidentified, Kind: telemetrytest.Counter, Unit: "{message}",
		Required: []attribute.Key{system, dest, group}},
}

// documentedSpans are the package's spans as doc.go describes them.
var documentedSpans = []telemetrytest.Span{
	{Name: "publish {subject}", Kind: trace.SpanKindProducer,
		Required: []attribute.Key{system, opName, opType, dest, msgID, address, port},
		Optional: []attribute.Key{bodySize, errType}},
	{Name: "process {subject}", Kind: trace.SpanKindConsumer, Parented: true,
		Required: []attribute.Key{system, opName, opType, dest, group, sub, msgID, cqrs.AttrDelivery, address, port},
		Optional: []attribute.Key{bodySize, errType}},
}

// TestTelemetryConforms runs a bus on the real server through a success,
// a redelivery, a dead letter, a panic, a duplicate and a failed publish,
// checks every span and data point against the documented telemetry, and
// doc.go against it. Not parallel: it sets the global propagator, without
// which no trace context crosses the server.
func TestTelemetryConforms(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	tel := telemetrytest.New(t)
	opts := []natsbus.Option{natsbus.WithTracerProvider(tel.TracerProvider),
		natsbus.WithMeterProvider(tel.MeterProvider), natsbus.WithOptInAttributes()}
	bus, js, stream := newBus(t, opts...)
	ctx := ctxWithin(t, 10*time.Second)

	dead := make(chan struct{}, 2)
	handled := newCollector()
	subscribe(t, bus, "orders", "billing", func(ctx context.Context, m cqrs.Message) error {
		switch m.ID {
		case "bad":
			return errors.New("boom")
		case "panic":
			panic("kaboom")
		}
		return handled.handle(ctx, m)
	}, cqrs.WithMaxDeliver(2), cqrs.WithRedeliveryBackoff(fastBackoff),
		cqrs.WithDeadLetter(func(context.Context, cqrs.Message, error) { dead <- struct{}{} }))
	require.NoError(t, bus.Publish(ctx, "orders",
		cqrs.Message{ID: "good", Data: []byte("{}")}, cqrs.Message{ID: "bad"}, cqrs.Message{ID: "panic"}))
	require.NoError(t, bus.Publish(ctx, "orders", cqrs.Message{ID: "good"})) // a duplicate
	// A message from a publisher that gave it no ID, but a trace context.
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})), carrier)
	raw := &nats.Msg{Subject: subject(stream, "orders"), Data: []byte("{}"), Header: nats.Header{}}
	for k, v := range carrier {
		raw.Header.Set(k, v)
	}
	_, err := js.PublishMsg(ctx, raw)
	require.NoError(t, err)
	for range 2 {
		select {
		case <-dead:
		case <-time.After(5 * time.Second):
			t.Fatal("dead letters missing")
		}
	}
	waitFor(t, 5*time.Second, "the good messages", func() bool { return handled.len() == 2 })

	// A bus whose stream does not exist fails to publish.
	unset, err := natsbus.New(js, append(opts, natsbus.WithStream("natsbus_test_missing"),
		natsbus.WithSubjectPrefix("natsbustest.missing."))...)
	require.NoError(t, err)
	errPublish := unset.Publish(ctx, "orders", cqrs.Message{ID: "lost"})
	require.Error(t, errPublish)

	// Every process span has ended (its settle events recorded) once the
	// process durations are all in.
	waitFor(t, 5*time.Second, "the process spans", func() bool {
		return histogramCount(t, tel, messagingconv.ProcessDuration{}.Name()) == 6
	})
	tel.CheckMetrics(t, natsbus.ScopeName, documentedMetrics,
		messagingconv.ClientOperationDuration{}.Name(), messagingconv.ClientSentMessages{}.Name(),
		messagingconv.ClientConsumedMessages{}.Name(), messagingconv.ProcessDuration{}.Name(),
		cqrs.MetricRedeliveries, cqrs.MetricDeadLetters, natsbus.MetricUnidentified)
	tel.CheckSpans(t, natsbus.ScopeName, documentedSpans, "publish {subject}", "process {subject}")
	assert.EqualValues(t, 1, sum(t, tel, messagingconv.ClientSentMessages{}.Name(),
		telemetry.ErrorType(errPublish)), "the failed publish: %s", tel.Describe(t, messagingconv.ClientSentMessages{}.Name()))
	assert.EqualValues(t, 2, histogramCount(t, tel, messagingconv.ProcessDuration{}.Name(), errType.String("natsbus.panic")))

	for _, s := range tel.Spans.Ended() {
		if _, ok := telemetrytest.Attrs(s)[bodySize]; !ok {
			t.Errorf("span %s has no messaging.message.body.size with WithOptInAttributes", s.Name())
		}
	}
	telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, documentedSpans)
	for _, word := range []string{"ack", "nak", "term", "duplicate", "natsbus.panic", "client span", "MaxTopicTelemetry"} {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: word}}, nil)
	}
}
