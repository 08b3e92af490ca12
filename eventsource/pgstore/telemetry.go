package pgstore

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/pgtel"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/eventsource/pgstore"

// AttrStreamID is the span attribute naming the stream of an append, a
// stream read or a snapshot.
const AttrStreamID = attribute.Key("eventsource.stream_id")

// The store's own metrics, besides db.client.operation.duration.
const (
	// MetricSubscriptionLag is the gauge of how many events a
	// subscription is behind, at each of its reads.
	MetricSubscriptionLag = "eventsource.subscription.lag"
	// MetricSubscriptionHeldBack is the gauge of how long the oldest
	// committed event that readers may not read yet has waited, at each
	// read of a subscription: the hold-back of a transaction still
	// running (see "The global order" in the package documentation).
	MetricSubscriptionHeldBack = "eventsource.subscription.held_back"
)

// The store's operations, as recorded in db.operation.name.
type op int

const (
	opAppend op = iota
	opNotify
	opReadStream
	opReadAll
	opSubscribe
	opListen
	opUnlisten
	opHead
	opCount
	opCommandRecorded
	opLoadSnapshot
	opSaveSnapshot
	opDeleteSnapshot
	opMigrate
	numOps
)

// ops are the store's operations, with the tables they use as
// db.collection.name (schema-qualified). An append sends several
// different statements (lock, checks, insert, commit) as one operation:
// a batch, named as the conventions name those.
var ops = [numOps]pgtel.Op{
	opAppend:          {Name: pgtel.Batch, Table: "events"},
	opNotify:          {Name: "notify"},
	opReadStream:      {Name: "read_stream", Table: "events"},
	opReadAll:         {Name: "read_all", Table: "events"},
	opSubscribe:       {Name: "subscribe", Table: "events"},
	opListen:          {Name: "listen"},
	opUnlisten:        {Name: "unlisten"},
	opHead:            {Name: "head", Table: "events"},
	opCount:           {Name: "count", Table: "events"},
	opCommandRecorded: {Name: "command_recorded", Table: "commands"},
	opLoadSnapshot:    {Name: "load_snapshot", Table: "snapshots"},
	opSaveSnapshot:    {Name: "save_snapshot", Table: "snapshots"},
	opDeleteSnapshot:  {Name: "delete_snapshot", Table: "snapshots"},
	opMigrate:         {Name: "migrate"},
}

// instruments are a store's tracer and metric instruments: those of every
// PostgreSQL client (spans and db.client.operation.duration, from
// [pgtel.Ops]) and the store's own.
type instruments struct {
	*pgtel.Ops[op]
	appended       metric.Int64Counter
	appendDuration metric.Float64Histogram
	conflicts      metric.Int64Counter
	lag            metric.Int64Gauge
	heldBack       metric.Float64Gauge
}

func newInstruments(pool *pgxpool.Pool, schema string, tp trace.TracerProvider, mp metric.MeterProvider, optIn bool) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{Ops: pgtel.New[op](pool, schema, telemetry.Tracer(tp, ScopeName), m, ops[:], optIn)}
	check := func(err error) {
		if err != nil {
			otel.Handle(err)
		}
	}
	var err error
	t.appended, err = m.Int64Counter("eventsource.events.appended", metric.WithUnit("{event}"),
		metric.WithDescription("Events appended to the store."))
	check(err)
	t.appendDuration, err = m.Float64Histogram("eventsource.append.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of appends to the store, including waiting for the stream's append lock."),
		metric.WithExplicitBucketBoundaries(pgtel.DurationBuckets...))
	check(err)
	t.conflicts, err = m.Int64Counter("eventsource.conflicts", metric.WithUnit("{conflict}"),
		metric.WithDescription("Appends rejected because the stream was not at the expected version."))
	check(err)
	t.lag, err = m.Int64Gauge(MetricSubscriptionLag, metric.WithUnit("{event}"),
		metric.WithDescription("How many events a subscription is behind the newest, when it reads."))
	check(err)
	t.heldBack, err = m.Float64Gauge(MetricSubscriptionHeldBack, metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest committed event that a subscription may not read yet, held back by a transaction still running, when it reads."))
	check(err)
	return t
}
