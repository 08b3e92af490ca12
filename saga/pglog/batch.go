package pglog

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxBatch is the most writes one batch carries.
const maxBatch = 64

// stallAfter is how long a batch's statement waits for a row lock before
// the batch gives up, and each of its writes runs again on its own: a
// saga whose row someone holds (an operator's open transaction, say) must
// not hold up the writes to the others in its batch. It is also how long
// a write that went at once holds its slot (a write waiting for a lock
// would hold up every write after it), and how long a queued write waits
// before a flush beyond the slots takes it on.
const stallAfter = 100 * time.Millisecond

// lockTimeoutSQL sets the lock timeout of a batch's transaction.
const lockTimeoutSQL = "SELECT set_config('lock_timeout', $1, true)"

// writer sends the log's writes (the statements of Create and Append),
// committing those that come in together in one transaction: a group
// commit. A write goes at once while fewer than slots writes or batches
// are under way; the others queue, and when one under way ends, the queue
// goes as one batch: one round trip and one commit for them all instead
// of one each, which is most of what a write costs the client and the
// server.
//
// A batch is atomic: if one of its statements fails (a taken Seq, a saga
// created twice, a lock waited for too long), PostgreSQL rolls the
// others back with it, and each runs again on its own, so that each
// caller learns its own outcome. A batch locks its sagas' rows in the
// byte order of their ids, as Renew does, so that the two cannot
// deadlock.
type writer struct {
	pool  *pgxpool.Pool
	slots int // the writes and batches that may be under way at once; 0: no batches
	// stallAfter, as the wait for a slot and as a batch's lock timeout
	// (milliseconds), but in tests
	stall, lockTimeout atomic.Int64

	mu         sync.Mutex
	busy       int      // writes and batches under way
	queue      []*write // writes waiting for a batch
	unstalling bool     // a flush beyond the slots has started and taken nothing yet
}

func newWriter(pool *pgxpool.Pool, slots int) *writer {
	w := &writer{pool: pool, slots: slots}
	w.setStall(stallAfter, stallAfter)
	return w
}

// setStall sets how long a write waits for a slot before it stops
// waiting, and how long a batch waits for a row lock.
func (w *writer) setStall(slot, lock time.Duration) {
	w.stall.Store(int64(slot))
	w.lockTimeout.Store(max(1, lock.Milliseconds())) // a lock_timeout of 0 is none
}

// defaultSlots returns the slots of the writer of a pool of maxConns
// connections: an eighth of them, at least one, leaving the others to
// the log's other calls and to whatever else shares the pool.
func defaultSlots(maxConns int32) int { return max(1, int(maxConns)/8) }

// write is a queued statement, and then its outcome.
type write struct {
	ctx  context.Context
	id   string // the saga's
	sql  string
	args []any

	tag   pgconn.CommandTag
	err   error
	alone bool // its batch failed as a whole and committed nothing: run it on its own
	size  int  // the writes in its batch, set with batch

	done  chan struct{} // closed when the outcome is in
	batch *batch        // set when a batch takes it
}

// batch is what the queued writes of one batch share: a context that
// ends once every one of their callers has given up.
type batch struct {
	waiting atomic.Int32 // callers still waiting
	cancel  context.CancelFunc
}

// exec runs the statement sql, which writes to the saga id, at once or
// in the next batch, and returns its outcome and the number of writes in
// the batch that took it (0 for a write that ran on its own). If ctx ends
// while the statement waits in the queue, it never runs; once sent, it
// may commit after exec returned ctx's error, as with pgx's Exec.
func (w *writer) exec(ctx context.Context, id, sql string, args []any) (pgconn.CommandTag, int, error) {
	if w.slots == 0 {
		tag, err := w.pool.Exec(ctx, sql, args...)
		return tag, 0, err
	}
	w.mu.Lock()
	if w.busy < w.slots && len(w.queue) == 0 {
		w.busy++
		w.mu.Unlock()
		// A write that takes longer than the stall (waiting for a row
		// lock, say) gives its slot back then: held up, it would hold up
		// every write after it.
		var once sync.Once
		stalled := time.AfterFunc(time.Duration(w.stall.Load()), func() { once.Do(w.release) })
		tag, err := w.pool.Exec(ctx, sql, args...)
		stalled.Stop()
		once.Do(w.release)
		return tag, 0, err
	}
	wr := &write{ctx: ctx, id: id, sql: sql, args: args, done: make(chan struct{})}
	w.queue = append(w.queue, wr)
	w.mu.Unlock()
	if err := w.wait(ctx, wr); err != nil {
		// Sent in a batch all the same if one took it: wait saw that
		// under the lock that flush set size under.
		return pgconn.CommandTag{}, wr.size, err
	}
	if wr.alone {
		tag, err := w.pool.Exec(ctx, sql, args...)
		return tag, 0, err
	}
	return wr.tag, wr.size, wr.err
}

