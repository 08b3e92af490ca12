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
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/dbconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/pgtel"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

type op int

const (
	opRead op = iota
	opMigrate
	opAppend
)

var testOps = []pgtel.Op{
	opRead:    {Name: "read", Table: "things"},
	opMigrate: {Name: "migrate"},
	opAppend:  {Name: pgtel.Batch, Table: "things"},
}

var duration = dbconv.ClientOperationDuration{}.Name()

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

func newOps(t *testing.T, p *telemetrytest.Providers, url string, optIn bool) *pgtel.Ops[op] {
	return pgtel.New[op](lazyPool(t, url), "sch", p.TracerProvider.Tracer("test"), p.MeterProvider.Meter("test"), testOps, optIn)
}

func TestOps(t *testing.T) {
	p := telemetrytest.New(t)
	ops := newOps(t, p, "postgres://u@db.example:6543/shop", false)

	// The span name is the summary: {db.operation.name} {target}.
	assert.Equal(t, "read sch.things", ops.SpanName(opRead))
	assert.Equal(t, "migrate shop|sch", ops.SpanName(opMigrate), "no table: the target is db.namespace")
	assert.Equal(t, "BATCH sch.things", ops.SpanName(opAppend))

	ctx, span, start := ops.Start(context.Background(), opRead)
	assert.True(t, trace.SpanFromContext(ctx).SpanContext().Equal(span.SpanContext()), "the context carries the span")
	ops.SetReturnedRows(span, 3)
	ops.End(ctx, span, opRead, start, nil)
	_, span, start = ops.Start(context.Background(), opMigrate)
	pgErr := &pgconn.PgError{Code: "42P01"}
	ops.End(ctx, span, opMigrate, start, fmt.Errorf("wrapped: %w", pgErr))

	spans := p.Spans.Ended()
	require.Len(t, spans, 2)
	server := []attribute.KeyValue{
		semconv.DBSystemNamePostgreSQL,
		semconv.DBNamespace("shop|sch"),
		semconv.ServerAddress("db.example"),
		semconv.ServerPort(6543), // not the default port: recorded
	}
	read := append([]attribute.KeyValue{semconv.DBOperationName("read"), semconv.DBCollectionName("sch.things"),
		semconv.DBQuerySummary("read sch.things")}, server...)
	assert.ElementsMatch(t, read, spans[0].Attributes(), "no db.response.returned_rows without Opt-In")
	assert.Equal(t, trace.SpanKindClient, spans[0].SpanKind())
	assert.Equal(t, codes.Unset, spans[0].Status().Code)

	assert.Equal(t, codes.Error, spans[1].Status().Code)
	got := telemetrytest.Attrs(spans[1])
	assert.Equal(t, "42P01", got[semconv.DBResponseStatusCodeKey].AsString())
	assert.Equal(t, "42P01", got[semconv.ErrorTypeKey].AsString(), "error.type is the SQLSTATE")
	assert.Equal(t, "migrate shop|sch", got[semconv.DBQuerySummaryKey].AsString())
	assert.NotContains(t, got, semconv.DBCollectionNameKey)

	assert.Equal(t, uint64(1), p.HistogramCount(t, duration, read...), p.Describe(t, duration))
	migrate := append([]attribute.KeyValue{semconv.DBOperationName("migrate"), semconv.DBQuerySummary("migrate shop|sch")}, server...)
	assert.Equal(t, uint64(1), p.HistogramCount(t, duration,
		append(migrate, semconv.ErrorTypeKey.String("42P01"), semconv.DBResponseStatusCode("42P01"))...),
		p.Describe(t, duration))
	assert.Equal(t, "s", p.Metric(t, duration).Unit)
}

// TestDefaultPortIsOptIn: server.port is Conditionally Required only for a
// port other than PostgreSQL's, and Opt-In at 5432.
func TestDefaultPortIsOptIn(t *testing.T) {
	for _, optIn := range []bool{false, true} {
		p := telemetrytest.New(t)
		ops := newOps(t, p, "postgres://u@db.example/shop", optIn)
		ops.Record(context.Background(), opRead, time.Now(), nil)
		_, span, start := ops.Start(context.Background(), opRead)
		ops.SetReturnedRows(span, 7)
		ops.End(context.Background(), span, opRead, start, nil)

		attrs := telemetrytest.Attrs(p.Spans.Ended()[0])
		_, hasPort := attrs[semconv.ServerPortKey]
		_, hasRows := attrs[semconv.DBResponseReturnedRowsKey]
		assert.Equal(t, optIn, hasPort, "server.port 5432 on the span with Opt-In %v", optIn)
		assert.Equal(t, optIn, hasRows, "db.response.returned_rows with Opt-In %v", optIn)
		if optIn {
			assert.Equal(t, int64(7), attrs[semconv.DBResponseReturnedRowsKey].AsInt64())
		}
		want := []attribute.KeyValue{semconv.DBSystemNamePostgreSQL, semconv.DBOperationName("read"),
			semconv.DBCollectionName("sch.things"), semconv.DBNamespace("shop|sch"),
			semconv.DBQuerySummary("read sch.things"), semconv.ServerAddress("db.example")}
		if optIn {
			want = append(want, semconv.ServerPort(5432))
		}
		assert.Equal(t, uint64(2), p.HistogramCount(t, duration, want...), p.Describe(t, duration))
	}
}

