package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

func TestTelemetry(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	s := newStoreIn(t, pool, schema, pgstore.WithTracerProvider(p.TracerProvider), pgstore.WithMeterProvider(p.MeterProvider),
		pgstore.WithPollInterval(50*time.Millisecond))
	ctx := testenv.Context(t, 10*time.Second)

	// Before Migrate, a read fails with PostgreSQL's error code.
	for _, err := range s.ReadAll(ctx, 0) {
		require.Error(t, err)
	}
	require.NoError(t, s.Migrate(ctx))
	appended, err := s.Append(ctx, "a", eventsource.NoStream, events(3, "test.v1")...)
	require.NoError(t, err)
	retry := events(3, "test.v1")
	for i := range retry {
		retry[i].ID = appended[i].ID
	}
	_, err = s.Append(ctx, "a", eventsource.Any, retry...) // stores nothing
	require.NoError(t, err)
	_, err = s.Append(ctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.ErrorIs(t, err, eventsource.ErrConcurrencyConflict)
	collect(t, s.ReadStream(ctx, "a", 1))
	collect(t, s.ReadAll(ctx, 1))
	require.NoError(t, s.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: "a", Version: 3, Data: []byte("{}")}))
	_, err = s.LoadSnapshot(ctx, "a")
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	n := 0
	for _, err := range s.Subscribe(sctx, 1) {
		require.NoError(t, err)
		if n++; n == 2 {
			cancel()
		}
	}
	cancel()

	server := map[attribute.Key]attribute.Value{
		"db.system.name": attribute.StringValue("postgresql"),
		"db.namespace":   attribute.StringValue(pool.Config().ConnConfig.Database),
		"server.address": attribute.StringValue(pool.Config().ConnConfig.Host),
		"server.port":    attribute.IntValue(int(pool.Config().ConnConfig.Port)),
	}
	events := schema + ".events"
	for _, tt := range []struct {
		span, op, collection string
		count                int
	}{
		{"migrate " + pool.Config().ConnConfig.Database, "migrate", "", 1},
		{"append " + events, "append", events, 3},
		{"read_stream " + events, "read_stream", events, 1},
		{"read_all " + events, "read_all", events, 2},
		{"subscribe " + events, "subscribe", events, 1},
		{"save_snapshot " + schema + ".snapshots", "save_snapshot", schema + ".snapshots", 1},
		{"load_snapshot " + schema + ".snapshots", "load_snapshot", schema + ".snapshots", 1},
	} {
		spans := p.SpansNamed(tt.span)
		require.Len(t, spans, tt.count, "spans named %q", tt.span)
		for _, span := range spans {
			assert.Equal(t, trace.SpanKindClient, span.SpanKind(), tt.span)
			a := telemetrytest.Attrs(span)
			for k, v := range server {
				assert.Equal(t, v, a[k], "%s: %s", tt.span, k)
			}
			assert.Equal(t, tt.op, a["db.operation.name"].AsString(), tt.span)
			if tt.collection != "" {
				assert.Equal(t, tt.collection, a["db.collection.name"].AsString(), tt.span)
			}
		}
	}
	appends := p.SpansNamed("append " + events)
	assert.Equal(t, "a", telemetrytest.Attrs(appends[0])["eventsource.stream_id"].AsString())
	assert.Equal(t, codes.Unset, appends[0].Status().Code)
	assert.Equal(t, codes.Error, appends[2].Status().Code)
	assert.Equal(t, "eventsource.concurrency_conflict", telemetrytest.Attrs(appends[2])["error.type"].AsString())

	failed := p.SpansNamed("read_all " + events)[0]
	assert.Equal(t, codes.Error, failed.Status().Code)
	assert.Equal(t, "42P01", telemetrytest.Attrs(failed)["db.response.status_code"].AsString(), "undefined_table")
	assert.Equal(t, int64(2), telemetrytest.Attrs(p.SpansNamed("read_all " + events)[1])["db.response.returned_rows"].AsInt64())
	assert.Equal(t, int64(2), telemetrytest.Attrs(p.SpansNamed("subscribe " + events)[0])["db.response.returned_rows"].AsInt64())

	assert.Equal(t, int64(3), p.Int64(t, "eventsource.events.appended"), "the retry stored nothing")
	assert.Equal(t, int64(1), p.Int64(t, "eventsource.conflicts"))
	assert.Equal(t, uint64(2), p.HistogramCount(t, "eventsource.append.duration"))
	assert.Equal(t, uint64(1), p.HistogramCount(t, "eventsource.append.duration",
		attribute.String("error.type", "eventsource.concurrency_conflict")))
	assert.True(t, p.HasMetric(t, "eventsource.subscription.lag"), "eventsource.subscription.lag not recorded")

	dbAttrs := []attribute.KeyValue{
		attribute.String("db.system.name", "postgresql"),
		attribute.String("db.operation.name", "append"),
		attribute.String("server.address", pool.Config().ConnConfig.Host),
		attribute.Int("server.port", int(pool.Config().ConnConfig.Port)),
		attribute.String("db.namespace", pool.Config().ConnConfig.Database),
		attribute.String("db.collection.name", events),
	}
	assert.Equal(t, uint64(2), p.HistogramCount(t, "db.client.operation.duration", dbAttrs...),
		"db.client.operation.duration: %s", p.Describe(t, "db.client.operation.duration"))
}

// TestSubscriptionLag checks the lag a subscription reports while it
// catches up: the positions between the last event it handed on and the
// newest one, and 0 once it is at the head.
func TestSubscriptionLag(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	pool := testenv.PostgresPool(t, 4)
	s := newStoreIn(t, pool, schemaName(t), pgstore.WithMeterProvider(p.MeterProvider), pgstore.WithPollInterval(20*time.Millisecond))
	pgstore.SetPageSize(s, 4)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx))
	_, err := s.Append(ctx, "a", eventsource.NoStream, events(10, "test.v1")...)
	require.NoError(t, err)

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lags []int64
	for e, err := range s.Subscribe(sctx, 0) {
		require.NoError(t, err)
		lags = append(lags, p.Int64(t, "eventsource.subscription.lag"))
		if e.Position == 10 {
			break
		}
	}
	// Pages of 4: read at 0 (10 behind), at 4 (6 behind), at 8 (2 behind).
	assert.Equal(t, []int64{10, 10, 10, 10, 6, 6, 6, 6, 2, 2}, lags)

	sctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	for _, err := range s.Subscribe(sctx, 10) {
		require.NoError(t, err)
	}
	assert.Equal(t, int64(0), p.Int64(t, "eventsource.subscription.lag"), "at the head")
}
