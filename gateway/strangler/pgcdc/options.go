package pgcdc

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of a consumer built with no options.
const (
	DefaultStatusInterval = 10 * time.Second
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
)

// maxIdentifier is PostgreSQL's NAMEDATALEN-1: longer names are truncated
// by the server, so that two of them could name one object.
const maxIdentifier = 63

// slotName is what PostgreSQL accepts as a replication slot's name; the
// consumer asks the same of a publication's name, which it writes into
// the replication commands unquoted.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Option configures a [Consumer].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	publication       string
	publicationSet    bool
	createPublication bool
	statusInterval    time.Duration
	backoffInitial    time.Duration
	backoffMax        time.Duration
	maxAttempts       int
	onError           func(error)
	tracerProvider    trace.TracerProvider
	meterProvider     metric.MeterProvider
}

func defaultConfig() config {
	return config{
		createPublication: true,
		statusInterval:    DefaultStatusInterval,
		backoffInitial:    DefaultBackoffInitial,
		backoffMax:        DefaultBackoffMax,
	}
}

// WithPublication names the publication whose changes the consumer
// streams: like a slot's, a name of 1 to 63 characters among a-z, 0-9
// and _. The default is the slot's name.
func WithPublication(name string) Option {
	return optionFunc(func(c *config) { c.publication, c.publicationSet = name, true })
}

// WithCreatePublication says whether the consumer creates its publication,
// FOR TABLE its tables, when it does not exist (the default, true), or
// requires it to exist (false), as when a database administrator manages
// publications and the consumer's role does not own the tables, which
// CREATE PUBLICATION requires. Either way an existing publication must
// publish every one of the consumer's tables; the consumer never alters
// it. A publication that publishes more tables is fine: their changes are
// not delivered.
func WithCreatePublication(create bool) Option {
	return optionFunc(func(c *config) { c.createPublication = create })
}

// WithStatusInterval sets how often, at most, the consumer reports its
// confirmed position to the server when nothing else makes it do so:
// while a handler runs, and while no changes arrive. It must be positive
// and well under the server's wal_sender_timeout (60s by default), which
// ends a replication connection that reported nothing for that long. The
// default is [DefaultStatusInterval] (10s).
//
// Each of these reports asks the server to reply, and the interval also
// bounds how long the consumer waits for a server that does not: when
// nothing came from the server for 3 intervals (or for the server's
// wal_sender_timeout, if that is longer: a server busy decoding a large
// transaction replies only every half of it), [Consumer.Run] asks the
// server whether the stream is still its, and if not takes the
// connection for dead, closes it and connects again, and waits twice as
// long on the next until a commit arrives. A shorter interval notices a
// dead connection sooner, for a few more messages.
func WithStatusInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.statusInterval = d })
}

// WithBackoff sets the exponential backoff between the attempts of a
// failing handler and between reconnections: from initial, doubling up
// to max, each wait drawn at random within 50% either side (jitter), so
// that consumers that failed together do not retry together. initial
// must be positive and max no less than initial. The defaults are
// [DefaultBackoffInitial] (100ms) and [DefaultBackoffMax] (30s).
func WithBackoff(initial, max time.Duration) Option {
	return optionFunc(func(c *config) { c.backoffInitial, c.backoffMax = initial, max })
}

// WithMaxAttempts bounds how many times the handler is called with one
// transaction: after n failures in a row, [Consumer.Run] returns a
// [*HandlerError], the transaction unconfirmed, so that the next Run
// delivers it again. n must not be negative; 0, the default, retries
// until the handler succeeds or Run's context ends.
func WithMaxAttempts(n int) Option {
	return optionFunc(func(c *config) { c.maxAttempts = n })
}

// WithErrorHandler sets a function that [Consumer.Run] calls with each
// error it recovers from by connecting again (a lost connection, a
// server that is down, a slot in use by another consumer), before it
// backs off, so that they can be logged: Run returns only the errors it
// cannot recover from. f is called on Run's goroutine and must not
// block. The default, or a nil f, is to ignore them.
func WithErrorHandler(f func(error)) Option {
	return optionFunc(func(c *config) { c.onError = f })
}

// WithTracerProvider sets the tracer provider of the consumer's spans.
// The default, or a nil tp, is the global provider, read at [New].
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets the meter provider of the consumer's metrics. The
// default, or a nil mp, is the global provider, read at [New].
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// validate reports every bad option at once.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.publicationSet && !slotName.MatchString(c.publication) {
		bad("WithPublication(%q): name must be 1 to 63 characters among a-z, 0-9 and _", c.publication)
	}
	if c.statusInterval <= 0 {
		bad("WithStatusInterval(%v): must be positive", c.statusInterval)
	}
	if c.backoffInitial <= 0 || c.backoffMax < c.backoffInitial {
		bad("WithBackoff(%v, %v): initial must be positive and max no less than initial", c.backoffInitial, c.backoffMax)
	}
	if c.maxAttempts < 0 {
		bad("WithMaxAttempts(%d): must not be negative", c.maxAttempts)
	}
	return errors.Join(errs...)
}

// table is a table to stream, by schema and name.
type table struct{ schema, name string }

func (t table) String() string { return t.schema + "." + t.name }

// parseTable reads "schema.name", or "name" for a table of the schema
// public, as PostgreSQL stores the names (unquoted, case kept).
func parseTable(s string) (table, error) {
	schema, name, ok := strings.Cut(s, ".")
	if !ok {
		schema, name = "public", s
	}
	for _, part := range []string{schema, name} {
		switch {
		case part == "":
			return table{}, fmt.Errorf("%q: want schema.name or name", s)
		case len(part) > maxIdentifier:
			return table{}, fmt.Errorf("%q: %q is longer than %d bytes", s, part, maxIdentifier)
		case !utf8.ValidString(part) || strings.ContainsRune(part, 0):
			return table{}, fmt.Errorf("%q: not valid UTF-8 without NUL", s)
		}
	}
	return table{schema, name}, nil
}