func TestSetBatchSize(t *testing.T) {
	p := telemetrytest.New(t)
	ops := newOps(t, p, "postgres://u@db.example/shop", false)
	for _, n := range []int{1, 5} {
		_, span, start := ops.Start(context.Background(), opAppend)
		pgtel.SetBatchSize(span, n)
		ops.End(context.Background(), span, opAppend, start, nil)
	}
	spans := p.Spans.Ended()
	assert.NotContains(t, telemetrytest.Attrs(spans[0]), semconv.DBOperationBatchSizeKey, "a batch of one is no batch")
	assert.Equal(t, int64(5), telemetrytest.Attrs(spans[1])[semconv.DBOperationBatchSizeKey].AsInt64())
	assert.Equal(t, pgtel.Batch, telemetrytest.Attrs(spans[1])[semconv.DBOperationNameKey].AsString())
}

func TestNamespace(t *testing.T) {
	assert.Equal(t, "db|sch", pgtel.Namespace("db", "sch"))
	assert.Equal(t, "sch", pgtel.Namespace("", "sch"))
	assert.Equal(t, "db", pgtel.Namespace("db", ""))
}

func TestRecord(t *testing.T) {
	p := telemetrytest.New(t)
	ops := newOps(t, p, "postgres://u@db.example:5433/shop", false)
	ops.Record(context.Background(), opRead, time.Now(), nil)
	assert.Empty(t, p.Spans.Ended(), "Record starts no span")
	assert.Equal(t, uint64(1), p.HistogramCount(t, duration,
		semconv.DBSystemNamePostgreSQL, semconv.DBOperationName("read"),
		semconv.ServerAddress("db.example"), semconv.ServerPort(5433),
		semconv.DBNamespace("shop|sch"), semconv.DBCollectionName("sch.things"),
		semconv.DBQuerySummary("read sch.things")),
		p.Describe(t, duration))
}

func TestSQLState(t *testing.T) {
	assert.Equal(t, "23505", pgtel.SQLState(fmt.Errorf("x: %w", &pgconn.PgError{Code: "23505"})))
	assert.Empty(t, pgtel.SQLState(errors.New("plain")))
	assert.Empty(t, pgtel.SQLState(nil))
}

// TestUntraced: under a context marked untraced, Start and Finish make no
// span, not even under a sampler that ignores the parent (the test
// providers sample everything), and the durations are recorded.
func TestUntraced(t *testing.T) {
	p := telemetrytest.New(t)
	ops := newOps(t, p, "postgres://u@db.example/shop", false)
	ctx := telemetry.Untraced(context.Background())

	sctx, span, start := ops.Start(ctx, opRead)
	assert.False(t, span.IsRecording())
	assert.False(t, trace.SpanContextFromContext(sctx).IsValid(), "the context carries no span")
	ops.End(sctx, span, opRead, start, nil)
	ops.Finish(ctx, opRead, time.Now(), errors.New("boom"), 0, true)
	assert.Empty(t, p.Spans.Ended(), "spans under an untraced context")
	assert.Empty(t, p.Spans.Started())
	var n uint64
	for _, dp := range p.Metric(t, duration).Data.(metricdata.Histogram[float64]).DataPoints {
		n += dp.Count
	}
	assert.Equal(t, uint64(2), n, "the durations are recorded")

	// Under a caller's span too: no child.
	pctx, parent := p.TracerProvider.Tracer("test").Start(context.Background(), "caller")
	_, span, start = ops.Start(telemetry.Untraced(pctx), opRead)
	assert.False(t, span.IsRecording())
	ops.End(pctx, span, opRead, start, nil)
	parent.End()
	assert.Len(t, p.Spans.Ended(), 1, "only the caller's span")
}
