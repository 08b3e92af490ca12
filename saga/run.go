package saga

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/retry"
)

// hookPoint names a point of a step's attempt where tests may stop the
// process (see export_test.go).
type hookPoint string

const (
	hookBeforeStart hookPoint = "before-start"  // before the Started transition is written
	hookAfterStart  hookPoint = "after-start"   // after it, before the action or compensation runs
	hookAfterAction hookPoint = "after-action"  // after the action or compensation, before its outcome is written
	hookAfterResult hookPoint = "after-outcome" // after the outcome is written
)

// stepState is where a step's forward phase stands in a run.
type stepState uint8

const (
	pending stepState = iota // to run (again)
	inFlight
	done
	failed  // failed for good, without effect
	unknown // ended with an unknown outcome, not to be run again
)

type fwdState struct {
	state    stepState
	attempts int
	// maybe is set once an attempt's outcome was unknown (timed out or
	// interrupted): the step may have taken effect even if a later
	// attempt failed, so it is compensated.
	maybe bool
	// prestarted is set when the Started transition of the step's next
	// attempt was written with the success of the step before it.
	prestarted bool
}

type compState struct {
	state    stepState // pending, inFlight or done
	attempts int
}

// run is one saga being run by an orchestrator, from its start or from
// the log after a crash.
type run struct {
	o     *Orchestrator
	d     *definition
	rec   Record
	span  trace.Span
	start time.Time
	done  chan struct{}

	// ctx carries the saga span and the caller's values; it ends when the
	// orchestrator closes or the lease is lost, which stops scheduling.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// attemptCtx ends only when the orchestrator gives up waiting at
	// Close, or the lease is lost: attempts in flight run under it.
	attemptCtx    context.Context
	attemptCancel context.CancelCauseFunc
	stopAttempt   func() bool

	// shown is st, for readers that must not wait for r.mu, which a write
	// to the log holds while it is retried (Wait, the renew loop).
	shown atomic.Pointer[Status]
	// finalizing is set while a write of a final status is under way: its
	// success ends the lease, and the renew loop must not take the lease
	// it then finds gone for one taken over.
	finalizing atomic.Bool
	// leaseFrom is when (o.since) the lease was last known to be extended
	// (created, claimed, reopened or renewed): it holds until leaseFrom
	// plus the lease, unless someone took the saga over.
	leaseFrom atomic.Int64

	// decoded caches data decoded, for the attempts to share (see
	// decoded).
	decoded decoded

	mu      sync.Mutex // guards what follows and orders writes to the log
	seq     int64
	data    []byte
	st      Status // set through setStatus
	fwd     []fwdState
	comp    []compState
	failure error       // why the saga compensates or needs attention
	lost    atomic.Bool // the lease is lost: another orchestrator runs the saga
	// logFailed is set when a write to the log failed for good (the log
	// was unreachable until the lease expired) and stopped the run.
	logFailed atomic.Bool
	final     Status
	// pendingStatus is set when replay found the saga must compensate:
	// execute writes the change of status first.
	pendingStatus bool
	// halt is set when a step after the pivot failed for good: the saga
	// will need attention, and no more attempts start.
	halt bool
}

func newRun(o *Orchestrator, d *definition, rec Record, ts []Transition, ctx context.Context, span trace.Span) *run {
	r := &run{o: o, d: d, rec: rec, span: span, start: rec.CreatedAt, done: make(chan struct{}),
		data: rec.Data, st: Running,
		fwd: make([]fwdState, len(d.steps)), comp: make([]compState, len(d.steps))}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	stop := context.AfterFunc(o.ctx, func() { r.cancel(ErrClosed) })
	r.attemptCtx, r.attemptCancel = context.WithCancelCause(context.WithoutCancel(ctx))
	stopAttempt := context.AfterFunc(o.stepCtx, func() { r.attemptCancel(ErrClosed) })
	r.stopAttempt = func() bool { return stop() && stopAttempt() }
	r.replay(ts)
	r.setStatus(r.st)
	return r
}

// statuses are the statuses of a saga; setStatus points into it, which
// nothing writes.
var statuses = [...]Status{Running, Compensating, Completed, Compensated, NeedsAttention, Resolved}

// knownStatus reports whether st is one of the statuses of a saga.
func knownStatus(st Status) bool { return slices.Contains(statuses[:], st) }

// setStatus sets the run's status. r.mu is held, or the run is not yet
// running.
func (r *run) setStatus(st Status) {
	r.st = st
	if i := slices.Index(statuses[:], st); i >= 0 {
		r.shown.Store(&statuses[i]) // no allocation
		return
	}
	other := st
	r.shown.Store(&other)
}

