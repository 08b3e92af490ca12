package saga

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
