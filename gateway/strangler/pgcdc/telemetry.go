package pgcdc

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/gateway/strangler/pgcdc"

// The names of the consumer's metrics.
const (
	// MetricChanges counts the changes handled (delivered to a handler
	// that then succeeded), by table and operation.
	MetricChanges = "pgcdc.changes"
	// MetricLag is the replication lag, in bytes of write-ahead log:
	// the server's WAL end, as last reported, less the position the
	// consumer confirmed.
	MetricLag = "pgcdc.lag"
)

// SpanOperation is the first word of the name of a transaction's span,
// "process {slot}", and its messaging.operation.name.
const SpanOperation = "process"

// The package's own attribute keys.
const (
	// AttrOperation is a change's [Op] on the changes counter.
	AttrOperation = attribute.Key("pgcdc.operation")
	// AttrXID is a transaction's id, on its span.
	AttrXID = attribute.Key("pgcdc.xid")
	// AttrCommitLSN is a transaction's commit LSN, on its span, as
	// PostgreSQL writes it ("16/B374D848").
	AttrCommitLSN = attribute.Key("pgcdc.commit_lsn")
	// AttrAttempts is how many times the handler was called with the
	// transaction, on its span.
	AttrAttempts = attribute.Key("pgcdc.attempts")
)

// EventRetry is the name of the span event of a failed handler attempt
// that the consumer tries again, with error.type and [AttrAttempts].
const EventRetry = "pgcdc.retry"

// spanAttrs are the attributes of every span, and the database they name.
type spanAttrs struct {
	database string
	attrs    []attribute.KeyValue
}

// instruments are a consumer's tracer and metric instruments, and the
// span options and attribute sets built once at construction.
type instruments struct {
	tracer   trace.Tracer
	spanName string
	// spanAttrs are the attributes of every span, replaced when setting
	// up finds the database (db.namespace) other than the connection
	// string's, which may name none.
	spanAttrs atomic.Pointer[spanAttrs]
	changes   metric.Int64Counter
	// changeOpts are the options of the changes counter per table and op.
	changeOpts map[string]map[Op][]metric.AddOption
	lag        metric.Int64ObservableGauge
	lagOpts    []metric.ObserveOption
	reg        *telemetry.Registration
}

var ops = []Op{OpInsert, OpUpdate, OpDelete, OpTruncate}

func newInstruments(c *Consumer, cfg *config, cc *pgconn.Config) *instruments {
	t := &instruments{
		tracer:     telemetry.Tracer(cfg.tracerProvider, ScopeName),
		spanName:   SpanOperation + " " + c.slot,
		changeOpts: map[string]map[Op][]metric.AddOption{},
	}
	attrs := []attribute.KeyValue{
		semconv.DBSystemNamePostgreSQL,
		semconv.DBNamespace(cc.Database),
		semconv.ServerAddress(cc.Host),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName(SpanOperation),
		semconv.MessagingConsumerGroupName(c.slot),
		semconv.MessagingDestinationName(c.publication),
	}
	if cc.Port != 5432 {
		attrs = append(attrs, semconv.ServerPort(int(cc.Port)))
	}
	t.spanAttrs.Store(&spanAttrs{cc.Database, attrs})
	slot := semconv.MessagingConsumerGroupName(c.slot)
	for _, tb := range c.tables {
		byOp := map[Op][]metric.AddOption{}
		for _, op := range ops {
			byOp[op] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				semconv.DBCollectionName(tb.String()), AttrOperation.String(string(op)), slot))}
		}
		t.changeOpts[tb.String()] = byOp
	}
	meter := telemetry.Meter(cfg.meterProvider, ScopeName)
	var err error
	if t.changes, err = meter.Int64Counter(MetricChanges, metric.WithUnit("{change}"),
		metric.WithDescription("Row changes handled, by table and operation.")); err != nil {
		otel.Handle(err)
	}
	if t.lag, err = meter.Int64ObservableGauge(MetricLag, metric.WithUnit("By"),
		metric.WithDescription("Bytes of write-ahead log between the server's end and the position the consumer confirmed.")); err != nil {
		otel.Handle(err)
		return t
	}
	t.lagOpts = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(slot))}
	t.reg = telemetry.Observe(meter, c, func(c *Consumer, o metric.Observer) {
		if !c.running.Load() {
			return
		}
		end, confirmed := c.serverEnd.Load(), c.confirmed.Load()
		if end == 0 || confirmed == 0 {
			return
		}
		o.ObserveInt64(c.tel.lag, int64(max(end, confirmed)-confirmed), c.tel.lagOpts...)
	}, t.lag)
	return t
}

// setDatabase makes db.namespace the database the consumer streams
// from, current_database() on the server: the connection string's, or
// the server's default (the user's name) when it names none.
func (t *instruments) setDatabase(db string) {
	cur := t.spanAttrs.Load()
	if cur.database == db {
		return
	}
	attrs := slices.Clone(cur.attrs)
	for i, kv := range attrs {
		if kv.Key == semconv.DBNamespaceKey {
			attrs[i] = semconv.DBNamespace(db)
		}
	}
	t.spanAttrs.Store(&spanAttrs{db, attrs})
}

// start starts the span of a transaction.
func (t *instruments) start(ctx context.Context, tx *Transaction) (context.Context, trace.Span) {
	ctx, span := t.tracer.Start(ctx, t.spanName, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(t.spanAttrs.Load().attrs...))
	if span.IsRecording() {
		span.SetAttributes(AttrXID.Int64(int64(tx.XID)), AttrCommitLSN.String(tx.CommitLSN.String()),
			semconv.MessagingBatchMessageCount(len(tx.Changes)))
	}
	return ctx, span
}

// handled counts the changes of a transaction handled.
func (t *instruments) handled(ctx context.Context, tx *Transaction) {
	if t.changes == nil || !t.changes.Enabled(ctx) {
		return
	}
	for i := range tx.Changes {
		ch := &tx.Changes[i]
		if opts, ok := t.changeOpts[ch.Table][ch.Op]; ok {
			t.changes.Add(ctx, 1, opts...)
		}
	}
}
