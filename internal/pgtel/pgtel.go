// Package pgtel instruments the PostgreSQL clients of the module
// (eventsource/pgstore, saga/pglog, cqrs/pgcheckpoint) the way the
// OpenTelemetry semantic conventions (v1.40) for PostgreSQL clients ask: a
// client span per operation and the histogram
// db.client.operation.duration, both with
//
//   - db.system.name "postgresql";
//   - db.operation.name, the client's own name of the operation, as the
//     conventions advise for a higher-level API that builds its queries
//     itself, or "BATCH" for a batch of different statements (see
//     [Batch]);
//   - db.collection.name, the schema-qualified table, when the operation
//     works on one;
//   - db.namespace, "{database}|{schema}" (or whichever of the two is
//     known), the schema being the one the client keeps its tables in;
//   - db.query.summary, "{db.operation.name} {target}", the target being
//     db.collection.name or, for an operation on no table, db.namespace;
//     it is also the span's name, as the conventions' span-name rule says
//     when a summary is available;
//   - server.address and, unless it is PostgreSQL's default 5432,
//     server.port (the conventions require it only for another port and
//     make it Opt-In otherwise);
//   - on failure, error.type (from [telemetry.ErrorType]: the SQLSTATE of
//     a PostgreSQL error) and db.response.status_code (the SQLSTATE).
//
// With the client's WithOptInAttributes option, spans also carry the
// conventions' Opt-In attributes: server.port at the default port, and
// db.response.returned_rows where the client sets it ([Ops.SetReturnedRows]).
// The span of a batch carries db.operation.batch.size ([SetBatchSize]).
//
// Calls made under a context marked by [telemetry.Untraced] (a saga
// orchestrator's lease renewals and recovery ticks, say) start no span but
// record their durations all the same.
//
// A package lists its operations once, as [Op] values indexed by its own
// integer type, and builds an [Ops] from them when it is constructed; the
// span names, span options and attribute sets are built then, so that a
// call of an operation allocates nothing for them.
package pgtel

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/dbconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// DurationBuckets are the boundaries, in seconds, that the semantic
// conventions advise for db.client.operation.duration.
var DurationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// Batch is the db.operation.name of an operation that sends several
// different statements at once: the conventions name a batch "BATCH"
// when its statements do not share one operation name.
const Batch = "BATCH"

// DefaultPort is PostgreSQL's port, which server.port is left out for
// unless Opt-In attributes are asked for.
const DefaultPort = 5432

// Op describes one operation of a client.
type Op struct {
	// Name is the operation's db.operation.name: the client's name for
	// it, or [Batch].
	Name string
	// Table is the table the operation uses, recorded schema-qualified as
	// db.collection.name and named in the summary; "" for none, in which
	// case the summary names db.namespace.
	Table string
}

// Ops are the tracer and the db.client.operation.duration histogram of a
// client, with the span names, span options and attribute sets of each of
// its operations, indexed by O. It is safe for concurrent use.
type Ops[O ~int] struct {
	// Tracer is the tracer the spans of [Ops.Start] come from.
	Tracer       trace.Tracer
	duration     metric.Float64Histogram
	optIn        bool
	spanNames    []string
	spanOpts     [][]trace.SpanStartOption
	attrs        [][]attribute.KeyValue // of the metric, for error sets
	durationOpts [][]metric.RecordOption
}

// New returns the instruments of the operations ops (ops[o] describes
// operation o) of a client of pool whose tables are in schema. The
// histogram comes from meter; an error creating it goes to otel.Handle.
// optIn says whether the client records the Opt-In attributes.
func New[O ~int](pool *pgxpool.Pool, schema string, tracer trace.Tracer, meter metric.Meter, ops []Op, optIn bool) *Ops[O] {
	t := &Ops[O]{
		Tracer:       tracer,
		optIn:        optIn,
		spanNames:    make([]string, len(ops)),
		spanOpts:     make([][]trace.SpanStartOption, len(ops)),
		attrs:        make([][]attribute.KeyValue, len(ops)),
		durationOpts: make([][]metric.RecordOption, len(ops)),
	}
	var d dbconv.ClientOperationDuration
	var err error
	t.duration, err = meter.Float64Histogram(d.Name(), metric.WithUnit(d.Unit()),
		metric.WithDescription(d.Description()),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	if err != nil {
		otel.Handle(err)
	}
	cc := pool.Config().ConnConfig
	namespace := Namespace(cc.Database, schema)
	var server []attribute.KeyValue
	if cc.Host != "" {
		server = append(server, semconv.ServerAddress(cc.Host))
		if cc.Port != 0 && (cc.Port != DefaultPort || optIn) {
			server = append(server, semconv.ServerPort(int(cc.Port)))
		}
	}
	for o, op := range ops {
		target := namespace
		attrs := []attribute.KeyValue{semconv.DBSystemNamePostgreSQL, semconv.DBOperationName(op.Name)}
		if op.Table != "" {
			target = schema + "." + op.Table
			attrs = append(attrs, semconv.DBCollectionName(target))
		}
		if namespace != "" {
			attrs = append(attrs, semconv.DBNamespace(namespace))
		}
		summary := op.Name
		if target != "" {
			summary += " " + target
		}
		attrs = append(attrs, semconv.DBQuerySummary(summary))
		attrs = append(attrs, server...)
		t.attrs[o] = attrs
		t.spanNames[o] = summary
		t.spanOpts[o] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)}
		t.durationOpts[o] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	}
	return t
}

