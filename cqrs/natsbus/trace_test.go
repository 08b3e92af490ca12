package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// addTicket is a command of the trace test.
type addTicket struct{ Queue, Title string }

// ticketAdded is the event addTicket records.
type ticketAdded struct{ Title string }

// ticketQueue is the aggregate of the trace test.
type ticketQueue struct {
	eventsource.Base
	Titles []string
}

func (q *ticketQueue) Apply(event any) error {
	switch e := event.(type) {
	case ticketAdded:
		q.Titles = append(q.Titles, e.Title)
	default:
		return fmt.Errorf("queue: unexpected event %T", event)
	}
	return nil
}

// One trace runs from a command through the event store, the outbox relay
// and NATS JetStream to the subscriber, the publish and process spans
// linked to the event's append.
func TestOneTraceFromCommandAcrossNATS(t *testing.T) { // not parallel: sets the global propagator
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	p := telemetrytest.New(t)
	bus, _, stream := newBus(t, natsbus.WithTracerProvider(p.TracerProvider))

	// Write side: a command bus whose handler saves an aggregate.
	store := &eventsource.MemoryStore{}
	reg := eventsource.NewRegistry()
	eventsource.Register[ticketAdded](reg, "ticket.added.v1")
	repo, err := eventsource.NewRepository(store, reg, func() *ticketQueue { return &ticketQueue{} })
	require.NoError(t, err)
	commands := cqrs.NewBus(cqrs.WithTracerProvider(p.TracerProvider))
	require.NoError(t, cqrs.HandleCommand(commands, func(ctx context.Context, cmd addTicket) error {
		q, err := repo.Load(ctx, cmd.Queue)
		if errors.Is(err, eventsource.ErrNotFound) {
			q = repo.New(cmd.Queue)
		} else if err != nil {
			return err
		}
		if err := eventsource.Raise(q, ticketAdded{cmd.Title}); err != nil {
			return err
		}
		return repo.Save(ctx, q)
	}))

	got := make(chan trace.SpanContext, 1)
	subscribe(t, bus, "tickets", "triage", func(ctx context.Context, m cqrs.Message) error {
		select {
		case got <- trace.SpanContextFromContext(ctx):
		default:
		}
		return nil
	})

	// The outbox relay from the store to NATS, stopped before the
	// subscription and the connection close.
	relay, err := cqrs.NewRelay("outbox", store, bus, &cqrs.MemoryCheckpoints{}, func(eventsource.Event) string { return "tickets" })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		// A cancel between publishing and saving the checkpoint fails the
		// save; that is a clean stop too.
		if err := <-relayDone; err != nil {
			assert.ErrorIs(t, err, context.Canceled)
		}
	})

	require.NoError(t, commands.Dispatch(ctxWithin(t, 5*time.Second), addTicket{Queue: "q-1", Title: "printer on fire"}))

	var sc trace.SpanContext
	select {
	case sc = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("message not delivered within 10s")
	}
	span := func(name string) sdktrace.ReadOnlySpan {
		for _, s := range p.Spans.Ended() {
			if s.Name() == name {
				return s
			}
		}
		return nil
	}
	// The process span may end before the publish span, which waits for
	// the stream's acknowledgement.
	publishName, processName := "publish "+subject(stream, "tickets"), "process "+subject(stream, "tickets")
	require.Eventually(t, func() bool { return span(publishName) != nil && span(processName) != nil },
		5*time.Second, 5*time.Millisecond, "the publish and process spans end")

	cmd, pub, proc := span("cqrs.command"), span(publishName), span(processName)
	require.NotNil(t, cmd)
	require.NotNil(t, pub)
	require.NotNil(t, proc)
	traceID := cmd.SpanContext().TraceID()
	assert.Equal(t, traceID, pub.SpanContext().TraceID(), "publish span in the command's trace")
	assert.Equal(t, traceID, proc.SpanContext().TraceID(), "process span in the command's trace")
	// The event carries its append's context (the command span's, with the
	// memory store) as the message's creation context: the relay's publish
	// span continues it and links to it, and the process span, in the
	// subscriber, does too, from the message's headers.
	assert.Equal(t, cmd.SpanContext().SpanID(), pub.Parent().SpanID(), "publish span a child of the command span")
	assertLinksTo(t, pub, cmd.SpanContext())
	assert.Equal(t, trace.SpanKindClient, pub.SpanKind(), "the publish span's context is not the creation context")
	assert.Equal(t, cmd.SpanContext().SpanID(), proc.Parent().SpanID(), "process span a child of the creation context")
	assertLinksTo(t, proc, cmd.SpanContext())
	assert.True(t, proc.Parent().IsRemote(), "process continues the trace from the message headers")
	assert.Equal(t, proc.SpanContext(), sc, "the handler runs in the process span")
}
