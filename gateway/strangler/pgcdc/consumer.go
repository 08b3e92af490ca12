package pgcdc

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Consumer streams the row changes of chosen tables from a PostgreSQL
// replication slot to a [Handler], one committed transaction at a time,
// confirming each to the server once the handler succeeded. It is safe
// for concurrent use, but only one [Consumer.Run] runs at a time; two
// consumers (in one process or two) must not share a slot: the server
// lets one of them stream, and the other's Run waits and tries again
// (which makes a second process a standby that takes over when the
// first one stops).
//
// A Consumer is made by [New]; the methods of one that was not (the zero
// Consumer) return an error saying so.
type Consumer struct {
	conn        *pgconn.Config
	slot        string
	publication string
	tables      []table
	wanted      map[string]bool
	handler     Handler
	cfg         config
	tel         *instruments

	running   atomic.Bool
	confirmed atomic.Uint64 // the last position confirmed to the server
	serverEnd atomic.Uint64 // the server's WAL end, as last reported
	silences  atomic.Int32  // connections taken for dead in a row, since the last commit received
}

// New returns a consumer of the changes of tables (each "schema.name", or
// "name" for a table of the schema public, named as PostgreSQL stores
// them: unquoted, case kept) through the replication slot called slot (1
// to 63 characters among a-z, 0-9 and _), handled by handler. connString
// is a PostgreSQL URL or keyword/value string, as pgx takes it, of the
// database the tables are in, for a role with the REPLICATION attribute
// (or a superuser); the consumer adds replication=database to it.
//
// New reports every bad argument and option at once, each naming what
// is wrong (a nil option is "opts[i] is nil"). It does not connect:
// [Consumer.Setup] or [Consumer.Run] do.
func New(connString, slot string, tables []string, handler Handler, opts ...Option) (*Consumer, error) {
	cfg := defaultConfig()
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(&cfg)
	}
	conn, err := pgconn.ParseConfig(connString)
	if err != nil {
		errs = append(errs, fmt.Errorf("connString: %w", err))
	}
	if !slotName.MatchString(slot) {
		errs = append(errs, fmt.Errorf("slot %q: name must be 1 to 63 characters among a-z, 0-9 and _", slot))
	}
	if len(tables) == 0 {
		errs = append(errs, errors.New("tables: none given"))
	}
	c := &Consumer{slot: slot, publication: cfg.publication, handler: handler, cfg: cfg, wanted: map[string]bool{}}
	for i, s := range tables {
		t, err := parseTable(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("tables[%d]: %w", i, err))
			continue
		}
		if !c.wanted[t.String()] {
			c.wanted[t.String()] = true
			c.tables = append(c.tables, t)
		}
	}
	if handler == nil {
		errs = append(errs, errors.New("handler: nil"))
	}
	if err := cfg.validate(); err != nil {
		errs = append(errs, err)
	}
	if !cfg.publicationSet {
		c.publication = slot
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pgcdc: New: %w", err)
	}
	conn.RuntimeParams["replication"] = "database"
	// The server writes the values of the changes with the output
	// settings of the consumer's session, which a server, database or
	// role may set to styles that pgx does not read (DateStyle=German,
	// bytea_output=escape...) or that lose digits (extra_float_digits
	// below 1): the session asks for the ones it decodes, whole.
	conn.RuntimeParams["DateStyle"] = "ISO, MDY"
	conn.RuntimeParams["IntervalStyle"] = "postgres"
	conn.RuntimeParams["bytea_output"] = "hex"
	conn.RuntimeParams["extra_float_digits"] = "3"
	c.conn = conn
	c.tel = newInstruments(c, &c.cfg, conn)
	return c, nil
}

// Slot returns the name of the consumer's replication slot.
func (c *Consumer) Slot() string { return c.slot }

// Publication returns the name of the consumer's publication.
func (c *Consumer) Publication() string { return c.publication }

// Confirmed returns the last position the consumer confirmed to the
// server (or read from its slot): every transaction that committed
// before it has been handled. It is 0 before the first Setup or Run.
func (c *Consumer) Confirmed() LSN { return LSN(c.confirmed.Load()) }

