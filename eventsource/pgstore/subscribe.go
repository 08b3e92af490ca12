package pgstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/pgschema"
)

// Subscribe implements [eventsource.Store.Subscribe].
//
// It first catches up, reading pages of 500 events through the pool like
// [Store.ReadAll]. Once a page is not full it acquires one connection
// from the pool and LISTENs on the schema's channel, on which every append
// notifies after its commit, reads once more from where it got to, and
// then waits on that connection for a notification, or for the poll
// interval ([WithPollInterval]) at most, before reading on from the last
// event it yielded. The connection is held until the sequence ends, and
// then released to the pool, no longer listening.
//
// Events arrive in position order, each once: positions become visible in
// order (see the package documentation), so reading on from the last one
// yielded misses nothing.
//
// When ctx is done the sequence ends, without an error. A failure of the
// database is yielded as an error; if the loop goes on, Subscribe tries
// again after the poll interval, from the last event yielded, listening on
// a new connection if the old one broke. A loop that stops at the first
// error ends the subscription.
//
// Every query of the subscription is bounded by the subscription timeout
// ([WithSubscriptionTimeout], 10 seconds by default), and a live
// subscription queries its connection at least every poll interval, even
// when no notification comes: so a connection that stops answering (a
// frozen server, a network path that drops packets without closing the
// connection) is reported within the poll interval plus the timeout, as
// an error matching [context.DeadlineExceeded], and the subscription
// goes on with a new connection.
func (s *Store) Subscribe(ctx context.Context, afterPosition int64) iter.Seq2[eventsource.Event, error] {
	return func(yield func(eventsource.Event, error) bool) {
		sub := &subscription{s: s, pos: max(afterPosition, 0)}
		defer sub.release(ctx)
		sub.run(ctx, yield)
	}
}

// subscription is the state of one iteration of a Subscribe sequence.
type subscription struct {
	s    *Store
	pos  int64         // of the last event yielded
	live bool          // caught up: read on the listening connection
	held bool          // the last read found committed events held back
	conn *pgxpool.Conn // listening, when live; nil until listening
}

func (sub *subscription) run(ctx context.Context, yield func(eventsource.Event, error) bool) {
	for ctx.Err() == nil {
		if sub.live && sub.conn == nil {
			if err := sub.listen(ctx); err != nil {
				if !sub.failed(ctx, yield, "listening for appends", err) {
					return
				}
				continue
			}
		}
		page, err := sub.read(ctx)
		if err != nil {
			sub.release(ctx) // it may be broken; listen afresh
			if !sub.failed(ctx, yield, fmt.Sprintf("reading events after position %d", sub.pos), err) {
				return
			}
			continue
		}
		for _, e := range page {
			if !yield(e, nil) {
				return
			}
			sub.pos = e.Position
		}
		switch {
		case len(page) == sub.s.pageSize: // there may be more now
		case !sub.live: // caught up: listen, read once more, then wait
			sub.live = true
		default:
			sub.wait(ctx)
		}
	}
}

// read reads the next page after sub.pos: through the pool while catching
// up, on the listening connection when live.
func (sub *subscription) read(ctx context.Context) ([]eventsource.Event, error) {
	s := sub.s
	var q querier = s.pool
	if sub.conn != nil {
		drainNotifications(sub.conn.Conn()) // this read answers them
		q = sub.conn
	}
	start := time.Now()
	qctx, cancel := context.WithTimeout(ctx, s.subTimeout)
	page, lag, heldBack, after, err := s.readSubPage(qctx, q, sub.pos)
	cancel()
	if ctx.Err() != nil {
		return nil, ctx.Err() // the subscription ends: nothing to record
	}
	err = sub.timedOut(qctx, err)
	// Polls that find nothing get no span: an idle subscription would
	// otherwise report one every poll interval.
	s.tel.Finish(ctx, opSubscribe, start, err, len(page), len(page) > 0 || err != nil)
	if err == nil {
		s.tel.lag.Record(ctx, lag)
		s.tel.heldBack.Record(ctx, heldBack)
		// Also held if the gauges' statement, with a later snapshot than
		// the read's, sees more events than the read returned: a
		// transaction that held them back from the read (whatever
		// transaction: it sends no notification) ended between the two
		// snapshots, too late for heldBack to see them held back.
		sub.held = heldBack > 0 || after > int64(len(page))
	}
	return page, err
}

