package circuitbreaker

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Breaker is a circuit breaker: it watches the outcomes of calls to a
// dependency and, when too many fail or are slow, opens and rejects calls
// for a while instead of sending them, then lets a few probe calls through
// to find out whether the dependency has recovered.
//
// A Breaker is safe for concurrent use. Its admission path in the closed
// state takes no lock and allocates nothing.
type Breaker struct {
	name string
	cfg  config

	// trip rules, derived from cfg
	rateRule     bool
	minCalls     int
	timed        bool
	probeTimeout int64
	needed       int

	epoch time.Time // monotonic origin of the breaker's clock
	cur   atomic.Pointer[period]
	tel   *instruments

	mu         sync.Mutex // serialises transitions and listener delivery
	pending    []StateChange
	called     int // listeners that have had pending[0]
	delivering bool
}

// period is one stretch of time in one state. Every transition installs a
// new period, so a call admitted in an earlier one (compared by pointer) can
// never count towards the current one: it records into its own period's
// window, which nobody reads any more.
type period struct {
	state  State
	forced bool  // opened by Trip: stays open until Reset
	until  int64 // open: when a probe may go, on the breaker's clock
	// expired is set by timer when until has passed. Rejecting then costs
	// an atomic load instead of a clock read (which would double the cost
	// of a rejection); the transition itself stays lazy, made by the next
	// call.
	expired  atomic.Bool
	timer    *time.Timer
	rejected atomic.Int64
	err      *RejectedError // returned to every call rejected in this period

	// closed
	cw     *countWindow
	tw     *timeWindow
	consec atomic.Int64

	// half-open: the probes in flight, and the finished ones counted as
	// the closed window counts calls
	mu        sync.Mutex
	probes    []*probe // in flight, oldest first
	calls     int      // finished or timed out; ignored ones do not count
	successes int      // fast ones: only they count towards closing
	failures  int      // failed or timed out
	slow      int      // failed or not
}

type probe struct {
	start    int64
	finished atomic.Bool
}

// New returns a closed breaker called name, which appears in its errors and
// as the circuitbreaker.name attribute of its metrics.
//
// With no options the breaker keeps the outcomes of the last 100 calls and
// opens for 30 seconds when at least 20 calls are in the window and half of
// them failed; it then lets one probe call through, and closes if it
// succeeds.
//
// New panics if an option is invalid (a nil option among them), naming
// every invalid option, as [time.NewTicker] does for a non-positive
// interval: options are written in code, so a bad one is a programming
// error. For options built from configuration, check them first with
// [Validate], which returns the same faults as an error.
func New(name string, opts ...Option) *Breaker { return newBreaker(name, opts, nil) }

