package cqrs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/nilcheck"
	"github.com/otelpatterns/patterns/internal/projlag"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Projection turns events into a read model. Handle must be idempotent for
// an event it has seen, since a runner that stops between Handle and
// saving its checkpoint hands it the event again.
type Projection interface {
	// Name identifies the projection and its checkpoint.
	Name() string
	// Handle applies one event to the read model.
	Handle(ctx context.Context, e eventsource.Event) error
}

// Resetter is implemented by projections that can empty their read model,
// for [Runner.Rebuild].
type Resetter interface {
	Reset(ctx context.Context) error
}

// Runner feeds the events of an event store to projections, each from its
// own checkpoint, concurrently. A Runner is safe for concurrent use.
type Runner struct {
	store       eventsource.Store
	checkpoints CheckpointStore
	tracer      trace.Tracer
	lag         *projlag.Gauge

	mu      sync.Mutex
	running map[string]*job
	errs    map[string]error
	wg      sync.WaitGroup
	closed  bool
}

// job is a running projection: how to stop it and when it has stopped.
type job struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// NewRunner returns a runner reading store and keeping checkpoints in
// checkpoints. It returns an error naming each of them that is nil (or an
// interface holding a nil pointer). Its project spans go to the tracer
// provider of [WithTracerProvider], its cqrs.projection.lag gauge to the
// meter provider of [WithMeterProvider]; it ignores [WithOptInAttributes].
// A nil option is an error too ("opts[i] is nil"). The gauge reports, for each running projection, how
// many committed events it has not handled yet; it needs a store that is an
// [eventsource.HeadReader] (the memory and PostgreSQL stores are). Its
// callback runs no query: the head is read when a projection starts, then
// every second while projections run, once a reader has collected the
// gauge.
func NewRunner(store eventsource.Store, checkpoints CheckpointStore, opts ...BusOption) (*Runner, error) {
	var errs []error
	if nilcheck.IsNil(store) {
		errs = append(errs, errors.New("nil store"))
	}
	if nilcheck.IsNil(checkpoints) {
		errs = append(errs, errors.New("nil checkpoint store"))
	}
	c, optErrs := newBusConfig(opts)
	errs = append(errs, optErrs...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cqrs: NewRunner: %w", err)
	}
	return &Runner{store: store, checkpoints: checkpoints, tracer: telemetry.Tracer(c.tp, ScopeName),
		lag:     projlag.New(telemetry.Meter(c.mp, ScopeName), store, 0),
		running: map[string]*job{}, errs: map[string]error{}}, nil
}

// Start runs p in the background until [Runner.Close] or [Runner.Stop]. A
// projection whose Handle fails stops; [Runner.Err] reports why. A failure
// of the store or the checkpoint store does not stop it: it is reported to
// the global OpenTelemetry error handler (otel.Handle), and the projection
// resumes from its checkpoint after a backoff (100ms, doubling up to 5s),
// handing Handle again the events after it. Start returns an error if a
// projection of that name runs already, and one naming the argument for a
// nil projection or one whose Name is empty.
func (r *Runner) Start(p Projection) error {
	if r == nil || r.store == nil {
		return errors.New("cqrs: Runner.Start: the runner was not made by NewRunner")
	}
	if nilcheck.IsNil(p) {
		return errors.New("cqrs: Runner.Start: nil projection")
	}
	if p.Name() == "" {
		return fmt.Errorf("cqrs: Runner.Start: projection %T has an empty name", p)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("cqrs: runner is closed")
	}
	if _, ok := r.running[p.Name()]; ok {
		return fmt.Errorf("cqrs: projection %q runs already", p.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &job{cancel: cancel, done: make(chan struct{})}
	r.running[p.Name()] = j
	delete(r.errs, p.Name())
	r.wg.Go(func() {
		defer close(j.done)
		defer cancel()
		err := r.run(ctx, p)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			r.errs[p.Name()] = err
		}
		delete(r.running, p.Name())
	})
	return nil
}

func (r *Runner) run(ctx context.Context, p Projection) error {
	var pos int64
	for failures := 1; ; failures++ {
		var err error
		if pos, err = r.checkpoints.LoadCheckpoint(ctx, p.Name()); err == nil {
			break
		}
		if !r.retry(ctx, p, failures, fmt.Errorf("loading the checkpoint: %w", err)) {
			return nil
		}
	}
	name := attribute.String("cqrs.projection", p.Name())
	lag := r.lag.Track(ctx, p.Name(), pos)
	defer r.lag.Untrack(p.Name(), lag)
	for failures := 0; ; {
		var failure error // of the store or the checkpoint store: retried
		for e, err := range r.store.Subscribe(ctx, pos) {
			if err != nil {
				failure = fmt.Errorf("reading events after %d: %w", pos, err)
				break
			}
			failures = 0
			// The span links to the request that appended the event.
			link := trace.LinkFromContext(eventsource.TraceContext(ctx, e))
			hctx, span := r.tracer.Start(ctx, "project "+p.Name(), trace.WithLinks(link),
				trace.WithAttributes(name, attribute.Int64("eventsource.position", e.Position)))
			err := p.Handle(hctx, e)
			if err != nil {
				telemetry.RecordError(span, err)
				span.End()
				return fmt.Errorf("cqrs: projection %q: event %d (%s): %w", p.Name(), e.Position, e.Type, err)
			}
			span.End()
			if err := r.checkpoints.SaveCheckpoint(ctx, p.Name(), e.Position); err != nil {
				failure = fmt.Errorf("saving the checkpoint %d: %w", e.Position, err)
				break
			}
			lag.Store(e.Position)
			pos = e.Position
		}
		if failure == nil {
			return nil // ctx ended
		}
		failures++
		if !r.retry(ctx, p, failures, failure) {
			return nil
		}
	}
}

// Backoff of a projection whose store or checkpoint store fails.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 5 * time.Second
)