// Namespace returns the db.namespace of a schema of a database:
// "{database}|{schema}", or whichever of the two is not empty.
func Namespace(database, schema string) string {
	switch {
	case database == "":
		return schema
	case schema == "":
		return database
	}
	return database + "|" + schema
}

// SpanName returns the name of the spans of operation o: its
// db.query.summary.
func (t *Ops[O]) SpanName(o O) string { return t.spanNames[o] }

// SpanOptions returns the start options of the spans of operation o: kind
// client and the operation's attributes. The caller must not modify the
// slice; append to a copy capped at its length.
func (t *Ops[O]) SpanOptions(o O) []trace.SpanStartOption { return t.spanOpts[o] }

// OptIn reports whether the client records the Opt-In attributes.
func (t *Ops[O]) OptIn() bool { return t.optIn }

// Start starts the span of operation o and returns it with the time the
// operation starts. Under a context marked by [telemetry.Untraced] it
// starts no span: it returns ctx as it is and a span that records
// nothing (so that [Ops.End] still records the duration).
func (t *Ops[O]) Start(ctx context.Context, o O) (context.Context, trace.Span, time.Time) {
	if telemetry.IsUntraced(ctx) {
		return ctx, noSpan, time.Now()
	}
	ctx, span := t.Tracer.Start(ctx, t.spanNames[o], t.spanOpts[o]...)
	return ctx, span, time.Now()
}

// noSpan is a span that records nothing, and whose End does nothing.
var noSpan = trace.SpanFromContext(context.Background())

// End records the duration of operation o, which began at start and ended
// with err, marks span as failed if err is not nil, and ends span.
func (t *Ops[O]) End(ctx context.Context, span trace.Span, o O, start time.Time, err error) {
	t.Record(ctx, o, start, err)
	RecordError(span, err)
	span.End()
}

// Finish records operation o, which began at start without a span and
// ended with err: its duration, and, if withSpan, a span from start to
// now, with db.response.returned_rows set to rows if rows is not
// negative (and Opt-In attributes are asked for). It is how an operation
// run on a timer records a span only when it did something: an idle
// poll would otherwise start a root span at every tick. Under a context
// marked by [telemetry.Untraced] it records no span, whatever withSpan.
func (t *Ops[O]) Finish(ctx context.Context, o O, start time.Time, err error, rows int, withSpan bool) {
	t.Record(ctx, o, start, err)
	if !withSpan || telemetry.IsUntraced(ctx) {
		return
	}
	opts := t.spanOpts[o]
	_, span := t.Tracer.Start(ctx, t.spanNames[o], append(opts[:len(opts):len(opts)], trace.WithTimestamp(start))...)
	if rows >= 0 {
		t.SetReturnedRows(span, rows)
	}
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

// SetReturnedRows sets db.response.returned_rows, an Opt-In attribute, on
// span: only if the client records Opt-In attributes and span is
// recording.
func (t *Ops[O]) SetReturnedRows(span trace.Span, n int) {
	if t.optIn && span.IsRecording() {
		span.SetAttributes(semconv.DBResponseReturnedRows(n))
	}
}

// SetBatchSize sets db.operation.batch.size to n on the span of a batch,
// if it is recording. The conventions count a batch only from two
// statements on, so a smaller n sets nothing.
func SetBatchSize(span trace.Span, n int) {
	if n >= 2 && span.IsRecording() {
		span.SetAttributes(semconv.DBOperationBatchSize(n))
	}
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
