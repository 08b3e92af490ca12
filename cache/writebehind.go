package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// writeBehind queues writes and flushes them from one worker goroutine, in
// batches taken from the front of the queue, retrying a failed batch a
// bounded number of times and then handing it to the dead-letter handler;
// nothing leaves the queue unwritten otherwise, except at Close, which
// reports it.
//
// The queue holds at most one write per key that is not in flight: a Set
// of a queued key replaces its value in place, and a Delete removes it.
// The batch in flight (the first len(flight) writes of the queue) is not
// changed; a Set or Delete of one of its keys marks that write dropped, so
// that a retry leaves it out, and a Set queues the new value behind it.
type writeBehind[V any] struct {
	c     *Cache[V]
	write func(context.Context, []Write[V]) error
	dead  func(context.Context, []Write[V], error) // nil: none
	slots chan struct{}                            // one per queued write: the bound

	mu       sync.Mutex
	queue    []*queued[V]          // oldest first; the batch in flight at the front
	pending  map[string]*queued[V] // queued writes not in flight, by key
	flight   []*queued[V]          // the batch being written (or waiting to be retried)
	flying   map[string]*queued[V] // flight, by key
	attempt  chan struct{}         // closed when the current attempt at flight ends
	seq      uint64                // Sets ever accepted
	progress chan struct{}         // closed and replaced when the front of the queue moves
	urgentTo uint64                // a Flush waits for writes up to this seq: do not wait for the interval
	stopped  bool                  // close has begun: no more writes
	lastErr  error
	deadN    uint64 // writes ever handed to the dead-letter handler (or dropped without one)
	deadErr  error  // the error of the last of them
	reported uint64 // deadN when a flush last returned

	wake     chan struct{}
	stopping chan struct{} // closed by close: no new writes
	ctx      context.Context
	cancel   context.CancelFunc // ends flush attempts at the close deadline
	done     chan struct{}
	reg      metric.Registration
}

// queued is one write in the queue.
type queued[V any] struct {
	w       Write[V]
	seq     uint64 // of the first Set it holds: writes are flushed in this order
	dropped bool   // in flight, and deleted or overwritten since: a retry leaves it out
}

func newWriteBehind[V any](c *Cache[V], write func(context.Context, []Write[V]) error) *writeBehind[V] {
	w := &writeBehind[V]{
		c:        c,
		write:    write,
		slots:    make(chan struct{}, c.opts.queue),
		pending:  make(map[string]*queued[V]),
		flying:   make(map[string]*queued[V]),
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	w.dead, _ = c.opts.deadLetter.(func(context.Context, []Write[V], error)) // checked by New
	w.ctx, w.cancel = context.WithCancel(context.Background())
	gauge, err := c.tel.meter.Int64ObservableGauge("cache.write_behind.queue", metric.WithUnit("{write}"),
		metric.WithDescription("Writes queued by the write-behind cache and not yet flushed."))
	if err == nil {
		opts := []metric.ObserveOption{metric.WithAttributes(c.tel.name)}
		w.reg, err = c.tel.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			o.ObserveInt64(gauge, int64(w.length()), opts...)
			return nil
		}, gauge)
	}
	if err != nil {
		otel.Handle(err)
	}
	go w.run()
	return w
}

func (w *writeBehind[V]) length() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// latest returns the value of key's newest write that the source may not
// have yet: queued, or in the batch in flight and not dropped since.
func (w *writeBehind[V]) latest(key string) (V, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if q := w.pending[key]; q != nil {
		return q.w.Value, true
	}
	if q := w.flying[key]; q != nil && !q.dropped {
		return q.w.Value, true
	}
	var zero V
	return zero, false
}

// coalesce replaces the value of key's queued write, if there is one not
// in flight, and reports whether it did. w.mu is held.
func (w *writeBehind[V]) coalesce(wr Write[V]) bool {
	q := w.pending[wr.Key]
	if q == nil {
		return false
	}
	q.w.Value = wr.Value
	w.seq++
	return true
}

func (w *writeBehind[V]) enqueue(ctx context.Context, wr Write[V]) error {
	w.mu.Lock()
	switch {
	case w.stopped:
		w.mu.Unlock()
		return ErrClosed
	case w.coalesce(wr):
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	select {
	case <-w.stopping:
		return ErrClosed
	case w.slots <- struct{}{}:
	default:
		if w.c.opts.reject {
			return ErrQueueFull
		}
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-w.stopping:
			return ErrClosed
		}
	}
	w.mu.Lock()
	if w.stopped {
		// close has already taken the count of writes it will flush.
		w.mu.Unlock()
		<-w.slots
		return ErrClosed
	}
	if w.coalesce(wr) { // queued by another Set while this one waited for room
		w.mu.Unlock()
		<-w.slots
		return nil
	}
	if q := w.flying[wr.Key]; q != nil {
		q.dropped = true // a retry must not write the older value
	}
	w.seq++
	q := &queued[V]{w: wr, seq: w.seq}
	w.queue = append(w.queue, q)
	w.pending[wr.Key] = q
	full := len(w.queue)-len(w.flight) >= w.c.opts.batch
	w.mu.Unlock()
	if full {
		w.poke()
	}
	return nil
}