// replay rebuilds the run's state from the transitions in the log.
func (r *run) replay(ts []Transition) {
	var corrupt error
	// cause is why the saga compensates: the error of the last change to
	// Compensating, which a retry by Orchestrator.Retry brings back.
	var cause error
	defer func() {
		if corrupt != nil {
			r.st, r.failure, r.pendingStatus = NeedsAttention, corrupt, false
		}
	}()
	for _, t := range ts {
		r.seq = max(r.seq, t.Seq)
		if t.Data != nil {
			r.data = t.Data
		}
		if t.Status != "" && !knownStatus(t.Status) {
			corrupt = fmt.Errorf("saga %q: the log has status %s, which no saga has", r.rec.ID, brief.Quote(string(t.Status)))
			continue
		}
		if t.Status != "" {
			r.st = t.Status
			switch {
			case t.Kind == Retried:
				r.failure = nil
				if t.Status == Compensating {
					r.failure = cause
				}
			case t.Error != "":
				r.failure = &loggedError{t.Error}
				if t.Status == Compensating {
					cause = r.failure
				}
			}
		}
		if t.Step == "" {
			continue
		}
		i, ok := r.d.index[t.Step]
		switch {
		case !ok:
			corrupt = fmt.Errorf("saga %q: the log names step %s, which definition %q version %d does not have",
				r.rec.ID, brief.Quote(t.Step), r.d.name, r.d.version)
			continue
		case t.Phase != Forward && t.Phase != Compensate,
			t.Kind != Started && t.Kind != Succeeded && t.Kind != Failed && t.Kind != TimedOut:
			corrupt = fmt.Errorf("saga %q: the log has a transition of step %q with phase %s and kind %s, which no step has",
				r.rec.ID, t.Step, brief.Quote(string(t.Phase)), brief.Quote(string(t.Kind)))
			continue
		}
		if t.Phase == Compensate {
			c := &r.comp[i]
			c.attempts = max(c.attempts, t.Attempt)
			if t.Kind == Succeeded {
				c.state = done
			}
			continue
		}
		f := &r.fwd[i]
		f.attempts = max(f.attempts, t.Attempt)
		switch t.Kind {
		case Started:
			f.state = unknown // until an outcome follows
		case Succeeded:
			f.state = done
		case Failed:
			f.state = failed
		case TimedOut:
			f.state, f.maybe = unknown, true
		}
	}
	// An attempt with no outcome was interrupted: its effect is unknown.
	// Idempotent steps run again; others are compensated.
	var unknownSteps []string
	for i := range r.fwd {
		f := &r.fwd[i]
		switch f.state {
		case unknown:
			f.maybe = true
			if r.st == Running && r.d.steps[i].idempotent {
				f.state = pending
			} else {
				unknownSteps = append(unknownSteps, r.d.steps[i].name)
			}
		case failed:
			if r.st == Running {
				f.state = pending // failed attempts had no effect; retry
			}
		}
	}
	if r.st == Running && len(unknownSteps) > 0 {
		r.st = Compensating
		r.failure = fmt.Errorf("saga: steps %q were interrupted and are not idempotent: their outcome is unknown", unknownSteps)
		r.pendingStatus = true
	}
}

// execute runs the saga to its end, or until the orchestrator closes or
// loses the lease.
func (r *run) execute() {
	o := r.o
	// Measurements cost an allocation even when nothing records them.
	active := o.tel.active.Enabled(r.ctx)
	if active {
		o.tel.active.Add(r.ctx, 1, r.d.sets.name.opt)
	}
	defer func() {
		if active {
			o.tel.active.Add(r.ctx, -1, r.d.sets.name.opt)
		}
		r.stopAttempt()
		r.mu.Lock()
		final, lost := r.final, r.lost.Load()
		r.mu.Unlock()
		if !final.Final() {
			// The run stopped before the saga ended: say why on its span.
			why := "closed"
			switch {
			case lost:
				why = "lease_lost"
			case r.logFailed.Load():
				why = "log_failed"
			}
			o.interrupted(r, why)
		}
		if lost {
			o.tel.leasesLost.Add(r.ctx, 1, r.d.sets.name.opt)
		}
		if !final.Final() && !lost {
			o.release(r.ctx, r.rec.ID)
		}
		r.span.End()
		r.cancel(nil)
		r.attemptCancel(nil)
		close(r.done)
	}()

	if r.pendingStatus {
		if err := r.write(Transition{Status: Compensating, Error: r.failure.Error()}); err != nil {
			r.stop(err)
			return
		}
		r.pendingStatus = false
	}
	if r.st == Running && !r.forward() {
		return
	}
	if r.st == Compensating {
		r.compensateAll()
	}
	if r.st == NeedsAttention && r.final == "" && r.failure != nil {
		// Found so in the log (a corrupt one): report it once more.
		r.needsAttention(r.failure)
	}
}

// stepResult is how an attempt sequence of one step ended, and the steps
// it started: chained, if not -1, runs on in the same goroutine; next
// need goroutines of their own.
type stepResult struct {
	i       int
	next    []int
	chained int
	err     error
}

