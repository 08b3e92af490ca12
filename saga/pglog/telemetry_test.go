package pglog_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

func TestTelemetry(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	l := newLogIn(t, pool, schema, pglog.WithTracerProvider(p.TracerProvider), pglog.WithMeterProvider(p.MeterProvider))
	ctx := testenv.Context(t, 10*time.Second)

	// Before Migrate, a load fails with PostgreSQL's error code.
	_, _, err := l.Load(ctx, "a")
	require.Error(t, err)
	require.NoError(t, l.Migrate(ctx))
	require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order", Version: 1}, "me", time.Minute))
	require.NoError(t, l.Append(ctx, "a", "me", saga.Transition{Seq: 1, Step: "s", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}))
	require.ErrorIs(t, l.Append(ctx, "a", "other", saga.Transition{Seq: 2}), saga.ErrLeaseLost)
	_, err = l.Renew(ctx, "me", time.Minute, []string{"a", "b"})
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx, "a", "me"))
	recs, err := l.Claim(ctx, "you", []string{"order"}, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	_, ts, err := l.Load(ctx, "a")
	require.NoError(t, err)
	require.Len(t, ts, 1)

	cc := pool.Config().ConnConfig
	server := map[attribute.Key]attribute.Value{
		"db.system.name": attribute.StringValue("postgresql"),
		"db.namespace":   attribute.StringValue(cc.Database),
		"server.address": attribute.StringValue(cc.Host),
		"server.port":    attribute.IntValue(int(cc.Port)),
	}
	sagas, transitions := schema+".sagas", schema+".transitions"
	for _, tt := range []struct {
		span, op, collection, sagaID string
		count                        int
	}{
		{"migrate " + cc.Database, "migrate", "", "", 1},
		{"create " + sagas, "create", sagas, "a", 1},
		{"append " + transitions, "append", transitions, "a", 2},
		{"renew " + sagas, "renew", sagas, "", 1},
		{"release " + sagas, "release", sagas, "a", 1},
		{"claim " + sagas, "claim", sagas, "", 1},
		{"load " + sagas, "load", sagas, "a", 2},
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
			if tt.sagaID != "" {
				assert.Equal(t, tt.sagaID, a["saga.id"].AsString(), tt.span)
			}
		}
	}
	appends := p.SpansNamed("append " + transitions)
	assert.Equal(t, codes.Unset, appends[0].Status().Code)
	assert.Equal(t, codes.Error, appends[1].Status().Code)
	assert.Equal(t, "saga.lease_lost", telemetrytest.Attrs(appends[1])["error.type"].AsString())

	loads := p.SpansNamed("load " + sagas)
	assert.Equal(t, codes.Error, loads[0].Status().Code)
	assert.Equal(t, "42P01", telemetrytest.Attrs(loads[0])["db.response.status_code"].AsString(), "undefined_table")
	assert.Equal(t, int64(1), telemetrytest.Attrs(loads[1])["db.response.returned_rows"].AsInt64(), "transitions loaded")
	assert.Equal(t, int64(1), telemetrytest.Attrs(p.SpansNamed("claim " + sagas)[0])["db.response.returned_rows"].AsInt64(), "sagas claimed")
	assert.Equal(t, int64(1), telemetrytest.Attrs(p.SpansNamed("renew " + sagas)[0])["db.response.returned_rows"].AsInt64(), "leases lost")

	dbAttrs := []attribute.KeyValue{
		attribute.String("db.system.name", "postgresql"),
		attribute.String("db.operation.name", "append"),
		attribute.String("server.address", cc.Host),
		attribute.Int("server.port", int(cc.Port)),
		attribute.String("db.namespace", cc.Database),
		attribute.String("db.collection.name", transitions),
	}
	assert.Equal(t, uint64(1), p.HistogramCount(t, "db.client.operation.duration", dbAttrs...),
		"db.client.operation.duration: %s", p.Describe(t, "db.client.operation.duration"))
	assert.Equal(t, uint64(1), p.HistogramCount(t, "db.client.operation.duration", append(dbAttrs, attribute.String("error.type", "saga.lease_lost"))...),
		"db.client.operation.duration: %s", p.Describe(t, "db.client.operation.duration"))
}
