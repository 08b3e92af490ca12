package retry

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff describes how long to wait between attempts before jitter:
// [Constant], [Linear] or [Exponential]. The zero Backoff is invalid.
type Backoff struct {
	kind       backoffKind
	initial    time.Duration
	step       time.Duration
	multiplier float64
	max        time.Duration
}

type backoffKind uint8

const (
	kindNone backoffKind = iota
	kindConstant
	kindLinear
	kindExponential
)

// Constant waits d between attempts.
func Constant(d time.Duration) Backoff {
	return Backoff{kind: kindConstant, initial: d, max: d}
}

// Linear waits initial, then initial+step, initial+2*step... up to max.
func Linear(initial, step, max time.Duration) Backoff {
	return Backoff{kind: kindLinear, initial: initial, step: step, max: max}
}

// Exponential waits initial, then multiplies the wait by multiplier after
// each attempt, up to max. This is the default, with 100ms, 2 and 10s.
// initial must be positive: a wait of 0 multiplied stays 0.
func Exponential(initial time.Duration, multiplier float64, max time.Duration) Backoff {
	return Backoff{kind: kindExponential, initial: initial, multiplier: multiplier, max: max}
}

// String returns b as it would be written in Go, such as
// "Exponential(100ms, 2, 10s)", or "Backoff{}" for the zero Backoff.
func (b Backoff) String() string {
	switch b.kind {
	case kindConstant:
		return "Constant(" + b.initial.String() + ")"
	case kindLinear:
		return "Linear(" + b.initial.String() + ", " + b.step.String() + ", " + b.max.String() + ")"
	case kindExponential:
		return "Exponential(" + b.initial.String() + ", " + ftoa(b.multiplier) + ", " + b.max.String() + ")"
	}
	return "Backoff{}"
}

// newBackOff returns a fresh, unjittered cenkalti/backoff policy. Those
// policies keep state and are not safe for concurrent use, so each retry
// sequence gets its own.
func (b Backoff) newBackOff() backoff.BackOff {
	switch b.kind {
	case kindConstant:
		return backoff.NewConstantBackOff(b.initial)
	case kindLinear:
		return &linearBackOff{b: b}
	default:
		return backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(b.initial),
			backoff.WithMultiplier(b.multiplier),
			backoff.WithMaxInterval(b.max),
			backoff.WithRandomizationFactor(0), // our jitter is applied on top
			backoff.WithMaxElapsedTime(0),      // the Retrier enforces its own limits
		)
	}
}

// linearBackOff is the linear policy that cenkalti/backoff lacks, written to
// its BackOff interface.
type linearBackOff struct {
	b       Backoff
	next    time.Duration
	started bool // a first wait of 0 is a wait, not "not started"
}

func (l *linearBackOff) Reset() { l.next, l.started = 0, false }

func (l *linearBackOff) NextBackOff() time.Duration {
	if !l.started {
		l.next, l.started = l.b.initial, true
	} else {
		// Saturate rather than overflow: a huge step just reaches max.
		l.next = min(l.next+min(l.b.step, l.b.max-l.next), l.b.max)
	}
	return min(l.next, l.b.max)
}

// Jitter spreads waits at random so that clients that failed together do
// not retry together.
type Jitter uint8

// The kinds of jitter, as described in "Exponential Backoff And Jitter"
// (AWS Architecture Blog, 2015).
const (
	// FullJitter waits a random time between 0 and the backoff's wait. It is
	// the default: it spreads retries the most.
	FullJitter Jitter = iota
	// NoJitter waits exactly the backoff's wait.
	NoJitter
	// EqualJitter waits half the backoff's wait plus a random time up to
	// the other half, so never less than half.
	EqualJitter
	// DecorrelatedJitter waits a random time between the backoff's initial
	// wait and three times the previous wait, capped at its maximum; it
	// ignores the backoff's growth rule, except that a previous wait of 0
	// counts as the backoff's own wait for the attempt, so that a sequence
	// starting at 0 (Linear(0, step, max)) grows.
	DecorrelatedJitter
)

// String returns the constant's name, such as "FullJitter", or
// "Jitter(n)" for a value that is none of them.
func (j Jitter) String() string {
	switch j {
	case FullJitter:
		return "FullJitter"
	case NoJitter:
		return "NoJitter"
	case EqualJitter:
		return "EqualJitter"
	case DecorrelatedJitter:
		return "DecorrelatedJitter"
	}
	return "Jitter(" + ftoa(float64(j)) + ")"
}

// delays produces the waits of one retry sequence.
type delays struct {
	b      Backoff
	jitter Jitter
	policy backoff.BackOff
	prev   time.Duration
}

func newDelays(b Backoff, j Jitter) *delays {
	return &delays{b: b, jitter: j, policy: b.newBackOff(), prev: b.initial}
}

func (d *delays) next() time.Duration {
	base := d.policy.NextBackOff()
	switch d.jitter {
	case NoJitter:
		return base
	case EqualJitter:
		half := base / 2
		return half + randUpTo(base-half)
	case DecorrelatedJitter:
		prev := d.prev
		if prev == 0 {
			prev = base // else a sequence that starts at 0 stays there
		}
		lo, hi := d.b.initial, d.b.max
		if prev <= d.b.max/3 { // prev*3 cannot overflow
			hi = prev * 3
		}
		w := lo
		if hi > lo {
			w = lo + randUpTo(hi-lo)
		}
		d.prev = w
		return w
	}
	return randUpTo(base)
}

// randUpTo returns a random duration in [0, d].
func randUpTo(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	n := int64(d)
	if n < math.MaxInt64 { // else n+1 overflows: [0, d) is as good
		n++
	}
	return time.Duration(rand.Int64N(n))
}
