package cqrs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// addCartItem is a command of the trace test.
type addCartItem struct{ Cart, SKU string }

// cartItemAdded is the event addCartItem records.
type cartItemAdded struct{ SKU string }

// traceCart is the aggregate of the trace test.
type traceCart struct {
	eventsource.Base
	Items []string
}

func (c *traceCart) Apply(event any) error {
	switch e := event.(type) {
	case cartItemAdded:
		c.Items = append(c.Items, e.SKU)
	default:
		return fmt.Errorf("cart: unexpected event %T", event)
	}
	return nil
}

// handleAddCartItem returns a command handler that loads the cart (or
// starts one), records the item and saves it through repo.
func handleAddCartItem(repo *eventsource.Repository[*traceCart]) func(context.Context, addCartItem) error {
	return func(ctx context.Context, cmd addCartItem) error {
		cart, err := repo.Load(ctx, cmd.Cart)
		if errors.Is(err, eventsource.ErrNotFound) {
			cart = repo.New(cmd.Cart)
		} else if err != nil {
			return err
		}
		if err := eventsource.Raise(cart, cartItemAdded{cmd.SKU}); err != nil {
			return err
		}
		return repo.Save(ctx, cart)
	}
}

// eventCounter is a projection that counts the events it is handed.
type eventCounter struct{ n atomic.Int64 }

func (c *eventCounter) Name() string { return "event-counter" }

func (c *eventCounter) Handle(context.Context, eventsource.Event) error {
	c.n.Add(1)
	return nil
}

// endedSpan returns the first ended span called name, or nil.
func endedSpan(p *telemetrytest.Providers, name string) sdktrace.ReadOnlySpan {
	for _, s := range p.Spans.Ended() {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// assertLinksTo fails the test unless span s links to the span of sc.
func assertLinksTo(t *testing.T, s sdktrace.ReadOnlySpan, sc trace.SpanContext) {
	t.Helper()
	for _, l := range s.Links() {
		if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
			return
		}
	}
	t.Errorf("span %q links to %v; want a link to span %s of trace %s", s.Name(), s.Links(), sc.SpanID(), sc.TraceID())
}

// One trace runs from a command through the event store and the outbox
// relay to the bus's subscriber; the projection that reads the same event
// starts a trace of its own that links back to the command's.
func TestOneTraceFromCommandToProjection(t *testing.T) { // not parallel: sets the global propagator
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	p := telemetrytest.New(t)
	withTP := cqrs.WithTracerProvider(p.TracerProvider)

	// Write side: a command bus whose handler saves an aggregate.
	store := &eventsource.MemoryStore{}
	reg := eventsource.NewRegistry()
	eventsource.Register[cartItemAdded](reg, "cart.item_added.v1")
	repo, err := eventsource.NewRepository(store, reg, func() *traceCart { return &traceCart{} })
	require.NoError(t, err)
	commands := cqrs.NewBus(withTP)
	require.NoError(t, cqrs.HandleCommand(commands, handleAddCartItem(repo)))

	// The event bus and its subscriber.
	events := cqrs.NewMemoryBus(withTP)
	t.Cleanup(func() { _ = events.Close() })
	var mu sync.Mutex
	var handled []trace.SpanContext
	sub, err := events.Subscribe(t.Context(), "carts", "shipping", func(ctx context.Context, m cqrs.Message) error {
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, trace.SpanContextFromContext(ctx))
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })

	// The outbox relay from the store to the event bus.
	relay, err := cqrs.NewRelay("outbox", store, events, &cqrs.MemoryCheckpoints{}, func(eventsource.Event) string { return "carts" })
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

	// A projection of the store.
	runner, err := cqrs.NewRunner(store, &cqrs.MemoryCheckpoints{}, withTP)
	require.NoError(t, err)
	t.Cleanup(func() { _ = runner.Close() })
	counter := &eventCounter{}
	require.NoError(t, runner.Start(counter))

	require.NoError(t, commands.Dispatch(t.Context(), addCartItem{Cart: "cart-1", SKU: "sku-42"}))

	require.Eventually(t, func() bool {
		// The process span may end before the publish span does.
		return endedSpan(p, "publish carts") != nil && endedSpan(p, "process carts") != nil &&
			endedSpan(p, "project event-counter") != nil
	}, 5*time.Second, 5*time.Millisecond, "the event is published, processed and projected")
	assert.Equal(t, int64(1), counter.n.Load())

	cmd := endedSpan(p, "cqrs.command")
	pub := endedSpan(p, "publish carts")
	proc := endedSpan(p, "process carts")
	proj := endedSpan(p, "project event-counter")
	require.NotNil(t, cmd)
	require.NotNil(t, pub)
	require.NotNil(t, proc)
	require.NotNil(t, proj)

	// The command, the publish and the process span share one trace. The
	// event carries the context of its append (here the command's span, as
	// the memory store has no span of its own) as the message's creation
	// context: the relay's publish span continues it and links to it, and
	// the bus keeps it in the message, so that the process span does too.
	traceID := cmd.SpanContext().TraceID()
	assert.Equal(t, traceID, pub.SpanContext().TraceID(), "publish span in the command's trace")
	assert.Equal(t, traceID, proc.SpanContext().TraceID(), "process span in the command's trace")
	assert.Equal(t, cmd.SpanContext().SpanID(), pub.Parent().SpanID(), "publish span a child of the command span")
	assert.True(t, pub.Parent().IsRemote(), "publish continues the command from the stored event")
	assertLinksTo(t, pub, cmd.SpanContext())
	assert.Equal(t, trace.SpanKindClient, pub.SpanKind(), "the publish span's context is not the creation context")
	assert.Equal(t, cmd.SpanContext().SpanID(), proc.Parent().SpanID(), "process span a child of the creation context")
	assertLinksTo(t, proc, cmd.SpanContext())
	mu.Lock()
	require.Len(t, handled, 1)
	assert.Equal(t, proc.SpanContext(), handled[0], "the handler runs in the process span")
	mu.Unlock()

	// The projection's span starts a trace of its own, linked to the
	// command's.
	assert.NotEqual(t, traceID, proj.SpanContext().TraceID(), "the projection runs in its own trace")
	assert.False(t, proj.Parent().IsValid(), "the projection span is a root")
	require.Len(t, proj.Links(), 1)
	link := proj.Links()[0].SpanContext
	assert.Equal(t, traceID, link.TraceID(), "the projection span links to the command's trace")
	assert.Equal(t, cmd.SpanContext().SpanID(), link.SpanID(), "the link points at the command span")
}