// forget removes key's queued write, for Delete. If a write of key is
// being flushed, it marks it so that a retry leaves it out and waits for
// the attempt to end, so that when forget returns nil no write of key
// queued before it can reach the source any more; it returns ctx's error
// if ctx ends first. It does not wait when ctx is (derived from) the one
// the flush function was given: the flush function is deleting a key of
// its own batch.
func (w *writeBehind[V]) forget(ctx context.Context, key string) error {
	w.mu.Lock()
	if q := w.pending[key]; q != nil {
		delete(w.pending, key)
		i := slices.Index(w.queue, q)
		w.queue = slices.Delete(w.queue, i, i+1)
		if i == 0 {
			w.advance()
		}
		<-w.slots
	}
	var attempt chan struct{}
	if q := w.flying[key]; q != nil {
		q.dropped = true
		attempt = w.attempt
	}
	w.mu.Unlock()
	if attempt == nil || ctx.Value(flushing{}) == w {
		// Called by the flush function itself, which would wait for
		// itself: what it writes of key is its own choice.
		return nil
	}
	select {
	case <-attempt:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cache: Delete(%s): waiting for the write-behind flush that carries the key: %w",
			brief.Quote(key), ctx.Err())
	}
}

// advance tells waiting Flushes that the front of the queue moved. w.mu is
// held.
func (w *writeBehind[V]) advance() {
	close(w.progress)
	w.progress = make(chan struct{})
}

func (w *writeBehind[V]) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// flush waits until every write queued before the call is written, or
// given up on: it returns an error if writes were given up on since the
// previous flush returned.
func (w *writeBehind[V]) flush(ctx context.Context) error {
	_, err := w.flushCounting(ctx)
	return err
}

// flushCounting is flush, also returning how many writes it reports given
// up on.
func (w *writeBehind[V]) flushCounting(ctx context.Context) (uint64, error) {
	select {
	case <-w.done:
		return 0, ErrClosed
	default:
	}
	w.mu.Lock()
	target := w.seq
	w.urgentTo = max(w.urgentTo, target)
	w.mu.Unlock()
	w.poke()
	for {
		w.mu.Lock()
		if len(w.queue) == 0 || w.queue[0].seq > target {
			dead, deadErr := w.deadN-w.reported, w.deadErr
			w.reported = w.deadN
			w.mu.Unlock()
			if dead > 0 {
				return dead, fmt.Errorf("cache: write-behind flush: %d writes were given up on after %d retries: %w",
					dead, w.c.opts.retries, deadErr)
			}
			return 0, nil
		}
		progress := w.progress
		w.mu.Unlock()
		select {
		case <-progress:
		case <-ctx.Done():
			w.mu.Lock()
			lastErr := w.lastErr
			w.mu.Unlock()
			if lastErr != nil {
				return 0, fmt.Errorf("cache: write-behind flush: %w (last flush error: %w)", ctx.Err(), lastErr)
			}
			return 0, ctx.Err()
		case <-w.done:
			return 0, fmt.Errorf("cache: write-behind flush: the cache closed with writes unwritten")
		}
	}
}

// close refuses new writes, flushes for up to timeout, then stops the
// worker and reports writes that could not be written: still queued, or
// given up on since the last Flush.
func (w *writeBehind[V]) close(timeout time.Duration) error {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	close(w.stopping)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dead, err := w.flushCounting(ctx)
	w.cancel()
	<-w.done
	if w.reg != nil {
		_ = w.reg.Unregister()
	}
	if err == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Errorf("cache: closing: %d queued writes were not written: %w", uint64(len(w.queue))+dead, err)
}

func (w *writeBehind[V]) run() {
	defer close(w.done)
	tick := time.NewTicker(w.c.opts.interval)
	defer tick.Stop()
	for {
		ticked := false
		select {
		case <-w.ctx.Done():
			return
		case <-tick.C:
			ticked = true
		case <-w.wake:
		}
		w.drain(ticked)
	}
}