// newBreaker is [New], with the breaker's counts of calls and transitions
// starting from past's when past is not nil: a [Group] hands a key's new
// breaker the counts of the one it let go.
func newBreaker(name string, opts []Option, past *tally) *Breaker {
	cfg, err := newConfig(opts)
	if err != nil {
		panic(fmt.Sprintf("circuitbreaker: New(%q): %v", name, err))
	}
	b := &Breaker{
		name:         name,
		cfg:          cfg,
		rateRule:     cfg.consecutive == 0 || cfg.failureRateSet,
		minCalls:     cfg.minimumCalls,
		timed:        cfg.slowThreshold > 0 || cfg.histogram,
		probeTimeout: int64(cfg.probeTimeout),
		needed:       cfg.successes,
		epoch:        time.Now(),
	}
	if cfg.windowDuration == 0 {
		b.minCalls = min(b.minCalls, cfg.windowSize)
	}
	if b.probeTimeout == 0 {
		b.probeTimeout = int64(cfg.openDuration)
	}
	if b.needed == 0 {
		b.needed = cfg.probes
	}
	b.tel = newInstruments(name, cfg.meterProvider)
	if past != nil {
		// Before observe, so that no collection sees the counts start
		// from zero.
		b.tel.seed(past)
	}
	b.cur.Store(b.newPeriod(StateClosed, false, 0))
	b.tel.observe(b, cfg.meterProvider)
	return b
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// now reads the breaker's monotonic clock: nanoseconds since New. Reading
// only the monotonic clock costs half of [time.Now].
func (b *Breaker) now() int64 { return int64(time.Since(b.epoch)) }

func (b *Breaker) newPeriod(s State, forced bool, now int64) *period {
	p := &period{state: s, forced: forced}
	switch s {
	case StateClosed:
		if b.cfg.windowDuration > 0 {
			p.tw = newTimeWindow(int64(b.cfg.windowDuration)/int64(b.cfg.windowBuckets), b.cfg.windowBuckets)
		} else {
			p.cw = newCountWindow(b.cfg.windowSize)
		}
	case StateOpen:
		if forced {
			p.err = newRejectedError(b.name, StateOpen, time.Time{})
			break
		}
		// Saturating arithmetic: WithOpenDuration accepts any positive
		// duration, and the longest must not wrap the end into the past.
		d := b.cfg.openDuration
		if j := b.cfg.openJitter; j > 0 {
			extra := rand.Float64() * j * float64(d)
			if extra >= 0x1p63 || time.Duration(extra) > math.MaxInt64-d {
				d = math.MaxInt64
			} else {
				d += time.Duration(extra)
			}
		}
		p.until = math.MaxInt64
		if int64(d) <= math.MaxInt64-now {
			p.until = now + int64(d)
		}
		p.timer = time.AfterFunc(d, func() { p.expired.Store(true) })
		p.err = newRejectedError(b.name, StateOpen, b.epoch.Add(time.Duration(p.until)))
	case StateHalfOpen:
		p.err = newRejectedError(b.name, StateHalfOpen, time.Time{})
	}
	return p
}

// Execute calls fn if the breaker lets the call through, and records how it
// went. It returns fn's error, or, without calling fn, a [*RejectedError]
// matching [ErrOpen] or [ErrTooManyRequests].
//
// fn is passed ctx unchanged. If fn panics, the call counts as a failure and
// the panic goes on. Execute does not watch ctx itself: a cancelled call
// counts as whatever the classifier makes of the error fn returns (so, by
// default, a failure if fn returns the cause of a context cancelled with
// [context.WithCancelCause] rather than an error matching
// [context.Canceled]). If fn is nil, Execute returns [ErrNilFunc] at once:
// no call is admitted or counted.
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) error {
	if fn == nil {
		return ErrNilFunc
	}
	p, pr, err := b.admit(ctx)
	if err != nil {
		return err
	}
	var start int64
	if b.timed {
		start = b.now()
	}
	finished := false
	defer func() {
		if !finished {
			b.finish(ctx, p, pr, start, Failure)
		}
	}()
	err = fn(ctx)
	finished = true
	b.finish(ctx, p, pr, start, b.cfg.classify(err))
	return err
}

