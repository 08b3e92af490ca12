package circuitbreaker

import (
	"context"
	"runtime"
	"weak"

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

// instruments are one breaker's metric instruments with every attribute set
// they use built once, so that recording allocates nothing.
type instruments struct {
	name        attribute.KeyValue
	calls       metric.Int64Counter
	callOpts    [numOutcomes][]metric.AddOption
	transitions metric.Int64Counter
	transOpts   [numStates][numStates][]metric.AddOption
	duration    metric.Float64Histogram
	durOpts     [numOutcomes][]metric.RecordOption
	stateReg    metric.Registration
}

func newInstruments(name string, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{name: AttrName.String(name)}
	var err error
	if t.calls, err = m.Int64Counter("circuitbreaker.calls",
		metric.WithUnit("{call}"),
		metric.WithDescription("Calls through the circuit breaker, by outcome.")); err != nil {
		otel.Handle(err)
	}
	if t.transitions, err = m.Int64Counter("circuitbreaker.state.transitions",
		metric.WithUnit("{transition}"),
		metric.WithDescription("Changes of the circuit breaker's state.")); err != nil {
		otel.Handle(err)
	}
	if t.duration, err = m.Float64Histogram("circuitbreaker.call.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of calls through the circuit breaker."),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		otel.Handle(err)
	}
	for s := range State(numStates) {
		for to := range State(numStates) {
			set := attribute.NewSet(t.name, AttrPreviousState.String(s.String()), AttrState.String(to.String()))
			t.transOpts[s][to] = []metric.AddOption{metric.WithAttributeSet(set)}
		}
	}
	for o := range numOutcomes {
		t.callOpts[o] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(t.name, AttrOutcome.String(outcomeNames[o])))}
		t.durOpts[o] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(t.name, AttrOutcome.String(outcomeNames[o])))}
	}
	return t
}

// observeState registers the circuitbreaker.state gauge for b. The callback
// holds b weakly and the registration is dropped when b is collected, so a
// breaker that is thrown away (as a [Group] evicts them) does not leak.
func (t *instruments) observeState(b *Breaker, mp metric.MeterProvider) {
	m := telemetry.Meter(mp, ScopeName)
	gauge, err := m.Int64ObservableGauge("circuitbreaker.state",
		metric.WithUnit("{state}"),
		metric.WithDescription("Current state of the circuit breaker: 1 for the state it is in, 0 for the others."))
	if err != nil {
		otel.Handle(err)
		return
	}
	var opts [numStates][]metric.ObserveOption
	for s := range State(numStates) {
		opts[s] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(t.name, AttrState.String(s.String())))}
	}
	wb := weak.Make(b)
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b := wb.Value()
		if b == nil {
			return nil
		}
		cur := b.cur.Load().state
		for s := range State(numStates) {
			var v int64
			if s == cur {
				v = 1
			}
			o.ObserveInt64(gauge, v, opts[s]...)
		}
		return nil
	}, gauge)
	if err != nil {
		otel.Handle(err)
		return
	}
	t.stateReg = reg
	runtime.AddCleanup(b, func(r metric.Registration) { _ = r.Unregister() }, reg)
}

// release stops reporting the breaker's state, when a group evicts it.
func (t *instruments) release() {
	if t.stateReg != nil {
		_ = t.stateReg.Unregister()
	}
}