// retry reports the failures-th failure in a row of p's store or
// checkpoint store to the global error handler and waits before p tries
// again, from its checkpoint: 100ms, doubling up to 5s. It returns false
// if ctx ended meanwhile.
func (r *Runner) retry(ctx context.Context, p Projection, failures int, err error) bool {
	if ctx.Err() != nil {
		return false // the failure is the cancellation's
	}
	otel.Handle(fmt.Errorf("cqrs: projection %q (trying again): %w", p.Name(), err))
	d := retryFirst
	for i := 1; i < failures && d < retryMax; i++ {
		d *= 2
	}
	t := time.NewTimer(min(d, retryMax))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Stop stops the projection called name and waits for its current event.
func (r *Runner) Stop(name string) {
	r.mu.Lock()
	j := r.running[name]
	r.mu.Unlock()
	if j == nil {
		return
	}
	j.cancel()
	<-j.done
}

// Rebuild stops p, empties its read model (p must be a [Resetter]), resets
// its checkpoint to the start and starts it again, so that it replays every
// event. It returns an error, and resets nothing, for a nil projection, one
// whose Name is empty, or a closed runner.
func (r *Runner) Rebuild(ctx context.Context, p Projection) error {
	if r == nil || r.store == nil {
		return errors.New("cqrs: Runner.Rebuild: the runner was not made by NewRunner")
	}
	if nilcheck.IsNil(p) {
		return errors.New("cqrs: Runner.Rebuild: nil projection")
	}
	// What Start would refuse is refused before the read model is reset.
	if p.Name() == "" {
		return fmt.Errorf("cqrs: Runner.Rebuild: projection %T has an empty name", p)
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return errors.New("cqrs: Runner.Rebuild: runner is closed")
	}
	reset, ok := p.(Resetter)
	if !ok {
		return fmt.Errorf("cqrs: projection %q cannot be rebuilt: it has no Reset method", p.Name())
	}
	r.Stop(p.Name())
	if err := reset.Reset(ctx); err != nil {
		return fmt.Errorf("cqrs: resetting projection %q: %w", p.Name(), err)
	}
	if err := r.checkpoints.SaveCheckpoint(ctx, p.Name(), 0); err != nil {
		return err
	}
	return r.Start(p)
}

// Err returns why the projection called name stopped, or nil.
func (r *Runner) Err(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs[name]
}

// Close stops every projection and waits for them.
func (r *Runner) Close() error {
	r.mu.Lock()
	r.closed = true
	for _, j := range r.running {
		j.cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
	if r.lag != nil {
		r.lag.Close()
	}
	return nil
}