// Setup checks that the server has wal_level=logical, creates the
// publication (unless [WithCreatePublication](false)) and the slot when
// they do not exist, and checks them when they do. [Consumer.Run] does
// the same each time it connects; calling Setup first, when deploying,
// matters because a slot streams only the changes committed after it was
// created: create it before the writes that must not be missed.
//
// Creating a slot waits until the transactions running on the server
// when it was asked for have ended; a slot that another consumer is
// creating (a standby deployed at the same time) is waited for likewise,
// so that when Setup returns nil the slot streams what commits next. A
// publication that leaves out part of the tables' changes (an operation,
// rows by a row filter, columns by a column list) is an error that names
// it, and so is a slot gone while this consumer had a position in it
// ([ErrSlotLost]).
func (c *Consumer) Setup(ctx context.Context) error {
	if c == nil || c.conn == nil {
		return errNotMade
	}
	conn, err := pgconn.ConnectConfig(ctx, c.conn)
	if err != nil {
		return fmt.Errorf("pgcdc: connecting: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	_, pos, err := c.setup(ctx, conn)
	if err != nil {
		return err
	}
	c.advance(pos)
	return nil
}

// DropSlot drops the consumer's replication slot, and with it the
// position it kept: a slot that is no longer consumed keeps the server
// from removing write-ahead log, which fills its disk, so drop the slot
// of a consumer retired for good. While the slot is in use (a Run, here
// or elsewhere, streams from it) it waits, until ctx ends; it succeeds
// when the slot does not exist. The publication is left alone.
//
// It also forgets the consumer's position ([Consumer.Confirmed] is 0
// again), so that Setup or Run create the slot anew instead of
// returning [ErrSlotLost]: after a lost slot, DropSlot is how to say
// that the loss is known and dealt with.
func (c *Consumer) DropSlot(ctx context.Context) error {
	if c == nil || c.conn == nil {
		return errNotMade
	}
	conn, err := pgconn.ConnectConfig(ctx, c.conn)
	if err != nil {
		return fmt.Errorf("pgcdc: connecting: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	_, err = conn.Exec(ctx, "DROP_REPLICATION_SLOT "+c.slot+" WAIT").ReadAll()
	var pgErr *pgconn.PgError
	if err != nil && (!errors.As(err, &pgErr) || pgErr.Code != "42704") { // undefined_object: gone already
		return fmt.Errorf("pgcdc: dropping slot %s: %w", c.slot, err)
	}
	c.confirmed.Store(0)
	return nil
}

// Run streams changes to the handler until ctx ends, then returns nil.
// Each time it connects it sets the publication and the slot up as
// [Consumer.Setup] does, and starts from the slot's confirmed position:
// the transactions that a Run before it (in this process or another)
// handled but did not get to confirm are delivered again.
//
// A lost connection, or a slot in use by another consumer, makes Run
// connect again after a backoff ([WithBackoff]), and so does a
// connection on which the server sent nothing for 3 times
// [WithStatusInterval] (or the server's wal_sender_timeout, if longer)
// though the consumer asked it to reply each interval: a server gone
// behind a proxy, or a NAT that forgot the connection, leaves it open
// and silent, and TCP may not notice for a quarter of an hour. A server
// before PostgreSQL 16 decoding a long transaction (a table rewritten
// by ALTER TABLE) is as silent until it is done, and would start again
// on a new connection: so first Run asks the server, on a connection of
// its own, whether the stream's process still streams the slot, and
// waits on if it does. (A server with wal_sender_timeout 0 keeps the
// process of a connection a NAT forgot, which is then waited for too.)
// The bound doubles with each connection replaced until a commit
// arrives.
//
// Run returns an error for what connecting again cannot cure: a server
// without wal_level=logical, a publication that is missing (under
// [WithCreatePublication](false)), does not publish every table or
// leaves out part of their changes (an operation of insert, update,
// delete and truncate, a row filter, a column list), a slot of another
// plugin or database or invalidated by the server, a slot gone while
// this consumer had a position in it ([ErrSlotLost]), the server's
// refusal to create the publication or to decode the changes (a
// publication dropped under a slot that is behind), a message from the
// server the consumer cannot read (which the server would send again on
// every connection), a table of the consumer's renamed while it
// streams, a handler that failed [WithMaxAttempts] times
// ([*HandlerError]), and a Run already running ([ErrRunning]).
func (c *Consumer) Run(ctx context.Context) error {
	if c == nil || c.conn == nil {
		return errNotMade
	}
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	b := c.backoff()
	for {
		streamed, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if isFatal(err) {
			return err
		}
		if c.cfg.onError != nil {
			c.cfg.onError(err)
		}
		if streamed {
			b.Reset()
		}
		if !sleep(ctx, b.NextBackOff()) {
			return nil
		}
	}
}

func (c *Consumer) backoff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.cfg.backoffInitial),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxInterval(c.cfg.backoffMax),
		backoff.WithMaxElapsedTime(0),
	)
}

// sleep waits d, or until ctx ends, which it reports with false.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// deliver hands tx to the handler until it succeeds, under a span of its
// own, backing off between attempts.
func (c *Consumer) deliver(ctx context.Context, tx *Transaction) error {
	ctx, span := c.tel.start(ctx, tx)
	attempt := 0
	defer func() {
		// On every way out, cancellation included: the span says how
		// many times the handler was called.
		if span.IsRecording() {
			span.SetAttributes(AttrAttempts.Int(attempt))
		}
		span.End()
	}()
	var b backoff.BackOff
	for {
		attempt++
		err := c.call(ctx, tx)
		if err == nil {
			c.tel.handled(ctx, tx)
			return nil
		}
		if ctx.Err() != nil {
			telemetry.RecordError(span, err)
			return err
		}
		if c.cfg.maxAttempts > 0 && attempt >= c.cfg.maxAttempts {
			herr := &HandlerError{XID: tx.XID, CommitLSN: tx.CommitLSN, Attempts: attempt, Err: err}
			telemetry.RecordError(span, herr)
			return herr
		}
		if span.IsRecording() {
			span.AddEvent(EventRetry, trace.WithAttributes(telemetry.ErrorType(err), AttrAttempts.Int(attempt)))
		}
		if b == nil {
			b = c.backoff()
		}
		if !sleep(ctx, b.NextBackOff()) {
			telemetry.RecordError(span, ctx.Err())
			return ctx.Err()
		}
	}
}

// call calls the handler, turning a panic into an error.
func (c *Consumer) call(ctx context.Context, tx *Transaction) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return c.handler(ctx, *tx)
}
