package pgtel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/pgtel"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

type op int

const (
	opRead op = iota
	opMigrate
)

// lazyPool returns a pool that never connects: Ops reads only its
// configuration.
func lazyPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func TestOps(t *testing.T) {
	p := telemetrytest.New(t)
	pool := lazyPool(t, "postgres://u@db.example:6543/shop")
	ops := pgtel.New[op](pool, "sch", p.TracerProvider.Tracer("test"), p.MeterProvider.Meter("test"),
		[]pgtel.Op{opRead: {Name: "read", Table: "things"}, opMigrate: {Name: "migrate"}})

	assert.Equal(t, "read sch.things", ops.SpanName(opRead))
	assert.Equal(t, "migrate shop", ops.SpanName(opMigrate))

	ctx, span, start := ops.Start(context.Background(), opRead)
	assert.True(t, trace.SpanFromContext(ctx).SpanContext().Equal(span.SpanContext()), "the context carries the span")
	ops.End(ctx, span, opRead, start, nil)
	_, span, start = ops.Start(context.Background(), opMigrate)
	pgErr := &pgconn.PgError{Code: "42P01"}
	ops.End(ctx, span, opMigrate, start, fmt.Errorf("wrapped: %w", pgErr))

	spans := p.Spans.Ended()
	require.Len(t, spans, 2)
	want := map[attribute.Key]attribute.Value{
		"db.system.name":     attribute.StringValue("postgresql"),
		"db.operation.name":  attribute.StringValue("read"),
		"db.collection.name": attribute.StringValue("sch.things"),
		"db.namespace":       attribute.StringValue("shop"),
		"server.address":     attribute.StringValue("db.example"),
		"server.port":        attribute.IntValue(6543),
	}
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range spans[0].Attributes() {
		got[kv.Key] = kv.Value
	}
	assert.Equal(t, want, got)
	assert.Equal(t, trace.SpanKindClient, spans[0].SpanKind())
	assert.Equal(t, codes.Unset, spans[0].Status().Code)

	assert.Equal(t, codes.Error, spans[1].Status().Code)
	got = map[attribute.Key]attribute.Value{}
	for _, kv := range spans[1].Attributes() {
		got[kv.Key] = kv.Value
	}
	assert.Equal(t, "42P01", got["db.response.status_code"].AsString())
	assert.NotContains(t, got, attribute.Key("db.collection.name"))

	server := []attribute.KeyValue{
		attribute.String("db.system.name", "postgresql"),
		attribute.String("server.address", "db.example"),
		attribute.Int("server.port", 6543),
		attribute.String("db.namespace", "shop"),
	}
	assert.Equal(t, uint64(1), p.HistogramCount(t, "db.client.operation.duration",
		append(server, attribute.String("db.operation.name", "read"), attribute.String("db.collection.name", "sch.things"))...),
		p.Describe(t, "db.client.operation.duration"))
	assert.Equal(t, uint64(1), p.HistogramCount(t, "db.client.operation.duration",
		append(server, attribute.String("db.operation.name", "migrate"), attribute.String("error.type", "42P01"),
			attribute.String("db.response.status_code", "42P01"))...),
		p.Describe(t, "db.client.operation.duration"))
}

func TestRecord(t *testing.T) {
	p := telemetrytest.New(t)
	ops := pgtel.New[op](lazyPool(t, "postgres://u@db.example/shop"), "sch", p.TracerProvider.Tracer("test"), p.MeterProvider.Meter("test"),
		[]pgtel.Op{opRead: {Name: "read", Table: "things"}})
	ops.Record(context.Background(), opRead, time.Now(), nil)
	assert.Empty(t, p.Spans.Ended(), "Record starts no span")
	assert.Equal(t, uint64(1), p.HistogramCount(t, "db.client.operation.duration",
		attribute.String("db.system.name", "postgresql"), attribute.String("db.operation.name", "read"),
		attribute.String("server.address", "db.example"), attribute.Int("server.port", 5432),
		attribute.String("db.namespace", "shop"), attribute.String("db.collection.name", "sch.things")),
		p.Describe(t, "db.client.operation.duration"))
}

func TestSQLState(t *testing.T) {
	assert.Equal(t, "23505", pgtel.SQLState(fmt.Errorf("x: %w", &pgconn.PgError{Code: "23505"})))
	assert.Empty(t, pgtel.SQLState(errors.New("plain")))
	assert.Empty(t, pgtel.SQLState(nil))
}