// chain runs step i and reports how it ended on results. When its success
// started exactly one step, chain runs that one too, on the same
// goroutine, and so on: a sequence of steps costs one goroutine.
func (r *run) chain(i int, results chan<- stepResult) {
	for {
		next, err := r.runStep(i)
		if err != nil || len(next) != 1 {
			results <- stepResult{i, next, -1, err}
			return
		}
		results <- stepResult{i, nil, next[0], nil}
		i = next[0]
	}
}

// loggedError is a failure read back from the log, which keeps its
// message alone.
type loggedError struct{ msg string }

func (e *loggedError) Error() string { return e.msg }

// errStopped marks an attempt sequence stopped by the orchestrator (closed,
// lease lost, log failing): the saga is left for Recover.
type errStopped struct{ err error }

func (e *errStopped) Error() string { return "saga: stopped: " + e.err.Error() }
func (e *errStopped) Unwrap() error { return e.err }

// errSagaFailing stops a step's attempts once another step has failed the
// saga.
var errSagaFailing = errors.New("saga: another step failed")

// errUnknownOutcome marks an attempt of a non-idempotent step that ran out
// of time: its outcome is unknown.
var errUnknownOutcome = errors.New("saga: timed out; the outcome is unknown")

// errDataUpdate marks a step that took effect but whose update of the data
// failed: the step is done, and the saga compensates.
type errDataUpdate struct{ err error }

func (e *errDataUpdate) Error() string { return e.err.Error() }
func (e *errDataUpdate) Unwrap() error { return e.err }

// forward runs the steps whose predecessors are done, in parallel, until
// all are done, one fails, or the run is stopped. The first failure of a
// compensatable step is written at once as the change to Compensating, so
// that a crash while parallel steps finish cannot lose it (a recovered
// saga would otherwise try the failed step again); the steps in flight
// then finish, and start no more attempts. forward reports whether the
// saga is to compensate now.
func (r *run) forward() (compensate bool) {
	steps := r.d.steps
	results := make(chan stepResult, len(steps))
	inflight := 0
	var failure error
	attention := false
	stopped := false
	for {
		if failure == nil && !stopped && r.ctx.Err() == nil {
			r.mu.Lock()
			var ready []int
			for _, i := range r.d.order {
				if r.fwd[i].state == pending && r.depsDone(i) {
					r.fwd[i].state = inFlight
					ready = append(ready, i)
				}
			}
			r.mu.Unlock()
			inflight += len(ready)
			if inflight == 1 && len(ready) == 1 {
				// Nothing else runs: run the chain here rather than on a
				// goroutine of its own. Each step reports once, and results
				// holds as many reports as there are steps.
				r.chain(ready[0], results)
			} else {
				for _, i := range ready {
					go r.chain(i, results)
				}
			}
		}
		if inflight == 0 {
			break
		}
		res := <-results
		inflight--
		if res.chained >= 0 {
			inflight++ // runs on in the goroutine of res.i
		}
		for _, j := range res.next {
			inflight++
			go r.chain(j, results)
		}
		st := &steps[res.i]
		failedNow := false
		r.mu.Lock()
		f := &r.fwd[res.i]
		switch {
		case res.err == nil:
			f.state = done
		case isA[*errStopped](res.err):
			f.state = pending
			stopped = true
		case errors.Is(res.err, errSagaFailing):
			f.state = pending // another step failed first; no more attempts
		case errors.Is(res.err, ErrClosed) || errors.Is(res.err, ErrLeaseLost) ||
			r.ctx.Err() != nil && errors.Is(res.err, context.Cause(r.ctx)):
			// Closed, or taken over, while waiting to retry: leave it for
			// Recover. (A failure for good that comes while closing is
			// recorded as one below.)
			f.state = pending
			stopped = true
		case isA[*errDataUpdate](res.err):
			f.state = done
			failedNow = true
			attention = attention || st.retriable || st.pivot // done, and past undoing
		case errors.Is(res.err, errUnknownOutcome):
			f.state, f.maybe = unknown, true
			failedNow = true
		default:
			f.state = failed
			failedNow = true
			attention = attention || st.retriable
		}
		if failedNow && attention {
			r.halt = true // the steps in flight make no more attempts
		}
		r.mu.Unlock()
		if failedNow && failure == nil {
			failure = fmt.Errorf("step %q: %w", st.name, res.err)
			if !attention {
				if err := r.write(Transition{Status: Compensating, Error: failure.Error()}); err != nil {
					r.stop(err)
					stopped = true
					continue
				}
				r.mu.Lock()
				r.failure = failure
				r.mu.Unlock()
			}
		}
	}
	switch {
	case r.status() == Completed: // written with the last step
		r.end(Completed, nil)
	case stopped || r.ctx.Err() != nil:
		return false
	case r.status() == Compensating:
		return true
	case failure == nil:
		r.end(Completed, nil)
	default: // a Retriable step failed for good
		r.needsAttention(failure)
	}
	return false
}

// depsDone reports whether every step right before step i is done.
// r.mu is held.
func (r *run) depsDone(i int) bool {
	for _, d := range r.d.steps[i].deps {
		if r.fwd[d].state != done {
			return false
		}
	}
	return true
}

