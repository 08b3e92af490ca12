package cqrs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/messagingconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// The attribute keys of the memory bus's spans and metrics.
var (
	system   = semconv.MessagingSystemKey
	opName   = semconv.MessagingOperationNameKey
	opType   = semconv.MessagingOperationTypeKey
	dest     = semconv.MessagingDestinationNameKey
	group    = semconv.MessagingConsumerGroupNameKey
	errType  = semconv.ErrorTypeKey
	bodySize = semconv.MessagingMessageBodySizeKey
)

// documentedMetrics are the package's metrics as doc.go describes them.
var documentedMetrics = []telemetrytest.Instrument{
	{Name: "cqrs.handled", Kind: telemetrytest.Counter, Unit: "{message}",
		Required: []attribute.Key{cqrs.AttrOutcome},
		Optional: []attribute.Key{cqrs.AttrCommandType, cqrs.AttrQueryType, errType}},
	{Name: "cqrs.handle.duration", Kind: telemetrytest.Histogram, Unit: "s",
		Required: []attribute.Key{cqrs.AttrOutcome},
		Optional: []attribute.Key{cqrs.AttrCommandType, cqrs.AttrQueryType, errType}},
	{Name: messagingconv.ClientOperationDuration{}.Name(), Kind: telemetrytest.Histogram,
		Unit:     messagingconv.ClientOperationDuration{}.Unit(),
		Required: []attribute.Key{system, opName, opType, dest},
		Optional: []attribute.Key{group, errType}},
	{Name: messagingconv.ClientSentMessages{}.Name(), Kind: telemetrytest.Counter,
		Unit:     messagingconv.ClientSentMessages{}.Unit(),
		Required: []attribute.Key{system, opName, dest},
		Optional: []attribute.Key{errType}},
	{Name: messagingconv.ClientConsumedMessages{}.Name(), Kind: telemetrytest.Counter,
		Unit:     messagingconv.ClientConsumedMessages{}.Unit(),
		Required: []attribute.Key{system, opName, dest, group}},
	{Name: messagingconv.ProcessDuration{}.Name(), Kind: telemetrytest.Histogram,
		Unit:     messagingconv.ProcessDuration{}.Unit(),
		Required: []attribute.Key{system, opName, dest, group},
		Optional: []attribute.Key{errType}},
	{Name: cqrs.MetricRedeliveries, Kind: telemetrytest.Counter, Unit: "{message}",
		Required: []attribute.Key{system, dest, group}},
	{Name: cqrs.MetricDeadLetters, Kind: telemetrytest.Counter, Unit: "{message}",
		Required: []attribute.Key{system, dest, group}},
	{Name: cqrs.MetricRelayDeadLetters, Kind: telemetrytest.Counter, Unit: "{event}",
		Required: []attribute.Key{cqrs.AttrRelay, errType}},
	{Name: "cqrs.projection.lag", Kind: telemetrytest.Gauge, Unit: "{event}",
		Required: []attribute.Key{cqrs.AttrProjection}},
}

// documentedSpans are the package's spans as doc.go describes them.
var documentedSpans = []telemetrytest.Span{
	{Name: "cqrs.command", Kind: trace.SpanKindInternal,
		Required: []attribute.Key{cqrs.AttrCommandType},
		Optional: []attribute.Key{errType, cqrs.AttrCommandDuplicate}},
	{Name: "cqrs.query", Kind: trace.SpanKindInternal,
		Required: []attribute.Key{cqrs.AttrQueryType},
		Optional: []attribute.Key{errType}},
	{Name: "publish {destination}", Kind: trace.SpanKindProducer,
		Required: []attribute.Key{system, opName, opType, dest},
		Optional: []attribute.Key{semconv.MessagingMessageIDKey, semconv.MessagingBatchMessageCountKey, bodySize, errType}},
	{Name: "process {destination}", Kind: trace.SpanKindConsumer, Parented: true,
		Required: []attribute.Key{system, opName, opType, dest, group, cqrs.AttrDelivery},
		Optional: []attribute.Key{semconv.MessagingMessageIDKey, bodySize, errType}},
	{Name: "project {name}", Kind: trace.SpanKindInternal, Parented: true,
		Required: []attribute.Key{cqrs.AttrProjection, cqrs.AttrPosition},
		Optional: []attribute.Key{errType}},
}

