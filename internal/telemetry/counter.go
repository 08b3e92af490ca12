package telemetry

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Counter is a monotonic count kept in memory and reported by an
// asynchronous (observable) counter when a reader collects.
//
// It is how the hot paths (breaker calls, retried calls, cache lookups)
// count: an Add is one atomic add, about 10 ns, where a synchronous SDK
// counter's Add costs 100 to 200 ns of attribute-set lookup, and with a
// sampled span in the context more for its exemplar. What is traded: the
// counts carry no exemplars, and they reach the SDK only when it
// collects. A Counter's zero value is zero and ready to use.
type Counter struct{ n atomic.Int64 }

// Add adds n, which must not be negative.
func (c *Counter) Add(n int64) { c.n.Add(n) }

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Load returns the count.
func (c *Counter) Load() int64 { return c.n.Load() }

// Registration is the registration of an [Observe] callback.
type Registration struct {
	once sync.Once
	reg  metric.Registration
}

// Unregister stops the callback. It is safe to call more than once, on a
// nil Registration, and concurrently with a collection.
func (r *Registration) Unregister() {
	if r == nil || r.reg == nil {
		return
	}
	r.once.Do(func() { _ = r.reg.Unregister() })
}

// Observe registers observe as the callback of the observable instruments
// insts of meter m, on behalf of owner: at each collection observe is
// called with owner while owner is reachable. Observe holds owner weakly
// and drops the registration once owner is garbage-collected, so that a
// thrown-away owner (a breaker a group evicted, a short-lived cache) leaves
// neither a callback nor a series behind: the SDK reports an asynchronous
// instrument's series only while a callback observes them. observe must
// not keep owner, and must be quick: it runs on the collecting goroutine.
// Errors go to otel.Handle, and the returned Registration is then inert.
func Observe[T any](m metric.Meter, owner *T, observe func(*T, metric.Observer), insts ...metric.Observable) *Registration {
	wp := weak.Make(owner)
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if v := wp.Value(); v != nil {
			observe(v, o)
		}
		return nil
	}, insts...)
	if err != nil {
		otel.Handle(err)
		return &Registration{}
	}
	r := &Registration{reg: reg}
	runtime.AddCleanup(owner, func(r *Registration) { r.Unregister() }, r)
	return r
}

// Int64ObservableCounter returns the observable counter called name from
// m, handing an error to otel.Handle (the SDK then still returns a usable
// no-op instrument).
func Int64ObservableCounter(m metric.Meter, name string, opts ...metric.Int64ObservableCounterOption) metric.Int64ObservableCounter {
	c, err := m.Int64ObservableCounter(name, opts...)
	if err != nil {
		otel.Handle(err)
	}
	if c == nil {
		return noop.Int64ObservableCounter{}
	}
	return c
}