// runStep runs the attempts of step i's action under its retry policy. It
// returns the steps that its success started (see succeed).
func (r *run) runStep(i int) (next []int, err error) {
	st := &r.d.steps[i]
	err = r.d.retries[i].Do(r.ctx, func(ctx context.Context) error {
		var attempt int
		var snapshot []byte
		r.mu.Lock()
		pre, running := r.fwd[i].prestarted, r.st == Running && !r.halt
		r.fwd[i].prestarted = false
		attempt, snapshot = r.fwd[i].attempts, r.data
		r.mu.Unlock()
		switch {
		case pre && (!running || r.ctx.Err() != nil):
			// Started with the step before it, but since then a parallel
			// step has failed the saga or the orchestrator is closing:
			// record that the attempt never ran, so that Recover does not
			// take its outcome for unknown.
			why := errSagaFailing
			if running {
				why = ErrClosed
			}
			if err := r.write(Transition{Step: st.name, Phase: Forward, Kind: Failed, Attempt: attempt, Error: "not run: " + why.Error()}); err != nil {
				return retry.Permanent(&errStopped{err})
			}
			if why == ErrClosed {
				return retry.Permanent(&errStopped{why})
			}
			return retry.Permanent(errSagaFailing)
		case !pre:
			r.hookAt(hookBeforeStart, st.name, Forward)
			// The check that the saga still runs forward and the write of
			// Started are one step under r.mu: no attempt starts after the
			// saga turned to compensating.
			err := r.writeWith(func() ([]Transition, error) {
				if r.st != Running || r.halt {
					return nil, errSagaFailing
				}
				r.fwd[i].attempts++
				attempt, snapshot = r.fwd[i].attempts, r.data
				return []Transition{{Step: st.name, Phase: Forward, Kind: Started, Attempt: attempt}}, nil
			}, nil)
			switch {
			case errors.Is(err, errSagaFailing):
				return retry.Permanent(err)
			case err != nil:
				return retry.Permanent(&errStopped{err})
			}
		}
		r.hookAt(hookAfterStart, st.name, Forward)

		actx, span, cancel := r.attemptContext(ctx, st, Forward, attempt)
		defer cancel()
		apply, err := callAction(actx, st, r.o.codec, snapshot, &r.decoded)
		r.hookAt(hookAfterAction, st.name, Forward)
		switch {
		case err == nil:
			var dataErr, werr error
			next, dataErr, werr = r.succeed(i, attempt, apply)
			r.endAttempt(span, Forward, st.name, Succeeded, dataErr)
			if werr != nil {
				return retry.Permanent(&errStopped{werr})
			}
			r.hookAt(hookAfterResult, st.name, Forward)
			if dataErr != nil {
				return retry.Permanent(&errDataUpdate{dataErr})
			}
			return nil
		case r.attemptCtx.Err() != nil:
			// Cut short by a hard Close or a lost lease: the outcome is
			// unknown and stays so in the log, for Recover to decide.
			r.endAttempt(span, Forward, st.name, TimedOut, err)
			return retry.Permanent(&errStopped{context.Cause(r.attemptCtx)})
		case actx.Err() == context.DeadlineExceeded:
			r.endAttempt(span, Forward, st.name, TimedOut, err)
			r.mu.Lock()
			r.fwd[i].maybe = true
			r.mu.Unlock()
			if werr := r.write(Transition{Step: st.name, Phase: Forward, Kind: TimedOut, Attempt: attempt, Error: err.Error()}); werr != nil {
				return retry.Permanent(&errStopped{werr})
			}
			r.hookAt(hookAfterResult, st.name, Forward)
			if st.idempotent {
				return err
			}
			return retry.Permanent(fmt.Errorf("%w: %w", errUnknownOutcome, err))
		default:
			r.endAttempt(span, Forward, st.name, Failed, err)
			if werr := r.write(Transition{Step: st.name, Phase: Forward, Kind: Failed, Attempt: attempt, Error: err.Error()}); werr != nil {
				return retry.Permanent(&errStopped{werr})
			}
			r.hookAt(hookAfterResult, st.name, Forward)
			return err
		}
	})
	return next, err
}

