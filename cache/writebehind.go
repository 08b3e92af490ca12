package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// writeBehind queues writes and flushes them from one worker goroutine, in
// order, retrying failed batches; nothing leaves the queue unwritten except
// at Close, which reports it.
type writeBehind[V any] struct {
	c     *Cache[V]
	write func(context.Context, []Write[V]) error
	slots chan struct{} // one per queued write: the bound

	mu       sync.Mutex
	queue    []Write[V]
	enqueued uint64        // writes ever queued
	written  uint64        // writes ever flushed
	progress chan struct{} // closed and replaced when written grows
	urgentTo uint64        // a Flush waits for writes up to here: do not wait for the interval
	stopped  bool          // close has begun: no more writes
	lastErr  error

	wake     chan struct{}
	stopping chan struct{} // closed by close: no new writes
	ctx      context.Context
	cancel   context.CancelFunc // ends flush attempts at the close deadline
	done     chan struct{}
	reg      metric.Registration
}

func newWriteBehind[V any](c *Cache[V], write func(context.Context, []Write[V]) error) *writeBehind[V] {
	w := &writeBehind[V]{
		c:        c,
		write:    write,
		slots:    make(chan struct{}, c.opts.queue),
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
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

func (w *writeBehind[V]) enqueue(ctx context.Context, wr Write[V]) error {
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
	w.queue = append(w.queue, wr)
	w.enqueued++
	full := len(w.queue) >= w.c.opts.batch
	w.mu.Unlock()
	if full {
		w.poke()
	}
	return nil
}

func (w *writeBehind[V]) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// flush waits until every write queued before the call is written.
func (w *writeBehind[V]) flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.enqueued
	w.urgentTo = max(w.urgentTo, target)
	w.mu.Unlock()
	w.poke()
	for {
		w.mu.Lock()
		written, progress := w.written, w.progress
		w.mu.Unlock()
		if written >= target {
			return nil
		}
		select {
		case <-progress:
		case <-ctx.Done():
			w.mu.Lock()
			lastErr := w.lastErr
			w.mu.Unlock()
			if lastErr != nil {
				return fmt.Errorf("cache: write-behind flush: %w (last flush error: %w)", ctx.Err(), lastErr)
			}
			return ctx.Err()
		case <-w.done:
			return fmt.Errorf("cache: write-behind flush: the cache closed with writes unwritten")
		}
	}
}

// close refuses new writes, flushes for up to timeout, then stops the
// worker and reports writes that could not be written.
func (w *writeBehind[V]) close(timeout time.Duration) error {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	close(w.stopping)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := w.flush(ctx)
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
	return fmt.Errorf("cache: closing: %d queued writes were not written: %w", len(w.queue), err)
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
	backoff := 100 * time.Millisecond
	for {
		w.mu.Lock()
		n := min(len(w.queue), w.c.opts.batch)
		partialOK := ticked || w.written < w.urgentTo
		if n < w.c.opts.batch && !partialOK {
			n = 0
		}
		batch := append([]Write[V](nil), w.queue[:n]...)
		w.mu.Unlock()
		if n == 0 {
			return
		}
		if err := w.writeBatch(batch); err != nil {
			w.mu.Lock()
			w.lastErr = err
			w.mu.Unlock()
			if f := w.c.opts.onFlushError; f != nil {
				f(err)
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
			continue
		}
		backoff = 100 * time.Millisecond
		w.mu.Lock()
		w.queue = w.queue[n:]
		w.written += uint64(n)
		w.lastErr = nil
		close(w.progress)
		w.progress = make(chan struct{})
		more := len(w.queue) > 0
		w.mu.Unlock()
		for range n {
			<-w.slots
		}
		if !more {
			return
		}
	}
}

func (w *writeBehind[V]) writeBatch(batch []Write[V]) error {
	ctx, span := w.c.tel.tracer.Start(w.ctx, "cache.write_behind.flush",
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