// Do is [Breaker.Execute] for a function that returns a value as well as an
// error. On rejection it returns the zero T and the rejection error; if fn
// is nil, the zero T and [ErrNilFunc], admitting and counting no call.
func Do[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	if fn == nil {
		var zero T
		return zero, ErrNilFunc
	}
	p, pr, err := b.admit(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	var start int64
	if b.timed {
		start = b.now()
	}
	finished := false
	defer func() {
		if !finished {
			b.finish(ctx, p, pr, start, Failure)
		}
	}()
	v, err := fn(ctx)
	finished = true
	b.finish(ctx, p, pr, start, b.cfg.classify(err))
	return v, err
}

// Allow is the two-step form of [Breaker.Execute], for callers that cannot
// wrap the call in a function (a stream that ends later, a custom
// transport). If the breaker lets the call through, Allow returns a done
// function to call with the call's error when it has finished; otherwise it
// returns a [*RejectedError], and a done that does nothing (never nil, so
// calling it by mistake after a rejection is harmless).
//
// done must be called once; later calls do nothing. A call whose done is
// never called counts for nothing, except that a half-open probe holds its
// slot until the probe timeout ([WithProbeTimeout]). Allow allocates the done
// function, so prefer Execute where it fits.
func (b *Breaker) Allow(ctx context.Context) (done func(err error), err error) {
	p, pr, err := b.admit(ctx)
	if err != nil {
		return doneRejected, err
	}
	var start int64
	if b.timed {
		start = b.now()
	}
	var once atomic.Bool
	return func(err error) {
		if once.CompareAndSwap(false, true) {
			b.finish(ctx, p, pr, start, b.cfg.classify(err))
		}
	}, nil
}

// doneRejected is the done function of a rejected Allow.
func doneRejected(error) {}

// admit decides whether a call may go. It returns the period the call is
// admitted in and, when half-open, its probe.
func (b *Breaker) admit(ctx context.Context) (*period, *probe, error) {
	if b == nil {
		return nil, nil, ErrNilBreaker
	}
	p := b.cur.Load()
	if p == nil { // the zero Breaker
		return nil, nil, ErrNilBreaker
	}
	if p.state == StateClosed {
		return p, nil, nil
	}
	return b.admitSlow(ctx, p)
}

func (b *Breaker) admitSlow(ctx context.Context, p *period) (*period, *probe, error) {
	for {
		switch p.state {
		case StateClosed:
			return p, nil, nil
		case StateOpen:
			if p.expired.Load() {
				p = b.transition(ctx, p, StateHalfOpen, false)
				continue
			}
			return nil, nil, b.reject(ctx, p)
		case StateHalfOpen:
			pr, stuck := b.tryProbe(p)
			if pr != nil {
				return p, pr, nil
			}
			if stuck {
				p = b.transition(ctx, p, StateOpen, false)
				if p.state == StateOpen {
					return nil, nil, b.reject(ctx, p)
				}
				continue
			}
			return nil, nil, b.reject(ctx, p)
		}
	}
}

// tryProbe admits a half-open probe if a slot is free and more successes are
// still needed. Otherwise it reports stuck when the oldest probe in flight
// has run longer than the probe timeout.
func (b *Breaker) tryProbe(p *period) (pr *probe, stuck bool) {
	now := b.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.probes) < b.cfg.probes && p.successes+len(p.probes) < b.needed {
		pr = &probe{start: now}
		p.probes = append(p.probes, pr)
		return pr, false
	}
	// No probe can be admitted: either every slot is taken or the probes in
	// flight are enough to close. Either way, waiting on a probe that has
	// overrun its timeout would wedge the breaker.
	if len(p.probes) > 0 && now-p.probes[0].start >= b.probeTimeout {
		p.calls++
		p.failures++
		return nil, true
	}
	return nil, false
}

func (b *Breaker) reject(ctx context.Context, p *period) error {
	p.rejected.Add(1)
	b.tel.calls[outcomeRejected].Inc()
	telemetry.AddEvent(ctx, "circuitbreaker.rejected", func() []attribute.KeyValue {
		return []attribute.KeyValue{b.tel.name, AttrState.String(p.state.String()), telemetry.ErrorType(p.err)}
	})
	return p.err
}

// finish records the outcome of a call admitted in period p.
func (b *Breaker) finish(ctx context.Context, p *period, pr *probe, start int64, o Outcome) {
	slow := false
	attr := int(o) // Success, Failure and Ignored line up with the outcome attribute
	if o == Ignored {
		attr = outcomeIgnored
	}
	if b.timed {
		d := b.now() - start
		if b.cfg.slowThreshold > 0 && d >= int64(b.cfg.slowThreshold) && o == Success {
			slow, attr = true, outcomeSlow
		} else if o == Failure && b.cfg.slowThreshold > 0 && d >= int64(b.cfg.slowThreshold) {
			slow = true
		}
		b.tel.duration.Record(ctx, time.Duration(d).Seconds(), b.tel.durOpts[attr]...)
	}
	b.tel.calls[attr].Inc()
	if pr != nil {
		b.finishProbe(ctx, p, pr, o, slow)
		return
	}
	if o == Ignored {
		return
	}
	if b.recordClosed(p, o == Failure, slow) {
		b.transition(ctx, p, StateOpen, false)
	}
}