// succeed records step i's success, with its update of the data, in one
// write with the Started transitions of the steps it makes ready (which
// the forward loop then runs without writing Started again) and, if it
// was the last step, the saga's completion: one write per step instead of
// two. It returns the steps it started.
func (r *run) succeed(i, attempt int, apply func([]byte) ([]byte, error)) (next []int, dataErr, err error) {
	st := &r.d.steps[i]
	err = r.writeWith(func() ([]Transition, error) {
		next = next[:0]
		t := Transition{Step: st.name, Phase: Forward, Kind: Succeeded, Attempt: attempt}
		if apply != nil {
			if t.Data, dataErr = safeApply(apply, r.data); dataErr != nil {
				t.Data = nil
			}
		}
		// Room for the Started of each dependent, or the completion.
		ts := append(make([]Transition, 0, 1+max(1, len(st.dependents))), t)
		if r.st != Running || r.halt || dataErr != nil {
			return ts, nil
		}
		last := true
		for j := range r.fwd {
			if j != i && r.fwd[j].state != done {
				last = false
			}
		}
		if last {
			return append(ts, Transition{Status: Completed}), nil
		}
		for _, j := range st.dependents {
			if r.fwd[j].state == pending && r.depsDoneBut(j, i) {
				next = append(next, j)
				ts = append(ts, Transition{Step: r.d.steps[j].name, Phase: Forward, Kind: Started, Attempt: r.fwd[j].attempts + 1})
			}
		}
		return ts, nil
	}, func(ts []Transition) {
		if ts[0].Data != nil {
			r.data = ts[0].Data
		}
		r.fwd[i].state = done
		for _, j := range next {
			r.fwd[j].attempts++
			r.fwd[j].state, r.fwd[j].prestarted = inFlight, true
		}
	})
	if err != nil {
		next = nil
	}
	return next, dataErr, err
}

// depsDoneBut reports whether every step right before step j is done,
// counting step i as done. r.mu is held.
func (r *run) depsDoneBut(j, i int) bool {
	for _, d := range r.d.steps[j].deps {
		if d != i && r.fwd[d].state != done {
			return false
		}
	}
	return true
}

// attemptContext returns the context of one attempt: values of ctx (the
// retry span, the saga span, the caller's values), the cancellation of the
// run's attemptCtx, the step's timeout, a span and the step's StepInfo.
func (r *run) attemptContext(ctx context.Context, st *stepSpec, phase Phase, attempt int) (context.Context, trace.Span, context.CancelFunc) {
	var actx context.Context
	var cancel context.CancelCauseFunc
	stop := func() bool { return false }
	if ctx == r.ctx {
		// A first attempt: attemptCtx has ctx's values already.
		actx, cancel = context.WithCancelCause(r.attemptCtx)
	} else {
		// A retry: ctx holds the retry span.
		actx, cancel = context.WithCancelCause(context.WithoutCancel(ctx))
		stop = context.AfterFunc(r.attemptCtx, func() { cancel(context.Cause(r.attemptCtx)) })
	}
	var cancelTimeout context.CancelFunc = func() {}
	if st.timeout > 0 {
		actx, cancelTimeout = context.WithTimeout(actx, st.timeout)
	}
	span := noopSpan
	if !r.o.tel.spans.Skip(actx) {
		name := "step " + st.name
		if phase == Compensate {
			name = "compensate " + st.name
		}
		actx, span = r.o.tel.tracer.Start(actx, name, trace.WithAttributes(
			AttrName.String(r.rec.Name), AttrID.String(r.rec.ID), AttrStep.String(st.name),
			AttrPhase.String(string(phase)), AttrAttempt.Int(attempt)))
	}
	actx = &stepContext{actx, StepInfo{SagaID: r.rec.ID, Saga: r.rec.Name, Step: st.name, Phase: phase, Attempt: attempt}}
	return actx, span, func() {
		cancelTimeout()
		stop()
		cancel(nil)
	}
}

// stepContext is the context of an attempt: its parent with the step's
// StepInfo as the value of stepKey, in one allocation where
// context.WithValue and the StepInfo would take two.
type stepContext struct {
	context.Context
	info StepInfo
}

// Value returns the attempt's StepInfo for stepKey, and the parent's
// value for any other key.
func (c *stepContext) Value(key any) any {
	if _, ok := key.(stepKey); ok {
		return &c.info
	}
	return c.Context.Value(key)
}

// endAttempt records an attempt's outcome in its span and metrics, with
// error.type if err is not nil.
func (r *run) endAttempt(span trace.Span, phase Phase, step string, outcome Kind, err error) {
	if r.o.tel.steps.Enabled(r.ctx) {
		r.o.tel.steps.Add(r.ctx, 1, r.d.sets.steps[kindSet{step, phase, outcome}].with(err))
	}
	if span.IsRecording() { // attributes of a span that records nothing would be allocated for nothing
		span.SetAttributes(AttrOutcome.String(string(outcome)))
		if err != nil {
			telemetry.RecordError(span, err)
		}
	}
	span.End()
}

// isA reports whether err matches an error of type T (errors.As), with
// the target allocated only when it is called: a target declared where
// most errors are nil would escape, and be allocated, every time.
func isA[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// callAction runs st's action, turning a panic into an error.
func callAction(ctx context.Context, st *stepSpec, c Codec, snapshot []byte, cache *decoded) (apply func([]byte) ([]byte, error), err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return st.action(ctx, c, snapshot, cache)
}

// safeApply applies a step's update to the data, turning a panic (in the
// update or the codec) into an error.
func safeApply(apply func([]byte) ([]byte, error), cur []byte) (b []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			b, err = nil, &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return apply(cur)
}

// callCompensate runs st's compensation, turning a panic into an error.
func callCompensate(ctx context.Context, st *stepSpec, c Codec, data []byte, cache *decoded) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return st.compensate(ctx, c, data, cache)
}

