package telemetry

import (
	"context"
	"runtime"
	"sync/atomic"
	"weak"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// ObserveState is [Observe] for counts kept in state, a value that owner
// holds and that does not refer back to owner (an instruments struct of
// [Counter]s): observe is called with state while owner is reachable, and
// once more, at the first collection after owner is garbage-collected, so
// that what owner counted since the previous collection is not lost; then
// the registration is dropped.
//
// Observe loses those last counts, which matters for owners dropped just
// before the final collection of a program: a cache closed by a deferred
// Close before the deferred shutdown of the meter provider that exports
// its metrics, with a garbage collection in between.
//
// observe must not keep state, and must be quick: it runs on the
// collecting goroutine. Errors go to otel.Handle, and the returned
// Registration is then inert.
func ObserveState[O, S any](m metric.Meter, owner *O, state *S, observe func(*S, metric.Observer), insts ...metric.Observable) *Registration {
	// state lives while owner does, then while owner's cleanup holds it,
	// then in last until a collection has reported it, then until the
	// next garbage collection: the callback reports it while it lives.
	ws := weak.Make(state)
	var last atomic.Pointer[S]
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := last.Swap(nil)
		if s == nil {
			s = ws.Value()
		}
		if s != nil {
			observe(s, o)
		}
		return nil
	}, insts...)
	if err != nil {
		otel.Handle(err)
		return &Registration{}
	}
	r := &Registration{reg: reg}
	// owner's cleanup hands state to the callback for its final report;
	// once the callback has let go of it, state's cleanup unregisters. A
	// callback cannot unregister itself: the SDK holds its lock while it
	// runs callbacks.
	runtime.AddCleanup(owner, func(s *S) { last.Store(s) }, state)
	runtime.AddCleanup(state, func(r *Registration) { r.Unregister() }, r)
	return r
}
