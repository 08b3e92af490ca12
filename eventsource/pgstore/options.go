package pgstore

import (
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/pgschema"
)

// Defaults of a Store built with no options.
const (
	// DefaultSchema is the PostgreSQL schema that holds the store's tables.
	DefaultSchema = "eventsource"
	// DefaultPollInterval is how long a live subscription waits for a
	// notification before it reads anyway.
	DefaultPollInterval = time.Second
	// DefaultAppendIdleTimeout is how long an append may leave its
	// transaction idle before the server ends its session.
	DefaultAppendIdleTimeout = 5 * time.Second
	// StageAbove is the size, in bytes of event data and metadata, above
	// which an append uploads its events in a statement of their own
	// (see WithAppendIdleTimeout).
	StageAbove = 64 << 10
	// DefaultSubscriptionTimeout is how long a subscription waits for the
	// answer to one of its queries before it takes the connection for
	// dead.
	DefaultSubscriptionTimeout = 10 * time.Second
	// MaxSchemaLen is the longest schema name, in bytes, that WithSchema
	// accepts: PostgreSQL's limit of 63 bytes for a name, less the
	// "_events" suffix of the notification channel.
	MaxSchemaLen = 63 - len(channelSuffix)
)

// channelSuffix is appended to the schema name to name the channel on which
// appends notify subscribers.
const channelSuffix = "_events"

// Option configures a [Store].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	schema         string
	pollInterval   time.Duration
	subTimeout     time.Duration
	idleTimeout    time.Duration
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	optIn          bool
}

func defaultConfig() config {
	return config{schema: DefaultSchema, pollInterval: DefaultPollInterval,
		subTimeout: DefaultSubscriptionTimeout, idleTimeout: DefaultAppendIdleTimeout}
}

// WithSchema sets the PostgreSQL schema that holds the store's tables
// (events, snapshots, commands, uploads, schema_migrations), which
// [Store.Migrate] creates. Stores with different schemas in one database
// are independent: their events, positions and appends do not interact.
// A store may share its schema with a
// [github.com/otelpatterns/patterns/saga/pglog] log and a
// [github.com/otelpatterns/patterns/cqrs/pgcheckpoint] store. The name is used as is, quoted, so "Orders"
// and "orders" are two schemas. It must be 1 to [MaxSchemaLen] bytes of
// UTF-8, without NUL, and must not start with "pg_", which PostgreSQL
// reserves. The default is [DefaultSchema] ("eventsource").
func WithSchema(name string) Option {
	return optionFunc(func(c *config) { c.schema = name })
}

// WithPollInterval sets how long a live subscription ([Store.Subscribe])
// waits for a notification of new events before it reads anyway. Appends
// notify subscribers, so events normally arrive at once; polling covers a
// notification that is lost (PostgreSQL drops them for a connection that
// is down) or never sent (the append's process died between commit and
// notify). d must be positive. The default is [DefaultPollInterval]
// (1 second).
func WithPollInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.pollInterval = d })
}

// WithAppendIdleTimeout sets the idle_in_transaction_session_timeout of
// an append's transaction: how long the server lets the transaction wait
// for the client's next statement, or for the rest of one the client is
// still sending, before it ends the session (and so the transaction).
// An open append holds every reader of the server's events back (see
// the package documentation) and its stream's other appends up, so this
// bounds how long a client that stalls inside an append (its process
// frozen, its network cut) does so: lower is safer for the others.
//
// An append waits for nothing from the client inside its transaction but
// the round trips of its statements, which are small: an append whose
// events' data and metadata exceed [StageAbove] bytes (64 KiB) uploads
// them as a statement of its own (reading a statement is not idle time).
// Smaller appends send their events with the insert: on a link so slow
// that that takes longer than d (d times 64 KiB/s or less), raise d.
// Either way the caller's context bounds the whole append.
//
// d must be at least a millisecond. The default is
// [DefaultAppendIdleTimeout] (5 seconds).
func WithAppendIdleTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.idleTimeout = d })
}

// WithSubscriptionTimeout sets how long a subscription ([Store.Subscribe])
// waits for the answer to any of its queries (a read, the LISTEN with the
// connection it needs, the UNLISTEN) before it takes the connection for
// dead: a server that stopped answering, or a network path that drops
// packets without closing the connection, would otherwise stall the
// subscription without an error until TCP gives up, which can take many
// minutes. The query is then interrupted (pgx closes its connection), the
// subscription yields an error matching [context.DeadlineExceeded], and
// it tries again on a new connection after the poll interval.
//
// A live subscription reads at least every poll interval, so a dead path
// is reported within the poll interval plus d. d must be positive and
// should exceed the time the slowest page read takes (500 events, with
// their data). The default is [DefaultSubscriptionTimeout] (10 seconds).
func WithSubscriptionTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.subTimeout = d })
}

// WithTracerProvider sets where the store's spans go. The default, also
// used when tp is nil, is the global provider at the time of [New]. If the
// pool is instrumented already (with otelpgx, say), the store's spans are
// the parents of the driver's.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets where the store's metrics go. The default, also
// used when mp is nil, is the global provider at the time of [New].
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// WithOptInAttributes records the semantic conventions' Opt-In
// attributes as well: db.response.returned_rows on the spans of reads, and
// server.port when it is PostgreSQL's default 5432 (another port is
// always recorded). It is off by default.
func WithOptInAttributes() Option {
	return optionFunc(func(c *config) { c.optIn = true })
}

// validate returns an error for each bad setting.
func (c *config) validate() []error {
	var errs []error
	if err := pgschema.CheckName(c.schema, MaxSchemaLen); err != nil {
		errs = append(errs, fmt.Errorf("WithSchema(%s): %w", brief.Quote(c.schema), err))
	}
	if c.pollInterval <= 0 {
		errs = append(errs, fmt.Errorf("WithPollInterval(%v): interval must be positive", c.pollInterval))
	}
	if c.idleTimeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("WithAppendIdleTimeout(%v): timeout must be at least 1ms", c.idleTimeout))
	}
	if c.subTimeout <= 0 {
		errs = append(errs, fmt.Errorf("WithSubscriptionTimeout(%v): timeout must be positive", c.subTimeout))
	}
	return errs
}
