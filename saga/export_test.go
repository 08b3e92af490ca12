package saga

import "time"

// HookPoint names the points of an attempt where SetHook's function runs.
type HookPoint = hookPoint

// The hook points, in the order an attempt passes them.
const (
	HookBeforeStart = hookBeforeStart // before the Started transition is written
	HookAfterStart  = hookAfterStart  // after it, before the action or compensation runs
	HookAfterAction = hookAfterAction // after the action or compensation, before its outcome is written
	HookAfterResult = hookAfterResult // after the outcome is written
)

// HookPoints lists the hook points in order.
var HookPoints = []HookPoint{HookBeforeStart, HookAfterStart, HookAfterAction, HookAfterResult}

// SetHook makes o call f at every hook point of every attempt. Set it
// before o runs any saga.
func SetHook(o *Orchestrator, f func(point HookPoint, step string, phase Phase)) { o.hook = f }

// WaitsOf returns the sum of the backoff's waits (before jitter) of the
// default retry policy of kind, "step", "retriable" or "compensation":
// the longest its attempts can be apart, first to last.
func WaitsOf(kind string) time.Duration {
	return map[string]policy{"step": defaultStepPolicy, "retriable": defaultRetriablePolicy,
		"compensation": defaultCompensationPolicy}[kind].waits()
}

// waits returns the sum of p's waits before jitter.
func (p policy) waits() (sum time.Duration) {
	d := p.initial
	for range p.attempts - 1 {
		sum += min(d, p.max)
		d = min(2*d, p.max)
	}
	return sum
}