// compensateAll undoes, in reverse order, the steps that are done or may
// have taken effect: a step's compensation runs once the compensations of
// the steps after it are done. A compensation that fails for good (or a
// step that has none) holds back those of the steps before it, whose undo
// would come too early, but not those of the other branches: they are
// compensated, and the saga then needs attention, naming every step left
// in effect.
func (r *run) compensateAll() {
	steps := r.d.steps
	r.mu.Lock()
	need := make([]bool, len(steps))
	failed := make([]error, len(steps)) // compensations failed for good, or missing
	for i := range steps {
		f := r.fwd[i]
		if (f.state == done || f.maybe || f.state == unknown) && !steps[i].retriable {
			need[i] = r.comp[i].state != done
			if steps[i].compensate == nil {
				need[i], failed[i] = true, errNoCompensation
			}
		}
	}
	cause := r.failure
	r.mu.Unlock()

	results := make(chan stepResult, len(steps))
	inflight := 0
	stopped := false
	for {
		if !stopped && r.ctx.Err() == nil {
			r.mu.Lock()
			for j := len(r.d.order) - 1; j >= 0; j-- {
				i := r.d.order[j]
				if need[i] && failed[i] == nil && r.comp[i].state == pending && r.dependentsCompensated(i, need) {
					r.comp[i].state = inFlight
					inflight++
					go func() { results <- stepResult{i, nil, -1, r.runCompensation(i)} }()
				}
			}
			r.mu.Unlock()
		}
		if inflight == 0 {
			break
		}
		res := <-results
		inflight--
		r.mu.Lock()
		c := &r.comp[res.i]
		switch {
		case res.err == nil:
			c.state = done
		case isA[*errStopped](res.err) || r.ctx.Err() != nil:
			c.state = pending
			stopped = true
		default:
			c.state = pending
			failed[res.i] = res.err
		}
		r.mu.Unlock()
	}
	if stopped || r.ctx.Err() != nil {
		return
	}
	e := &compensationError{}
	r.mu.Lock()
	for i := range steps {
		if need[i] && r.comp[i].state != done {
			e.left = append(e.left, steps[i].name)
		}
		if failed[i] != nil {
			e.steps = append(e.steps, steps[i].name)
			e.errs = append(e.errs, failed[i])
		}
	}
	r.mu.Unlock()
	if len(e.errs) > 0 {
		r.needsAttention(e)
		return
	}
	r.end(Compensated, cause)
}

// errNoCompensation is the failure of a step that may have taken effect
// and has no compensation (the pivot, whose outcome is unknown).
var errNoCompensation = errors.New("it may have taken effect and has no compensation")

// compensationError is why a compensating saga needs attention: the
// compensations that failed for good, and every step left in effect (those
// and the steps before them, whose compensations did not run).
type compensationError struct {
	steps []string // whose compensation failed, or is missing
	errs  []error  // why, by steps
	left  []string
}

func (e *compensationError) Error() string {
	var b strings.Builder
	for k, name := range e.steps {
		if k > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "compensation of step %q: %v", name, e.errs[k])
	}
	fmt.Fprintf(&b, "; left in effect: steps %q", e.left)
	return b.String()
}

func (e *compensationError) Unwrap() []error { return e.errs }

// dependentsCompensated reports whether the steps after step i that need
// compensating are compensated. r.mu is held.
func (r *run) dependentsCompensated(i int, need []bool) bool {
	for _, j := range r.d.steps[i].dependents {
		if (need[j] && r.comp[j].state != done) || !r.dependentsCompensated(j, need) {
			return false
		}
	}
	return true
}

// runCompensation runs the attempts of step i's compensation under the
// orchestrator's compensation policy.
func (r *run) runCompensation(i int) error {
	st := &r.d.steps[i]
	return r.o.cfg.compensation.Do(r.ctx, func(ctx context.Context) error {
		r.mu.Lock()
		r.comp[i].attempts++
		attempt := r.comp[i].attempts
		data := r.data
		r.mu.Unlock()

		r.hookAt(hookBeforeStart, st.name, Compensate)
		if err := r.write(Transition{Step: st.name, Phase: Compensate, Kind: Started, Attempt: attempt}); err != nil {
			return retry.Permanent(&errStopped{err})
		}
		r.hookAt(hookAfterStart, st.name, Compensate)
		actx, span, cancel := r.attemptContext(ctx, st, Compensate, attempt)
		defer cancel()
		err := callCompensate(actx, st, r.o.codec, data, &r.decoded)
		r.hookAt(hookAfterAction, st.name, Compensate)
		kind := Succeeded
		switch {
		case err == nil:
		case r.attemptCtx.Err() != nil:
			r.endAttempt(span, Compensate, st.name, TimedOut, err)
			return retry.Permanent(&errStopped{context.Cause(r.attemptCtx)})
		case actx.Err() == context.DeadlineExceeded:
			kind = TimedOut
		default:
			kind = Failed
		}
		r.endAttempt(span, Compensate, st.name, kind, err)
		t := Transition{Step: st.name, Phase: Compensate, Kind: kind, Attempt: attempt}
		if err != nil {
			t.Error = err.Error()
		}
		if werr := r.write(t); werr != nil {
			return retry.Permanent(&errStopped{werr})
		}
		r.hookAt(hookAfterResult, st.name, Compensate)
		return err
	})
}