// recordClosed records an outcome in a closed period's window and reports
// whether the breaker should trip.
func (b *Breaker) recordClosed(p *period, failed, slow bool) bool {
	if n := b.cfg.consecutive; n > 0 {
		if failed {
			if p.consec.Add(1) >= int64(n) {
				return true
			}
		} else if p.consec.Load() != 0 {
			p.consec.Store(0)
		}
	}
	var c counts
	if p.cw != nil {
		slot := uint32(slotSuccess)
		if failed {
			slot = slotFailure
		}
		if slow {
			slot |= slotSlow
		}
		var check bool
		if c, check = p.cw.record(slot); !check {
			return false
		}
	} else {
		c = p.tw.record(b.now(), failed, slow)
	}
	return b.tooBad(c)
}

// tooBad applies the rate rules to a window's counts.
func (b *Breaker) tooBad(c counts) bool {
	if c.calls < b.minCalls {
		return false
	}
	if b.rateRule && float64(c.failures)*100 >= b.cfg.failureRate*float64(c.calls) {
		return true
	}
	return b.cfg.slowThreshold > 0 && float64(c.slow)*100 >= b.cfg.slowRate*float64(c.calls)
}

func (b *Breaker) finishProbe(ctx context.Context, p *period, pr *probe, o Outcome, slow bool) {
	if !pr.finished.CompareAndSwap(false, true) {
		return
	}
	p.mu.Lock()
	for i, q := range p.probes {
		if q == pr {
			p.probes = append(p.probes[:i], p.probes[i+1:]...)
			break
		}
	}
	to := StateHalfOpen
	if o != Ignored {
		p.calls++
	}
	if slow {
		p.slow++
	}
	switch {
	case o == Ignored:
	case o == Failure:
		p.failures++
		to = StateOpen
	case slow:
		// Counted as the closed window counts it, slow and not failed.
		// But a probe is to show that the dependency has recovered, and
		// one still slow has not: it opens the breaker again.
		to = StateOpen
	default:
		p.successes++
		if p.successes >= b.needed {
			to = StateClosed
		}
	}
	p.mu.Unlock()
	if to != StateHalfOpen {
		b.transition(ctx, p, to, false)
	}
}

// transition replaces period from (nil: whatever is current) by a new period
// in state to, unless another transition got there first. It returns the
// period current afterwards. Listeners run after the breaker's lock is
// released, one at a time and in order.
func (b *Breaker) transition(ctx context.Context, from *period, to State, forced bool) *period {
	b.mu.Lock()
	old := b.cur.Load()
	if from != nil && old != from {
		b.mu.Unlock()
		return old
	}
	now := b.now()
	np := b.newPeriod(to, forced, now)
	notify := old.state != to
	if !notify {
		// The state goes on (Trip on a breaker open on failures, Reset of
		// a closed one), and so do the rejections counted since it began.
		// One still being counted in old, by a call that read it before
		// the Store below, may be missed.
		np.rejected.Store(old.rejected.Load())
	}
	b.cur.Store(np)
	b.tel.state.Store(int32(to))
	if old.timer != nil {
		old.timer.Stop()
	}
	deliver := false
	if notify && len(b.cfg.onStateChange) > 0 {
		b.pending = append(b.pending, StateChange{Breaker: b.name, From: old.state, To: to, Snapshot: b.snapshotOf(old, now)})
		if !b.delivering {
			b.delivering, deliver = true, true
		}
	}
	b.mu.Unlock()

	if notify {
		b.tel.transitions[old.state][to].Inc()
		telemetry.AddEvent(ctx, "circuitbreaker.state_change", func() []attribute.KeyValue {
			return []attribute.KeyValue{b.tel.name, AttrPreviousState.String(old.state.String()), AttrState.String(to.String())}
		})
	}
	if deliver {
		b.deliver()
	}
	return np
}

