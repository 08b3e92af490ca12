package pglog

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultSchema is the PostgreSQL schema that holds the log's tables when
// [WithSchema] is not given.
const DefaultSchema = "saga"

// MaxSchemaLen is the longest schema name, in bytes, that [WithSchema]
// accepts: PostgreSQL's limit for a name.
const MaxSchemaLen = 63

// Option configures a [Log].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	schema         string
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	optIn          bool
	slots          int // of WithGroupCommit
	slotsSet       bool
}

// WithSchema sets the PostgreSQL schema that holds the log's tables
// (sagas, transitions, schema_migrations), which [Log.Migrate] creates.
// Logs with different schemas in one database are independent. A log may
// share its schema with an eventsource/pgstore store and a
// cqrs/pgcheckpoint store. The name
// is used as is, quoted, so "Orders" and "orders" are two schemas. It must
// be 1 to [MaxSchemaLen] bytes of UTF-8, without NUL, and must not start
// with "pg_", which PostgreSQL reserves. The default is [DefaultSchema]
// ("saga").
func WithSchema(name string) Option {
	return optionFunc(func(c *config) { c.schema = name })
}

// WithTracerProvider sets where the log's spans go. The default, also used
// when tp is nil, is the global provider at the time of [New]. If the pool
// is instrumented already (with otelpgx, say), the log's spans are the
// parents of the driver's.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets where the log's metrics go. The default, also
// used when mp is nil, is the global provider at the time of [New].
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// WithOptInAttributes records the semantic conventions' Opt-In
// attributes as well: db.response.returned_rows on the spans of claim,
// renew and load, and server.port when it is PostgreSQL's default 5432
// (another port is always recorded). It is off by default.
func WithOptInAttributes() Option {
	return optionFunc(func(c *config) { c.optIn = true })
}

// WithGroupCommit sets how many writes ([Log.Create] and [Log.Append])
// or batches of them the log sends at once. A write that comes in while
// that many are under way waits for one of them to end, and then goes
// with every other write that waited, as one batch: one round trip and
// one transaction for them all. With eight sagas running at once, that
// cut what their writes cost PostgreSQL by more than half, and the
// client's CPU by a sixth to a third (see the package's Group commit
// section).
//
// Writes to different sagas then commit together, or, if one of them
// fails, not at all: each then runs again on its own, so that every
// caller gets the outcome its write would have had alone. A statement of
// a batch waits at most 100ms for a row lock (lock_timeout) before the
// batch gives up, so that a saga whose row someone holds does not hold
// up the others.
//
// The default is an eighth of the pool's connections (MaxConns), at
// least 1. 0 turns batches off: each write goes at once, on its own, as
// through a pool that cannot run a batch in one transaction (PgBouncer
// in statement mode). slots must not be negative.
func WithGroupCommit(slots int) Option {
	return optionFunc(func(c *config) { c.slots, c.slotsSet = slots, true })
}