// needsAttention stops the saga in status NeedsAttention and tells.
func (r *run) needsAttention(cause error) {
	if err := r.write(Transition{Status: NeedsAttention, Error: cause.Error()}); err != nil {
		r.stop(err)
		return
	}
	r.o.tel.needsAttention.Add(r.ctx, 1, r.d.sets.name.with(cause))
	r.end(NeedsAttention, cause)
	if f := r.o.cfg.needsAttention; f != nil {
		// The saga has ended, and with it the lease and the run's
		// contexts' reasons to end: the function's context ends only when
		// Close gives up waiting.
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.ctx))
		stop := context.AfterFunc(r.o.stepCtx, cancel)
		defer func() {
			stop()
			cancel()
		}()
		func() {
			defer func() {
				if v := recover(); v != nil {
					otel.Handle(fmt.Errorf("saga: the WithNeedsAttention function panicked: %v", v))
				}
			}()
			f(ctx, r.rec.ID, r.rec.Name, cause)
		}()
	}
}

// end records the saga's final status (written already for
// NeedsAttention).
func (r *run) end(st Status, cause error) {
	if st != NeedsAttention && r.status() != st { // Completed may come with the last step
		t := Transition{Status: st}
		if cause != nil {
			t.Error = cause.Error()
		}
		if err := r.write(t); err != nil {
			r.stop(err)
			return
		}
	}
	r.mu.Lock()
	r.setStatus(st)
	r.final, r.failure = st, cause
	r.mu.Unlock()
	// Measurements and attributes cost allocations even when nothing
	// records them.
	counted, timed := r.o.tel.executions.Enabled(r.ctx), !r.start.IsZero() && r.o.tel.duration.Enabled(r.ctx)
	if counted || timed {
		opt := r.d.sets.executions[st].with(cause)
		if counted {
			r.o.tel.executions.Add(r.ctx, 1, opt)
		}
		if timed {
			r.o.tel.duration.Record(r.ctx, time.Since(r.start).Seconds(), opt)
		}
	}
	if r.span.IsRecording() {
		r.span.SetAttributes(AttrOutcome.String(string(st)))
		if cause != nil {
			telemetry.RecordError(r.span, cause)
		}
	}
}

// stop ends the run without a final status after a failure to write to
// the log; another run resumes the saga.
func (r *run) stop(err error) {
	if errors.Is(err, ErrLeaseLost) {
		r.abandon(err)
	}
	if r.ctx.Err() == nil {
		otel.Handle(fmt.Errorf("saga %q: stopped: %w", r.rec.ID, err))
	}
	telemetry.RecordError(r.span, err)
	r.cancel(err)
}

// abandon stops the run because another orchestrator took the saga over.
func (r *run) abandon(err error) {
	r.lost.Store(true)
	r.cancel(err)
	r.attemptCancel(err)
}

// status returns the saga's status in this run, without waiting for a
// write to the log under way.
func (r *run) status() Status { return *r.shown.Load() }

// write appends t to the log as the saga's next transition.
func (r *run) write(t Transition) error {
	return r.writeWith(func() ([]Transition, error) { return []Transition{t}, nil }, nil)
}

// writeWith builds transitions and appends them in one write, holding r.mu
// so that transitions are numbered and written in order, then calls after
// with them. An error of build is returned as is, with nothing written.
// The write uses attemptCtx: a graceful Close lets it finish.
//
// A write that fails is tried again, backing off, for as long as the
// lease holds by the orchestrator's clock (a log that is down for less
// than that does not stop the saga), but not once the run is stopping
// (the orchestrator closes, or another took the saga over). When it gives
// up, the run stops, and the saga waits for a recovery.
func (r *run) writeWith(build func() ([]Transition, error), after func([]Transition)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost.Load() {
		return ErrLeaseLost
	}
	ts, err := build()
	if err != nil {
		return err
	}
	final := false
	for i := range ts {
		ts[i].Seq = r.seq + 1 + int64(i)
		ts[i].Error = logText(ts[i].Error)
		final = final || ts[i].Status.Final()
	}
	if final {
		r.finalizing.Store(true)
		defer r.finalizing.Store(false)
	}
	tries := 0
	err = r.o.logRetry.Do(r.attemptCtx, func(ctx context.Context) error {
		tries++
		err := r.o.log.Append(ctx, r.rec.ID, r.o.cfg.owner, ts...)
		if err == nil {
			return nil
		}
		if tries > 1 && errors.Is(err, ErrLeaseLost) && r.wrote(ctx, ts) {
			// An earlier try was committed although it seemed to fail. A
			// final status ended the lease; otherwise the run goes on only
			// if the lease is still its own: another orchestrator may have
			// taken the saga over since that try, and acted on what it
			// wrote (taken a step started for one of unknown outcome).
			if final {
				return nil
			}
			if err = r.holdsLease(ctx); err == nil || errors.Is(err, ErrLeaseLost) {
				return err
			}
		}
		if r.ctx.Err() != nil || !r.leaseHolds() {
			return retry.Permanent(err)
		}
		return err
	})
	if err != nil {
		switch {
		case errors.Is(err, ErrLeaseLost):
			r.lost.Store(true)
		case r.ctx.Err() == nil:
			r.logFailed.Store(true)
		}
		return err
	}
	r.seq += int64(len(ts))
	for _, t := range ts {
		if t.Status != "" {
			r.setStatus(t.Status)
		}
	}
	if after != nil {
		after(ts)
	}
	return nil
}

