package pgcheckpoint_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/dbconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/pgtel"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

var opDuration = dbconv.ClientOperationDuration{}.Name()

var (
	dbRequired = []attribute.Key{semconv.DBSystemNameKey, semconv.DBOperationNameKey, semconv.DBNamespaceKey,
		semconv.DBQuerySummaryKey, semconv.ServerAddressKey}
	dbOptional = []attribute.Key{semconv.ServerPortKey, semconv.ErrorTypeKey, semconv.DBResponseStatusCodeKey}
	onTable    = append([]attribute.Key{semconv.DBCollectionNameKey}, dbRequired...)
)

// documentedSpans are the store's spans as doc.go describes them.
var documentedSpans = []telemetrytest.Span{
	{Name: "project {name}", Kind: trace.SpanKindInternal,
		Required: []attribute.Key{pgcheckpoint.AttrProjection, pgcheckpoint.AttrPosition},
		Optional: []attribute.Key{semconv.ErrorTypeKey}, Parented: true},
	{Name: "lock_checkpoint {collection}", Kind: trace.SpanKindClient, Required: onTable, Optional: dbOptional, Parented: true},
	{Name: "save_checkpoint {collection}", Kind: trace.SpanKindClient, Required: onTable, Optional: dbOptional},
	{Name: "commit {namespace}", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional, Parented: true},
	{Name: "load_checkpoint {collection}", Kind: trace.SpanKindClient, Required: onTable, Optional: dbOptional},
	{Name: "ensure_checkpoint {collection}", Kind: trace.SpanKindClient, Required: onTable, Optional: dbOptional},
	{Name: "rebuild {collection}", Kind: trace.SpanKindClient, Required: onTable, Optional: dbOptional},
	{Name: "migrate {namespace}", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional},
}

// documentedMetrics are the store's metrics as doc.go describes them.
var documentedMetrics = []telemetrytest.Instrument{
	{Name: opDuration, Kind: telemetrytest.Histogram, Unit: dbconv.ClientOperationDuration{}.Unit(),
		Required: dbRequired, Optional: append([]attribute.Key{semconv.DBCollectionNameKey}, dbOptional...)},
	{Name: "cqrs.projection.lag", Kind: telemetrytest.Gauge, Unit: "{event}",
		Required: []attribute.Key{pgcheckpoint.AttrProjection}},
}