// readSubPage reads the page of events after pos and, in the same round
// trip, what the subscription's gauges record: how many events it is
// behind (lag: from the sequence's last number to the first event of the
// page; 0 if the page is empty) and the age, in seconds, of the oldest
// committed event held back by a transaction still running (0 if none);
// and how many events after pos (up to a page) the gauges' statement
// sees (after).
func (s *Store) readSubPage(ctx context.Context, q querier, pos int64) (page []eventsource.Event, lag int64, heldBack float64, after int64, err error) {
	b := &pgx.Batch{}
	b.Queue(s.sql.readSub, pos, s.pageSize)
	b.Queue(s.sql.subMeta, pos, s.pageSize)
	br := q.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	rows, err := br.Query()
	if err != nil {
		return nil, 0, 0, 0, err
	}
	var first, seq int64
	for rows.Next() {
		e, err := scanEvent(rows, &seq)
		if err != nil {
			rows.Close()
			return nil, 0, 0, 0, err
		}
		if len(page) == 0 {
			first = seq
		}
		page = append(page, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, 0, 0, err
	}
	var last int64
	if err := br.QueryRow().Scan(&last, &heldBack, &after); err != nil {
		return nil, 0, 0, 0, err
	}
	if len(page) > 0 {
		lag = max(last-first+1, int64(len(page)))
	}
	return page, lag, heldBack, after, nil
}

// timedOut returns err saying that the subscription timeout ran out, if
// it did: qctx is the context of the query that failed with err.
func (sub *subscription) timedOut(qctx context.Context, err error) error {
	if err != nil && errors.Is(qctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %v, the subscription timeout; the connection is taken for dead: %w", sub.s.subTimeout, err)
	}
	return err
}

// listen acquires a connection and listens on the store's channel, within
// the subscription timeout.
func (sub *subscription) listen(ctx context.Context) error {
	s := sub.s
	qctx, cancel := context.WithTimeout(ctx, s.subTimeout)
	defer cancel()
	lctx, span, start := s.tel.Start(qctx, opListen)
	conn, err := s.pool.Acquire(lctx)
	if err == nil {
		sub.conn = conn
		_, err = conn.Exec(lctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize())
	}
	err = sub.timedOut(qctx, err)
	s.tel.End(lctx, span, opListen, start, err)
	if err != nil {
		sub.release(ctx)
		return err
	}
	if s.listening != nil {
		s.listening(conn.Conn().PgConn().PID())
	}
	return nil
}

// heldBackPoll is how long a subscription whose last read found
// committed events held back waits before it reads again (the poll
// interval if that is shorter): the transaction that holds them back
// sends no notification when it ends.
const heldBackPoll = 10 * time.Millisecond

// wait waits for a notification on the listening connection, for the poll
// interval at most (heldBackPoll if events were held back). If the
// connection fails, it is released, so that the next read listens on a
// new one.
func (sub *subscription) wait(ctx context.Context) {
	d := sub.s.pollInterval
	if sub.held {
		d = min(d, heldBackPoll)
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	_, err := sub.conn.Conn().WaitForNotification(wctx)
	timedOut := errors.Is(wctx.Err(), context.DeadlineExceeded)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if (err != nil && !timedOut) || sub.conn.Conn().IsClosed() {
		sub.release(ctx)
	}
}

// failed yields err, unless ctx is done, and waits for the poll interval
// before the subscription tries again. It reports whether to go on.
func (sub *subscription) failed(ctx context.Context, yield func(eventsource.Event, error) bool, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if !yield(eventsource.Event{}, fmt.Errorf("pgstore: subscription: %s: %w", what, pgschema.Hint(err))) {
		return false
	}
	t := time.NewTimer(sub.s.pollInterval)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// release stops listening and returns the connection to the pool, or
// closes it if it cannot stop listening, so that no other user of the
// pool receives the store's notifications.
func (sub *subscription) release(ctx context.Context) {
	conn := sub.conn
	if conn == nil {
		return
	}
	sub.conn = nil
	c := conn.Conn()
	if !c.IsClosed() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(time.Second, sub.s.subTimeout))
		defer cancel()
		s := sub.s
		uctx, span, start := s.tel.Start(uctx, opUnlisten)
		_, err := c.Exec(uctx, "UNLISTEN *")
		s.tel.End(uctx, span, opUnlisten, start, err)
		if err != nil {
			_ = conn.Hijack().Close(uctx)
			return
		}
		drainNotifications(c)
	}
	conn.Release()
}

// canceled is a context that is done, with which WaitForNotification
// returns the notifications a connection has buffered and nothing else.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// drainNotifications discards the notifications c has received while it
// ran queries, without waiting for more.
func drainNotifications(c *pgx.Conn) {
	for {
		if n, _ := c.WaitForNotification(canceled); n == nil {
			return
		}
	}
}
