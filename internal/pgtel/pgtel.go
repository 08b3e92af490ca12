// Package pgtel instruments the PostgreSQL clients of the module
// (eventsource/pgstore, saga/pglog) the way the OpenTelemetry semantic
// conventions for database clients ask: a client span per operation,
// named "{db.operation.name} {target}", and the histogram
// db.client.operation.duration, both with db.system.name, db.operation.name,
// db.collection.name, db.namespace, server.address and server.port, and on
// failure error.type and db.response.status_code (the SQLSTATE).
//
// A package lists its operations once, as [Op] values indexed by its own
// integer type, and builds an [Ops] from them when it is constructed; the
// span options and attribute sets are built then, so that a call of an
// operation allocates nothing for them.
package pgtel

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// DurationBuckets are the boundaries, in seconds, that the semantic
// conventions advise for db.client.operation.duration.
var DurationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// Op describes one operation of a client.
type Op struct {
	// Name is the operation's db.operation.name.
	Name string
	// Table is the table the operation uses, recorded schema-qualified as
	// db.collection.name and named in the span; "" for none, in which case
	// the span names the database.
	Table string
}

// Ops are the tracer and the db.client.operation.duration histogram of a
// client, with the span names, span options and attribute sets of each of
// its operations, indexed by O. It is safe for concurrent use.
type Ops[O ~int] struct {
	// Tracer is the tracer the spans of [Ops.Start] come from.
	Tracer       trace.Tracer
	duration     metric.Float64Histogram
	spanNames    []string
	spanOpts     [][]trace.SpanStartOption
	attrs        [][]attribute.KeyValue // for error sets
	durationOpts [][]metric.RecordOption
}

// New returns the instruments of the operations ops (ops[o] describes
// operation o) of a client of pool whose tables are in schema. The
// histogram comes from meter; an error creating it goes to otel.Handle.
func New[O ~int](pool *pgxpool.Pool, schema string, tracer trace.Tracer, meter metric.Meter, ops []Op) *Ops[O] {
	t := &Ops[O]{
		Tracer:       tracer,
		spanNames:    make([]string, len(ops)),
		spanOpts:     make([][]trace.SpanStartOption, len(ops)),
		attrs:        make([][]attribute.KeyValue, len(ops)),
		durationOpts: make([][]metric.RecordOption, len(ops)),
	}
	var err error
	t.duration, err = meter.Float64Histogram("db.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of database client operations."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	if err != nil {
		otel.Handle(err)
	}
	server := serverAttrs(pool)
	for o, op := range ops {
		attrs := append([]attribute.KeyValue{semconv.DBSystemNamePostgreSQL, semconv.DBOperationName(op.Name)}, server...)
		target := ""
		if op.Table != "" {
			target = schema + "." + op.Table
			attrs = append(attrs, semconv.DBCollectionName(target))
		} else if cfg := pool.Config(); cfg.ConnConfig.Database != "" {
			target = cfg.ConnConfig.Database
		}
		t.attrs[o] = attrs
		t.spanNames[o] = op.Name
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

// SpanName returns the name of the spans of operation o.
func (t *Ops[O]) SpanName(o O) string { return t.spanNames[o] }

// SpanOptions returns the start options of the spans of operation o: kind
// client and the operation's attributes. The caller must not modify the
// slice; append to a copy capped at its length.
func (t *Ops[O]) SpanOptions(o O) []trace.SpanStartOption { return t.spanOpts[o] }

// Start starts the span of operation o and returns it with the time the
// operation starts.
func (t *Ops[O]) Start(ctx context.Context, o O) (context.Context, trace.Span, time.Time) {
	ctx, span := t.Tracer.Start(ctx, t.spanNames[o], t.spanOpts[o]...)
	return ctx, span, time.Now()
}

// End records the duration of operation o, which began at start and ended
// with err, marks span as failed if err is not nil, and ends span.
func (t *Ops[O]) End(ctx context.Context, span trace.Span, o O, start time.Time, err error) {
	t.Record(ctx, o, start, err)
	RecordError(span, err)
	span.End()
}

// Record records the duration of operation o, which began at start and
// ended with err: with error.type and db.response.status_code if err is
// not nil.
func (t *Ops[O]) Record(ctx context.Context, o O, start time.Time, err error) {
	if !t.duration.Enabled(ctx) {
		return
	}
	d := time.Since(start).Seconds()
	if err == nil {
		t.duration.Record(ctx, d, t.durationOpts[o]...)
		return
	}
	attrs := append(t.attrs[o][:len(t.attrs[o]):len(t.attrs[o])], telemetry.ErrorType(err))
	if code := SQLState(err); code != "" {
		attrs = append(attrs, semconv.DBResponseStatusCode(code))
	}
	t.duration.Record(ctx, d, metric.WithAttributes(attrs...))
}

// RecordError marks span as failed with err, adding the PostgreSQL error
// code, if any, as db.response.status_code. It does nothing if err is nil
// or span is not recording.
func RecordError(span trace.Span, err error) {
	if err == nil || !span.IsRecording() {
		return
	}
	telemetry.RecordError(span, err)
	if code := SQLState(err); code != "" {
		span.SetAttributes(semconv.DBResponseStatusCode(code))
	}
}

// SQLState returns the SQLSTATE code of a PostgreSQL error in err's chain,
// or "".
func SQLState(err error) string { return telemetry.SQLState(err) }