// holdsLease asks the log whether the run still holds the saga's lease,
// renewing it if so. It returns an error matching ErrLeaseLost, and not
// to be retried, if another took the saga over, and a failure of the log
// as it is.
func (r *run) holdsLease(ctx context.Context) error {
	leaseFrom := r.o.since()
	lost, err := r.o.log.Renew(ctx, r.o.cfg.owner, r.o.cfg.lease, []string{r.rec.ID})
	switch {
	case err != nil:
		return err
	case len(lost) > 0:
		return retry.Permanent(fmt.Errorf("saga %q: %w", r.rec.ID, ErrLeaseLost))
	}
	r.leaseFrom.Store(leaseFrom)
	return nil
}

// leaseHolds reports whether the saga's lease has not expired yet by the
// orchestrator's clock.
func (r *run) leaseHolds() bool {
	return r.o.since()-r.leaseFrom.Load() < int64(r.o.cfg.lease)
}

// maxErrorText is how many bytes of an error message a transition keeps.
const maxErrorText = 8 << 10

// logText returns the text of an error message to write to the log:
// through ValidText, then at most maxErrorText bytes of it (cut on a
// character) followed by the message's length. Text it returned already
// comes back as it is: a resumed or retried run writes the error it read
// from the log with the saga's final status, and a cut message cut again
// would say it was of about 8 KiB. (ValidText comes first because it can
// triple a message's bytes: each NUL byte becomes U+FFFD.)
func logText(msg string) string {
	n := len(msg)
	msg = ValidText(msg)
	if len(msg) <= maxErrorText || isCut(msg) {
		return msg
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + fmt.Sprintf("…(%d bytes)", n)
}

// isCut reports whether msg is as logText cuts a message: at most
// maxErrorText bytes, then "…(<length> bytes)", the length a number of
// at most 19 digits.
func isCut(msg string) bool {
	i := strings.LastIndex(msg, "…(")
	if i < 0 || i > maxErrorText {
		return false
	}
	digits, ok := strings.CutSuffix(msg[i+len("…("):], " bytes)")
	if !ok || digits == "" || len(digits) > 19 { // an int64's digits at most
		return false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// wrote reports whether the log holds ts, written by an earlier try whose
// reply was lost.
func (r *run) wrote(ctx context.Context, ts []Transition) bool {
	_, stored, err := r.o.log.Load(ctx, r.rec.ID)
	if err != nil {
		return false
	}
	bySeq := make(map[int64]Transition, len(stored))
	for _, got := range stored {
		bySeq[got.Seq] = got
	}
	for _, t := range ts {
		got, ok := bySeq[t.Seq]
		if !ok || got.Step != t.Step || got.Phase != t.Phase || got.Kind != t.Kind ||
			got.Attempt != t.Attempt || got.Status != t.Status || !bytes.Equal(got.Data, t.Data) {
			return false
		}
	}
	return true
}

func (r *run) hookAt(p hookPoint, step string, phase Phase) {
	if r.o.hook != nil {
		r.o.hook(p, step, phase)
	}
}

// PanicError is the error a panicking action or compensation is turned
// into.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("saga: step panicked: %v", e.Value) }

// ErrorType returns "saga.panic", the error.type of a step's panic.
func (e *PanicError) ErrorType() string { return "saga.panic" }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// failureFrom returns the error recorded with a saga's last change of
// status, for Wait on a saga run elsewhere: for a resolved saga, the one
// that made it need attention, not the operator's reason; for a saga
// compensated after a retry, the one that made it compensate.
func failureFrom(st Status, ts []Transition) *StepError {
	if st == Completed {
		return nil
	}
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Status != "" && ts[i].Status != Resolved && ts[i].Error != "" {
			return parseFailure(ts[i].Error, nil)
		}
	}
	return nil
}