// drain writes batches: full ones, and a partial one too when the interval
// has passed (ticked) or a Flush waits for it.
func (w *writeBehind[V]) drain(ticked bool) {
	const firstBackoff = 100 * time.Millisecond
	backoff, failures := firstBackoff, 0
	for {
		w.mu.Lock()
		// A retry leaves out what was deleted or overwritten while it
		// waited: such a Delete did not wait, no attempt being in flight.
		w.prune()
		if len(w.flight) == 0 && !w.take(ticked) {
			w.mu.Unlock()
			return
		}
		batch := make([]Write[V], len(w.flight))
		for i, q := range w.flight {
			batch[i] = q.w
		}
		w.attempt = make(chan struct{})
		w.mu.Unlock()

		err := w.writeBatch(batch)

		w.mu.Lock()
		close(w.attempt)
		if err == nil {
			w.lastErr = nil
			w.land(len(w.flight))
			w.mu.Unlock()
			backoff, failures = firstBackoff, 0
			continue
		}
		w.lastErr = err
		w.prune()
		failures++
		var dead []Write[V]
		if failures > w.c.opts.retries {
			// Given up on: the writes still in flight, not deleted or
			// overwritten meanwhile, go to the dead-letter handler.
			for _, q := range w.flight {
				dead = append(dead, q.w)
			}
		}
		w.mu.Unlock()
		if f := w.c.opts.onFlushError; f != nil {
			f(err)
		}
		if len(dead) > 0 {
			// Before the writes leave the queue, so that a Flush waiting
			// for them returns after the handler.
			w.deadLetter(dead, err)
			w.mu.Lock()
			w.prune() // changes during the handler do not matter any more
			w.deadN += uint64(len(dead))
			w.deadErr = err
			w.land(len(w.flight))
			w.mu.Unlock()
		}
		w.mu.Lock()
		next := len(w.flight) > 0 // the same batch again, less what was dropped
		w.mu.Unlock()
		if !next {
			backoff, failures = firstBackoff, 0
			continue
		}
		// Wait before trying the same batch again, with full jitter.
		t := time.NewTimer(time.Duration(rand.Int64N(int64(backoff)) + 1))
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// take makes the front of the queue the batch in flight, if there is a
// full batch or a partial one may go, and reports whether it did. w.mu is
// held.
func (w *writeBehind[V]) take(ticked bool) bool {
	batch := w.c.opts.batch
	n := min(len(w.queue), batch)
	partialOK := ticked || (n > 0 && w.queue[0].seq <= w.urgentTo)
	if n == 0 || (n < batch && !partialOK) {
		return false
	}
	w.flight = w.queue[:n:n]
	for _, q := range w.flight {
		delete(w.pending, q.w.Key)
		w.flying[q.w.Key] = q
	}
	return true
}

// prune removes the writes of the batch in flight that were deleted or
// overwritten during an attempt that failed. w.mu is held.
func (w *writeBehind[V]) prune() {
	kept := 0
	for _, q := range w.flight {
		if q.dropped {
			delete(w.flying, q.w.Key)
			<-w.slots
			continue
		}
		w.queue[kept] = q
		kept++
	}
	if kept == len(w.flight) {
		return
	}
	removed := len(w.flight) - kept
	w.queue = slices.Delete(w.queue, kept, kept+removed)
	w.flight = w.queue[:kept:kept]
	w.advance()
	if kept == 0 {
		w.flight = nil
	}
}

// land removes the batch in flight, its first n writes of the queue,
// written or given up on. w.mu is held.
func (w *writeBehind[V]) land(n int) {
	for _, q := range w.flight {
		delete(w.flying, q.w.Key)
	}
	clear(w.queue[:n]) // for the garbage collector
	w.queue = w.queue[n:]
	w.flight = nil
	w.advance()
	for range n {
		<-w.slots
	}
}

// deadLetter hands writes that failed every attempt to the handler of
// WithWriteBehindDeadLetter, or reports them, and counts them.
func (w *writeBehind[V]) deadLetter(batch []Write[V], err error) {
	w.c.tel.deadLetters.Add(w.ctx, int64(len(batch)), metric.WithAttributeSet(
		attribute.NewSet(w.c.tel.name, telemetry.ErrorType(err))))
	if w.dead == nil {
		otel.Handle(fmt.Errorf("cache: write-behind: %d writes given up on after %d retries: %w", len(batch), w.c.opts.retries, err))
		return
	}
	w.dead(w.ctx, batch, err)
}

// flushing is the key of the value that the contexts of flush attempts
// carry: the writeBehind making them.
type flushing struct{}

func (w *writeBehind[V]) writeBatch(batch []Write[V]) error {
	ctx, span := w.c.tel.tracer.Start(context.WithValue(w.ctx, flushing{}, w), "cache.write_behind.flush",
		trace.WithAttributes(w.c.tel.name, batchSize.Int(len(batch))))
	defer span.End()
	err := w.write(ctx, batch)
	if err != nil {
		w.c.tel.failed(ctx, span, err, w.c.tel.flushes, nil, 0)
		return fmt.Errorf("cache: write-behind flush of %d writes: %w", len(batch), err)
	}
	w.c.tel.flushes.Add(ctx, 1, w.c.tel.flushOpts...)
	return nil
}