// TestTelemetryConforms runs every operation of the store, failures
// included, and checks every span and data point against the documented
// telemetry, and doc.go against it.
func TestTelemetryConforms(t *testing.T) { // not parallel: sets the global propagator
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	tel := telemetrytest.New(t)
	pool := testenv.PostgresPool(t, 0)
	schema := schemaName(t)
	opts := []pgcheckpoint.Option{pgcheckpoint.WithSchema(schema),
		pgcheckpoint.WithTracerProvider(tel.TracerProvider), pgcheckpoint.WithMeterProvider(tel.MeterProvider)}
	// s does not check for resets while it waits: the Rebuild below, made
	// through another Store, is found by the next event, whose span then
	// says so.
	s, err := pgcheckpoint.New(pool, append(opts, pgcheckpoint.WithCheckInterval(0))...)
	require.NoError(t, err)
	other, err := pgcheckpoint.New(pool, opts...)
	require.NoError(t, err)
	ctx := testenv.Context(t, 20*time.Second)

	_, err = s.LoadCheckpoint(ctx, "counts") // fails: no table yet
	require.Error(t, err)
	require.NoError(t, s.Migrate(ctx))
	createReadModel(t, ctx, pool, schema)
	require.NoError(t, s.SaveCheckpoint(ctx, "other", 3))
	events := &eventsource.MemoryStore{}
	actx, appendSpan := tel.TracerProvider.Tracer("test").Start(ctx, "append")
	_, err = events.Append(actx, "s-1", eventsource.Any, eventsource.NewEvent{Type: "counted"}, eventsource.NewEvent{Type: "counted"})
	require.NoError(t, err)
	appendSpan.End()

	// The first event is handled; the second fails and rolls back.
	boom := errors.New("boom")
	count := countHandler(schema)
	err = s.Project(ctx, "counts", events, func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
		if e.Position == 2 {
			return boom
		}
		return count(ctx, tx, e)
	})
	require.ErrorIs(t, err, boom)
	// A Rebuild under a running projection, from elsewhere, moves its
	// checkpoint: the next event finds it moved, and the projection
	// replays.
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Project(pctx, "counts", events, count) }()
	at := func(pos int64) func() bool {
		return func() bool {
			got, err := s.LoadCheckpoint(ctx, "counts")
			return err == nil && got == pos
		}
	}
	require.Eventually(t, at(2), 10*time.Second, 5*time.Millisecond)
	require.True(t, tel.HasMetric(t, "cqrs.projection.lag"))
	require.NoError(t, other.Rebuild(ctx, "counts", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "TRUNCATE "+pgx.Identifier{schema}.Sanitize()+".counts")
		return err
	}))
	actx, appendSpan = tel.TracerProvider.Tracer("test").Start(ctx, "append")
	_, err = events.Append(actx, "s-1", eventsource.Any, eventsource.NewEvent{Type: "counted"})
	require.NoError(t, err)
	appendSpan.End()
	require.Eventually(t, at(3), 10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	tel.CheckSpans(t, pgcheckpoint.ScopeName, documentedSpans, "project {name}", "lock_checkpoint {collection}",
		"save_checkpoint {collection}", "commit {namespace}", "load_checkpoint {collection}",
		"ensure_checkpoint {collection}", "rebuild {collection}", "migrate {namespace}")
	tel.CheckMetrics(t, pgcheckpoint.ScopeName, documentedMetrics, opDuration)
	telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, documentedSpans)
	telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: "pgcheckpoint.checkpoint_moved"}}, nil)

	// The project spans link to the append, and are the parents of their
	// transaction's queries.
	projects := tel.SpansNamed("project counts")
	require.NotEmpty(t, projects)
	for _, p := range projects {
		require.Len(t, p.Links(), 1, "links of %s", p.Name())
		assert.True(t, p.Links()[0].SpanContext.IsValid())
	}
	assert.Equal(t, codes.Error, projects[1].Status().Code, "the failed event")
	assert.Equal(t, semconv.ErrorTypeOther.Value, telemetrytest.Attrs(projects[1])[semconv.ErrorTypeKey])
	lock := tel.SpansNamed("lock_checkpoint " + schema + ".checkpoints")[0]
	assert.Equal(t, projects[0].SpanContext().SpanID(), lock.Parent().SpanID(), "lock_checkpoint's parent")
	namespace := pool.Config().ConnConfig.Database + "|" + schema
	commit := tel.SpansNamed("commit " + namespace)[0]
	assert.Equal(t, projects[0].SpanContext().SpanID(), commit.Parent().SpanID(), "commit's parent")
	assert.Equal(t, namespace, telemetrytest.Attrs(commit)[semconv.DBNamespaceKey].AsString())
	failed := tel.SpansNamed("load_checkpoint " + schema + ".checkpoints")[0]
	assert.Equal(t, "42P01", telemetrytest.Attrs(failed)[semconv.DBResponseStatusCodeKey].AsString())
	assert.Equal(t, "42P01", telemetrytest.Attrs(failed)[semconv.ErrorTypeKey].AsString())
	moved := 0
	for _, p := range projects {
		for _, e := range p.Events() {
			if e.Name == "pgcheckpoint.checkpoint_moved" {
				moved++
			}
		}
	}
	assert.Equal(t, 1, moved, "project spans with the checkpoint_moved event")
	port := pool.Config().ConnConfig.Port
	_, hasPort := telemetrytest.Attrs(commit)[semconv.ServerPortKey]
	assert.Equal(t, port != pgtel.DefaultPort, hasPort, "server.port is Opt-In at 5432")
}
