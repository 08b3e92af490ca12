package circuitbreaker

import (
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's meter: its
// import path.
const ScopeName = "github.com/otelpatterns/patterns/circuitbreaker"

// Attribute keys the package records.
const (
	AttrName          = attribute.Key("circuitbreaker.name")
	AttrState         = attribute.Key("circuitbreaker.state")
	AttrPreviousState = attribute.Key("circuitbreaker.previous_state")
	AttrOutcome       = attribute.Key("circuitbreaker.outcome")
)

// The values of circuitbreaker.outcome.
const (
	outcomeSuccess = iota
	outcomeFailure
	outcomeSlow
	outcomeIgnored
	outcomeRejected
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"success", "failure", "slow", "ignored", "rejected"}

// durationBuckets are the boundaries, in seconds, of the call duration
// histogram: those of the HTTP semantic conventions, which suit calls to a
// remote dependency.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// instruments are one breaker's metric instruments. Calls and transitions
// are counted in memory and reported, with the state, by one callback at
// collection time: an SDK counter's Add would cost several times the
// breaker's own work, and a breaker that is thrown away takes its series
// with it. Only the opt-in duration histogram is recorded synchronously,
// with its attribute sets built once.
type instruments struct {
	name attribute.KeyValue

	_     [64]byte // keeps the hot counters off the cache lines read on every call
	calls [numOutcomes]telemetry.Counter
	_     [64]byte

	transitions [numStates][numStates]telemetry.Counter
	state       atomic.Int32 // the State of the current period, for the gauge
	duration    metric.Float64Histogram
	durOpts     [numOutcomes][]metric.RecordOption
	reg         *telemetry.Registration
}

func newInstruments(name string, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{name: AttrName.String(name)}
	var err error
	if t.duration, err = m.Float64Histogram("circuitbreaker.call.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of calls through the circuit breaker."),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		otel.Handle(err)
	}
	for o := range numOutcomes {
		t.durOpts[o] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(t.name, AttrOutcome.String(outcomeNames[o])))}
	}
	return t
}

// observe registers the callback that reports b's calls, transitions and
// state, from t alone. It holds b weakly: when b is collected, its counts
// are reported once more (so that a breaker dropped just before a
// program's final collection loses none) and the registration is
// dropped, so a breaker that is thrown away leaves no callback and no
// series behind. A [Group] unregisters an evicted breaker at once.
func (t *instruments) observe(b *Breaker, mp metric.MeterProvider) {
	m := telemetry.Meter(mp, ScopeName)
	calls := telemetry.Int64ObservableCounter(m, "circuitbreaker.calls",
		metric.WithUnit("{call}"),
		metric.WithDescription("Calls through the circuit breaker, by outcome."))
	transitions := telemetry.Int64ObservableCounter(m, "circuitbreaker.state.transitions",
		metric.WithUnit("{transition}"),
		metric.WithDescription("Changes of the circuit breaker's state."))
	state, err := m.Int64ObservableGauge("circuitbreaker.state",
		metric.WithUnit("{state}"),
		metric.WithDescription("Current state of the circuit breaker: 1 for the state it is in, 0 for the others."))
	if err != nil {
		otel.Handle(err)
		return
	}
	var (
		callOpts  [numOutcomes][]metric.ObserveOption
		transOpts [numStates][numStates][]metric.ObserveOption
		stateOpts [numStates][]metric.ObserveOption
	)
	for o := range numOutcomes {
		callOpts[o] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(t.name, AttrOutcome.String(outcomeNames[o])))}
	}
	for s := range State(numStates) {
		stateOpts[s] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(t.name, AttrState.String(s.String())))}
		for to := range State(numStates) {
			set := attribute.NewSet(t.name, AttrPreviousState.String(s.String()), AttrState.String(to.String()))
			transOpts[s][to] = []metric.ObserveOption{metric.WithAttributeSet(set)}
		}
	}
	t.reg = telemetry.ObserveState(m, b, t, func(t *instruments, o metric.Observer) {
		// Outcomes and transitions that never happened are not reported:
		// a group of a thousand breakers would otherwise report
		// seventeen thousand series, most of them zero.
		for i := range numOutcomes {
			if n := t.calls[i].Load(); n > 0 {
				o.ObserveInt64(calls, n, callOpts[i]...)
			}
		}
		for from := range State(numStates) {
			for to := range State(numStates) {
				if n := t.transitions[from][to].Load(); n > 0 {
					o.ObserveInt64(transitions, n, transOpts[from][to]...)
				}
			}
		}
		cur := State(t.state.Load())
		for s := range State(numStates) {
			var v int64
			if s == cur {
				v = 1
			}
			o.ObserveInt64(state, v, stateOpts[s]...)
		}
	}, calls, transitions, state)
}

// release stops reporting the breaker, when a group evicts it.
func (t *instruments) release() { t.reg.Unregister() }

// tally is what a breaker has counted of calls and transitions.
type tally struct {
	calls       [numOutcomes]int64
	transitions [numStates][numStates]int64
}

// tally returns t's counts. Read after release, they are at least what
// the last collection reported: the SDK runs callbacks under the lock
// that Unregister takes, so none reads t once release has returned.
func (t *instruments) tally() *tally {
	var c tally
	for i := range numOutcomes {
		c.calls[i] = t.calls[i].Load()
	}
	for from := range numStates {
		for to := range numStates {
			c.transitions[from][to] = t.transitions[from][to].Load()
		}
	}
	return &c
}

// seed starts t's counts from c's, before anything is counted or
// reported.
func (t *instruments) seed(c *tally) {
	for i := range numOutcomes {
		t.calls[i].Add(c.calls[i])
	}
	for from := range numStates {
		for to := range numStates {
			t.transitions[from][to].Add(c.transitions[from][to])
		}
	}
}
