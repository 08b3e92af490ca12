package pglog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/pgtel"
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
	opReopen
	opMigrate
	numOps
)

// ops are the log's operations, with the tables they write (or, for load,
// read first) as db.collection.name (schema-qualified).
var ops = [numOps]pgtel.Op{
	opCreate:  {Name: "create", Table: "sagas"},
	opAppend:  {Name: "append", Table: "transitions"},
	opRenew:   {Name: "renew", Table: "sagas"},
	opClaim:   {Name: "claim", Table: "sagas"},
	opRelease: {Name: "release", Table: "sagas"},
	opLoad:    {Name: "load", Table: "sagas"},
	opReopen:  {Name: "reopen", Table: "sagas"},
	opMigrate: {Name: "migrate"},
}

// instruments are a log's tracer and metric instruments, those of every
// PostgreSQL client ([pgtel.Ops]).
type instruments struct {
	*pgtel.Ops[op]
	// spans says when a span would be a non-recording one passing ctx's
	// span context on: start starts none then.
	spans telemetry.SpanGate
}

func newInstruments(pool *pgxpool.Pool, schema string, tp trace.TracerProvider, mp metric.MeterProvider, optIn bool) *instruments {
	tracer := telemetry.Tracer(tp, ScopeName)
	return &instruments{
		Ops:   pgtel.New[op](pool, schema, tracer, telemetry.Meter(mp, ScopeName), ops[:], optIn),
		spans: telemetry.NewSpanGate(tp, tracer),
	}
}

// AttrBatchSize is, on the span of a create or append that went in a
// batch of two writes or more ([WithGroupCommit]), the number of the
// log's writes in the batch. It is not the semantic conventions'
// db.operation.batch.size, which is for the span of a batch operation:
// the span is of one write, which waited for the batch and went in it.
const AttrBatchSize = attribute.Key("pglog.batch_size")

// batchSize records on the span of a write that went in a batch of n
// writes how many there were. A write that ran on its own (n < 2: alone,
// or again on its own after its batch failed) has none.
func batchSize(span trace.Span, n int) {
	if n > 1 && span.IsRecording() {
		span.SetAttributes(AttrBatchSize.Int(n))
	}
}

// noopSpan is the span of an operation that start does not trace.
var noopSpan = trace.SpanFromContext(context.Background())

// start starts the span of one operation, with the saga id, if any,
// unless it could only be a non-recording one passing ctx's span context
// on (no SDK, and ctx's span does not record): then it returns ctx as it
// is and a span that records nothing, saving the append of a saga's step
// two or three allocations.
func (t *instruments) start(ctx context.Context, o op, id string) (context.Context, trace.Span, time.Time) {
	if t.spans.Skip(ctx) {
		return ctx, noopSpan, time.Now()
	}
	ctx, span, start := t.Start(ctx, o)
	if id != "" && span.IsRecording() {
		span.SetAttributes(saga.AttrID.String(brief.String(id)))
	}
	return ctx, span, start
}
