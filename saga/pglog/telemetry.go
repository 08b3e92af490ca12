package pglog

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/saga"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/saga/pglog"

// The log's operations, as recorded in db.operation.name.
type op int

const (
	opCreate op = iota
	opAppend
	opRenew
	opClaim
	opRelease
	opLoad
	opMigrate
	numOps
)

var opNames = [numOps]string{"create", "append", "renew", "claim", "release", "load", "migrate"}

// opTables are the tables the operations write (or, for load, read
// first), as db.collection.name (schema-qualified); "" for none.
var opTables = [numOps]string{"sagas", "transitions", "sagas", "sagas", "sagas", "sagas", ""}

// durationBuckets are the boundaries, in seconds, that the semantic
// conventions advise for db.client.operation.duration.
var durationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// instruments are a log's tracer and metric instruments, with the span
// options and attribute sets they use built once.
type instruments struct {
	tracer       trace.Tracer
	spanNames    [numOps]string
	spanOpts     [numOps][]trace.SpanStartOption
	attrs        [numOps][]attribute.KeyValue // for error sets
	duration     metric.Float64Histogram
	durationOpts [numOps][]metric.RecordOption
}

func newInstruments(pool *pgxpool.Pool, schema string, tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(tp, ScopeName)}
	var err error
	t.duration, err = m.Float64Histogram("db.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of database client operations."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		otel.Handle(err)
	}
	server := serverAttrs(pool)
	for o := range numOps {
		attrs := append([]attribute.KeyValue{semconv.DBSystemNamePostgreSQL, semconv.DBOperationName(opNames[o])}, server...)
		target := ""
		if opTables[o] != "" {
			target = schema + "." + opTables[o]
			attrs = append(attrs, semconv.DBCollectionName(target))
		} else if cfg := pool.Config(); cfg.ConnConfig.Database != "" {
			target = cfg.ConnConfig.Database
		}
		t.attrs[o] = attrs
		t.spanNames[o] = opNames[o]
		if target != "" {
			t.spanNames[o] += " " + target
		}
		t.spanOpts[o] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)}
		t.durationOpts[o] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	}
	return t
}

// serverAttrs returns server.address, server.port and db.namespace (the
// database name) of the pool's connection settings.
func serverAttrs(pool *pgxpool.Pool) []attribute.KeyValue {
	cc := pool.Config().ConnConfig
	var attrs []attribute.KeyValue
	if cc.Host != "" {
		attrs = append(attrs, semconv.ServerAddress(cc.Host))
		if cc.Port != 0 {
			attrs = append(attrs, semconv.ServerPort(int(cc.Port)))
		}
	}
	if cc.Database != "" {
		attrs = append(attrs, semconv.DBNamespace(cc.Database))
	}
	return attrs
}

// start starts the span of one operation, with the saga id, if any.
func (t *instruments) start(ctx context.Context, o op, id string) (context.Context, trace.Span, time.Time) {
	ctx, span := t.tracer.Start(ctx, t.spanNames[o], t.spanOpts[o]...)
	if id != "" && span.IsRecording() {
		span.SetAttributes(saga.AttrID.String(id))
	}
	return ctx, span, time.Now()
}

// end records the operation's duration and ends its span.
func (t *instruments) end(ctx context.Context, span trace.Span, o op, start time.Time, err error) {
	t.record(ctx, o, start, err)
	recordError(span, err)
	span.End()
}

// record records the duration of an operation that began at start.
func (t *instruments) record(ctx context.Context, o op, start time.Time, err error) {
	if !t.duration.Enabled(ctx) {
		return
	}
	d := time.Since(start).Seconds()
	if err == nil {
		t.duration.Record(ctx, d, t.durationOpts[o]...)
		return
	}
	attrs := append(t.attrs[o][:len(t.attrs[o]):len(t.attrs[o])], telemetry.ErrorType(err))
	if code := sqlState(err); code != "" {
		attrs = append(attrs, semconv.DBResponseStatusCode(code))
	}
	t.duration.Record(ctx, d, metric.WithAttributes(attrs...))
}

// recordError marks span as failed with err, adding the PostgreSQL error
// code, if any, as db.response.status_code.
func recordError(span trace.Span, err error) {
	if err == nil || !span.IsRecording() {
		return
	}
	telemetry.RecordError(span, err)
	if code := sqlState(err); code != "" {
		span.SetAttributes(semconv.DBResponseStatusCode(code))
	}
}

// sqlState returns the SQLSTATE code of a PostgreSQL error in err's chain,
// or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