// TestTelemetryConforms runs the buses, a projection and the deduplication
// middleware through success and failure, checks every span and data point
// against the documented telemetry, and doc.go against it. Not parallel:
// it sets the global propagator, so that appends carry their context.
func TestTelemetryConforms(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	tel := telemetrytest.New(t)
	withTP, withMP := cqrs.WithTracerProvider(tel.TracerProvider), cqrs.WithMeterProvider(tel.MeterProvider)
	ctx := t.Context()

	// Commands, one of them a duplicate, one failing, and a query.
	store := &eventsource.MemoryStore{}
	commands := cqrs.NewBus(withTP, withMP)
	require.NoError(t, commands.Use(cqrs.Deduplication(store)))
	require.NoError(t, cqrs.HandleCommand(commands, func(ctx context.Context, d Deposit) error {
		if d.Amount < 0 {
			return errors.New("negative")
		}
		_, err := store.Append(ctx, d.Account, eventsource.Any, eventsource.NewEvent{Type: "deposited", Data: []byte("{}")})
		return err
	}))
	require.NoError(t, cqrs.HandleQuery(commands, func(context.Context, Balance) (int, error) { return 1, nil }))
	dedup := eventsource.WithCommandID(ctx, "cmd-1")
	require.NoError(t, commands.Dispatch(dedup, Deposit{"acc-1", 10}))
	require.NoError(t, commands.Dispatch(dedup, Deposit{"acc-1", 10})) // a duplicate
	require.Error(t, commands.Dispatch(ctx, Deposit{"acc-1", -1}))
	_, err := cqrs.Ask[Balance, int](ctx, commands, Balance{"acc-1"})
	require.NoError(t, err)

	// A projection of the store.
	runner, err := cqrs.NewRunner(store, &cqrs.MemoryCheckpoints{}, withTP, withMP)
	require.NoError(t, err)
	t.Cleanup(func() { _ = runner.Close() })
	counter := &eventCounter{}
	require.NoError(t, runner.Start(counter))

	// The relay, moving past an event that the bus cannot carry.
	checkpoints := &cqrs.MemoryCheckpoints{}
	relay, err := cqrs.NewRelay("outbox", store, cqrs.NewMemoryBus(), checkpoints,
		func(eventsource.Event) string { return "" }, withMP,
		cqrs.WithRelayDeadLetter(func(context.Context, eventsource.Event, error) error { return nil }))
	require.NoError(t, err)
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	waitUntil(t, "the relay", func() bool {
		pos, _ := checkpoints.LoadCheckpoint(ctx, "outbox")
		return pos == 1
	})
	stopRelay()
	require.NoError(t, <-relayDone)

	// The memory bus: a success, a redelivery, a dead letter, a batch.
	bus := cqrs.NewMemoryBus(withTP, withMP, cqrs.WithOptInAttributes())
	t.Cleanup(func() { _ = bus.Close() })
	dead := make(chan struct{})
	sub, err := bus.Subscribe(ctx, "orders", "billing", func(_ context.Context, m cqrs.Message) error {
		if m.ID == "bad" {
			return errors.New("boom")
		}
		return nil
	}, cqrs.WithMaxDeliver(2), cqrs.WithRedeliveryBackoff(fastBackoff),
		cqrs.WithDeadLetter(func(context.Context, cqrs.Message, error) { close(dead) }))
	require.NoError(t, err)
	require.NoError(t, bus.Publish(ctx, "orders", cqrs.Message{ID: "good", Data: []byte("{}")}))
	require.NoError(t, bus.Publish(ctx, "orders", cqrs.Message{ID: "bad"}, cqrs.Message{ID: "also-good"}))
	select {
	case <-dead:
	case <-time.After(3 * time.Second):
		t.Fatal("no dead letter")
	}
	require.NoError(t, sub.Close())
	require.NoError(t, bus.Close())
	require.ErrorIs(t, bus.Publish(ctx, "orders", cqrs.Message{ID: "late"}), cqrs.ErrBusClosed)
	waitUntil(t, "the projection", func() bool { return counter.n.Load() == 1 })

	tel.CheckMetrics(t, cqrs.ScopeName, documentedMetrics,
		"cqrs.handled", "cqrs.handle.duration",
		messagingconv.ClientOperationDuration{}.Name(), messagingconv.ClientSentMessages{}.Name(),
		messagingconv.ClientConsumedMessages{}.Name(), messagingconv.ProcessDuration{}.Name(),
		cqrs.MetricRedeliveries, cqrs.MetricDeadLetters, cqrs.MetricRelayDeadLetters)
	require.NoError(t, runner.Close()) // the project span has ended
	tel.CheckSpans(t, cqrs.ScopeName, documentedSpans,
		"cqrs.command", "cqrs.query", "publish {destination}", "process {destination}", "project {name}")
	for _, s := range tel.Spans.Ended() {
		if s.Name() == "process orders" || s.Name() == "publish orders" && len(s.Links()) == 0 &&
			telemetrytest.Attrs(s)[semconv.MessagingMessageIDKey].AsString() == "good" {
			assert.Contains(t, telemetrytest.Attrs(s), bodySize, "span %s with WithOptInAttributes", s.Name())
		}
	}
	telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, documentedSpans)
	for _, word := range []string{"ack", "nak", "term", "cqrs.bus_closed", "_OTHER", "client span"} {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: word}}, nil)
	}
}
