package pgcheckpoint

import (
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultSchema is the PostgreSQL schema that holds the checkpoints table
// of a Store built with no [WithSchema].
const DefaultSchema = "cqrs"

// MaxSchemaLen is the longest schema name, in bytes, that [WithSchema]
// accepts: PostgreSQL's limit for a name.
const MaxSchemaLen = 63

// Option configures a [Store].
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
	watch          time.Duration
}

// WithSchema sets the PostgreSQL schema that holds the checkpoints table,
// which [Store.Migrate] creates. The name is used as is, quoted, so
// "Orders" and "orders" are two schemas. It must be 1 to [MaxSchemaLen]
// bytes of UTF-8, without NUL, and must not start with "pg_". The default
// is [DefaultSchema] ("cqrs"). It may be the schema of the read models, so
// that they and their checkpoints live side by side.
func WithSchema(name string) Option {
	return optionFunc(func(c *config) { c.schema = name })
}

// WithTracerProvider sets where the store's spans go: those of its
// queries and those of the events [Store.Project] handles. The default,
// also used when tp is nil, is the global provider at the time of [New].
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets where the store's metrics go: the durations of
// its queries and the cqrs.projection.lag gauge of [Store.Project]. The
// default, also used when mp is nil, is the global provider at the time
// of [New].
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// DefaultCheckInterval is how often, by default, a waiting
// [Store.Project] checks that its checkpoint was not reset by another
// process ([WithCheckInterval]).
const DefaultCheckInterval = 2 * time.Second

// WithCheckInterval sets how often [Store.Project], while it waits for
// events, checks whether its checkpoint was moved under it (by
// [Store.Rebuild] in another process, or by another Project that handled
// events past it), so that it replays a rebuilt read model without
// waiting for the next event. A Rebuild through the same Store wakes its
// Project calls at once. The check is one query, which records its
// duration but no span. d of 0 turns it off: Project then notices a
// reset when the next event arrives. A negative d is an error of [New].
// The default is [DefaultCheckInterval] (2 s).
func WithCheckInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.watch = d })
}

// WithOptInAttributes records the semantic conventions' Opt-In
// attributes as well: server.port when it is PostgreSQL's default 5432
// (another port is always recorded). It is off by default.
func WithOptInAttributes() Option {
	return optionFunc(func(c *config) { c.optIn = true })
}
