package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/pgtel"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// notifier is a cqrs projection that reports each event it handles.
type notifier struct{ handled chan eventsource.Event }

func (notifier) Name() string { return "links" }

func (s notifier) Handle(_ context.Context, e eventsource.Event) error {
	s.handled <- e
	return nil
}

// sameSpan reports whether sc names the span of want.
func sameSpan(sc, want trace.SpanContext) bool {
	return sc.TraceID() == want.TraceID() && sc.SpanID() == want.SpanID()
}

// TestReadersLinkToTheAppend protects the links of the spans of the
// readers of an event: the project spans of a cqrs.Runner and of
// pgcheckpoint link to the span of the append that stored the event, and
// the outbox relay publishes in its context, because the events carry
// the append span's trace context. They carried the caller's: the store
// added the trace context before it started the append's span.
func TestReadersLinkToTheAppend(t *testing.T) { // not parallel: sets the global propagator
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	p := telemetrytest.New(t)
	withTP := cqrs.WithTracerProvider(p.TracerProvider)
	s, pool := newStore(t, 8, pgstore.WithTracerProvider(p.TracerProvider), pgstore.WithPollInterval(20*time.Millisecond))
	ctx := testenv.Context(t, 20*time.Second)

	cctx, caller := p.TracerProvider.Tracer("test").Start(ctx, "caller")
	stored, err := s.Append(cctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err)
	caller.End()
	var appendSpan sdktrace.ReadOnlySpan
	for _, span := range p.Spans.Ended() {
		if telemetrytest.Attrs(span)[semconv.DBOperationNameKey].AsString() == pgtel.Batch {
			appendSpan = span
		}
	}
	require.NotNil(t, appendSpan)
	want := appendSpan.SpanContext()
	require.False(t, sameSpan(want, caller.SpanContext()))
	got := trace.SpanContextFromContext(eventsource.TraceContext(ctx, stored[0]))
	assert.True(t, sameSpan(got, want), "the stored event's trace context is the append span's")
	got = trace.SpanContextFromContext(eventsource.TraceContext(ctx, readVisible(t, ctx, s, 0)[0]))
	assert.True(t, sameSpan(got, want), "the read event's trace context is the append span's")

	linkOf := func(name string) trace.SpanContext {
		t.Helper()
		spans := p.SpansNamed(name)
		require.NotEmpty(t, spans, "spans named %q", name)
		require.Len(t, spans[0].Links(), 1, "links of %q", name)
		return spans[0].Links()[0].SpanContext
	}

	t.Run("cqrs.Runner", func(t *testing.T) {
		runner, err := cqrs.NewRunner(s, &cqrs.MemoryCheckpoints{}, withTP)
		require.NoError(t, err)
		proj := notifier{handled: make(chan eventsource.Event, 1)}
		require.NoError(t, runner.Start(proj))
		<-proj.handled
		require.NoError(t, runner.Close())
		assert.True(t, sameSpan(linkOf("project links"), want), "the runner's project span links to the append span")
	})

	t.Run("pgcheckpoint.Project", func(t *testing.T) {
		schema := schemaName(t)
		cps, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema), pgcheckpoint.WithTracerProvider(p.TracerProvider))
		require.NoError(t, err)
		require.NoError(t, cps.Migrate(ctx))
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- cps.Project(pctx, "checkpointed", s, func(context.Context, pgx.Tx, eventsource.Event) error {
				cancel()
				return nil
			})
		}()
		require.NoError(t, <-done)
		assert.True(t, sameSpan(linkOf("project checkpointed"), want), "pgcheckpoint's project span links to the append span")
	})

	t.Run("cqrs.Relay", func(t *testing.T) {
		bus := cqrs.NewMemoryBus(withTP)
		defer func() { _ = bus.Close() }()
		relay, err := cqrs.NewRelay("outbox", s, bus, &cqrs.MemoryCheckpoints{}, func(eventsource.Event) string { return "events" })
		require.NoError(t, err)
		published := make(chan struct{}, 1)
		sub, err := bus.Subscribe(ctx, "events", "test", func(context.Context, cqrs.Message) error {
			published <- struct{}{}
			return nil
		})
		require.NoError(t, err)
		defer func() { _ = sub.Close() }()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- relay.Run(rctx) }()
		<-published
		cancel()
		require.NoError(t, <-done)

		var publish sdktrace.ReadOnlySpan
		for _, span := range p.Spans.Ended() {
			// CLIENT: a message that carries its creation context (the
			// append's) keeps it, and the publish span is not the creation.
			if span.InstrumentationScope().Name == cqrs.ScopeName && span.SpanKind() == trace.SpanKindClient {
				publish = span
			}
		}
		require.NotNil(t, publish, "the relay's publish span")
		linked := sameSpan(publish.Parent(), want)
		for _, l := range publish.Links() {
			linked = linked || sameSpan(l.SpanContext, want)
		}
		assert.True(t, linked, "the relay's publish span continues (or links to) the append span; parent %v, links %v",
			publish.Parent(), publish.Links())
	})
}