// wait waits for the outcome of the queued write wr, and returns ctx's
// error if ctx ends first.
func (w *writer) wait(ctx context.Context, wr *write) error {
	stalled := time.NewTimer(time.Duration(w.stall.Load()))
	defer stalled.Stop()
	for done := false; !done; {
		select {
		case <-wr.done:
			return nil
		case <-stalled.C:
			w.unstall(wr)
		case <-ctx.Done():
			done = true
		}
	}
	select {
	case <-wr.done: // in as well: the outcome is the caller's
		return nil
	default:
	}
	w.mu.Lock()
	i := slices.Index(w.queue, wr)
	if i >= 0 {
		w.queue = slices.Delete(w.queue, i, i+1)
	}
	w.mu.Unlock()
	// Sent already (i < 0): the batch goes on for the callers still
	// waiting for it, or is cancelled if none is.
	if i < 0 && wr.batch.waiting.Add(-1) == 0 {
		wr.batch.cancel()
	}
	return ctx.Err()
}

// unstall starts a flush beyond the slots if the write wr still waits in
// the queue: the slots have been taken for the stall, by batches that
// the database is slow to answer, say (a write that went at once gives
// its slot back after the stall, and a batch gives up a row lock then).
func (w *writer) unstall(wr *write) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.unstalling && slices.Contains(w.queue, wr) {
		// One at a time: the writes queued together stall together.
		w.unstalling = true
		w.busy++
		go w.flush()
	}
}

// release gives back the slot of a write that went at once, or hands it
// to a flush if writes are waiting.
func (w *writer) release() {
	w.mu.Lock()
	if len(w.queue) == 0 {
		w.busy--
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	go w.flush()
}

// flush sends the queue in batches, on a slot of its own, until the queue
// is empty.
func (w *writer) flush() {
	for {
		w.mu.Lock()
		n := min(len(w.queue), maxBatch)
		if n == 0 {
			w.busy--
			w.unstalling = false // the queue it was started for has gone
			w.mu.Unlock()
			return
		}
		ws := slices.Clone(w.queue[:n])
		w.queue = slices.Delete(w.queue, 0, n)
		w.unstalling = false
		// The driver's spans (an instrumented pool's) of the batch are
		// children of the first write's.
		ctx, cancel := context.WithCancel(context.WithoutCancel(ws[0].ctx))
		b := &batch{cancel: cancel}
		b.waiting.Store(int32(n))
		for _, wr := range ws {
			wr.batch, wr.size = b, n
		}
		w.mu.Unlock()
		w.send(ctx, ws)
		cancel()
		for _, wr := range ws {
			close(wr.done)
		}
	}
}

// send runs the writes ws as one batch, in one transaction, and sets the
// outcome of each.
func (w *writer) send(ctx context.Context, ws []*write) {
	slices.SortStableFunc(ws, func(a, b *write) int { return strings.Compare(a.id, b.id) })
	pb := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 1+len(ws))}
	pb.Queue(lockTimeoutSQL, strconv.FormatInt(w.lockTimeout.Load(), 10)+"ms")
	for _, wr := range ws {
		pb.Queue(wr.sql, wr.args...)
	}
	br := w.pool.SendBatch(ctx, pb)
	_, err := br.Exec()
	for _, wr := range ws {
		wr.tag, wr.err = br.Exec()
		if err == nil {
			err = wr.err // the first statement's error, which failed the rest
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return
	}
	// A statement's error rolled the whole batch back, as did a batch
	// that never reached the server or that the driver could not build
	// (one write's arguments it cannot encode, which it finds before it
	// sends anything, or a prepare that failed, in a round trip of its
	// own): each write runs again on its own. Anything else (a connection
	// lost) leaves the batch's outcome unknown, and every caller is told.
	var (
		pgErr  *pgconn.PgError
		preErr pgx.ErrPreprocessingBatch
	)
	alone := errors.As(err, &pgErr) || pgconn.SafeToRetry(err) || errors.As(err, &preErr)
	for _, wr := range ws {
		wr.alone, wr.err = alone, err
	}
}