// deliver calls the listeners for pending changes until none is left. Only
// one goroutine delivers at a time, so listeners see changes in order; a
// change made by a listener is delivered after the listener returns.
//
// A change leaves pending only once every listener has had it, and
// b.called says how many have. So a listener that panics (the panic goes
// on, on the goroutine whose call made the change) loses no change: the
// next change picks delivery up where it stopped, with the listeners
// after the one that panicked, then the changes queued behind.
func (b *Breaker) deliver() {
	ls := b.cfg.onStateChange
	i := 0 // the listener being called
	done := false
	defer func() {
		if !done { // a listener panicked: let a later change deliver the rest
			b.mu.Lock()
			b.called = i + 1 // the one that panicked has had its turn
			b.delivering = false
			b.mu.Unlock()
		}
	}()
	for {
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.delivering = false
			b.mu.Unlock()
			done = true
			return
		}
		ch, from := b.pending[0], b.called
		b.mu.Unlock()
		for i = from; i < len(ls); i++ {
			ls[i](ch)
		}
		b.mu.Lock()
		b.pending = slices.Delete(b.pending, 0, 1)
		b.called = 0
		b.mu.Unlock()
	}
}

// current returns the current period after the lazy transition from open
// to half-open that is due by now, if any. Unlike admission, it reads the
// clock rather than wait for the open period's timer to have run.
func (b *Breaker) current() *period {
	p := b.cur.Load()
	if p.state == StateOpen && !p.forced && (p.expired.Load() || b.now() >= p.until) {
		p = b.transition(context.Background(), p, StateHalfOpen, false)
	}
	return p
}

// State returns the breaker's current state. An open breaker whose open
// duration has passed becomes half-open when it is next asked for its state
// or to admit a call (admission learns of it from a timer, so as not to read
// the clock on every rejected call).
func (b *Breaker) State() State { return b.current().state }

// Trip opens the breaker until [Breaker.Reset] is called, whatever its
// state; it does not close by itself. Use it to take a dependency out of
// service by hand.
func (b *Breaker) Trip() {
	if p := b.cur.Load(); p.state == StateOpen && p.forced {
		return
	}
	b.transition(context.Background(), nil, StateOpen, true)
}

// Reset closes the breaker with an empty window, whatever its state.
func (b *Breaker) Reset() {
	b.transition(context.Background(), nil, StateClosed, false)
}

// Snapshot describes a breaker's state and window at one moment.
type Snapshot struct {
	// State is the breaker's state.
	State State
	// Calls, Failures and SlowCalls count the calls in the window while
	// closed, or the finished probes while half-open.
	Calls, Failures, SlowCalls int
	// FailureRate and SlowCallRate are Failures and SlowCalls as a
	// percentage of Calls, 0 when there are no calls.
	FailureRate, SlowCallRate float64
	// ConsecutiveFailures is the current run of failures, counted only when
	// WithConsecutiveFailures is set.
	ConsecutiveFailures int
	// Rejections counts the calls rejected since the current state began.
	Rejections int64
	// ProbesInFlight counts the half-open probes not finished yet.
	ProbesInFlight int
}

// Snapshot returns a copy of the breaker's state and window. It is
// consistent (calls, failures and slow calls come from one reading) and is
// the caller's to keep: later calls do not change it.
func (b *Breaker) Snapshot() Snapshot { return b.snapshotOf(b.current(), b.now()) }

func (b *Breaker) snapshotOf(p *period, now int64) Snapshot {
	s := Snapshot{State: p.state, Rejections: p.rejected.Load(), ConsecutiveFailures: int(p.consec.Load())}
	var c counts
	switch {
	case p.cw != nil:
		c = p.cw.counts()
	case p.tw != nil:
		c = p.tw.counts(now)
	case p.state == StateHalfOpen:
		p.mu.Lock()
		c = counts{calls: p.calls, failures: p.failures, slow: p.slow}
		s.ProbesInFlight = len(p.probes)
		p.mu.Unlock()
	}
	s.Calls, s.Failures, s.SlowCalls = c.calls, c.failures, c.slow
	if c.calls > 0 {
		s.FailureRate = 100 * float64(c.failures) / float64(c.calls)
		s.SlowCallRate = 100 * float64(c.slow) / float64(c.calls)
	}
	return s
}
