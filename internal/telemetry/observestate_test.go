package telemetry_test

import (
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// stateOwner holds its counts in a state of their own, as ObserveState
// asks.
type stateOwner struct{ st *counts }

type counts struct {
	calls telemetry.Counter
	set   []metric.ObserveOption
}

func newStateOwner(p *telemetrytest.Providers, name string) (*stateOwner, *telemetry.Registration) {
	m := telemetry.Meter(p.MeterProvider, "test")
	c := telemetry.Int64ObservableCounter(m, "test.calls", metric.WithUnit("{call}"))
	o := &stateOwner{st: &counts{set: []metric.ObserveOption{metric.WithAttributes(attribute.String("name", name))}}}
	reg := telemetry.ObserveState(m, o, o.st, func(s *counts, obs metric.Observer) {
		obs.ObserveInt64(c, s.calls.Load(), s.set...)
	}, c)
	return o, reg
}

// TestObserveStateReportsADroppedOwnerOnce protects the last counts of an
// owner dropped just before the final collection (a cache closed before
// the meter provider shuts down): they are reported at the next
// collection, however many garbage collections came between, and the
// series ends after that.
func TestObserveStateReportsADroppedOwnerOnce(t *testing.T) {
	p := telemetrytest.New(t)
	keep, _ := newStateOwner(p, "kept")
	keep.st.calls.Inc()
	func() {
		gone, _ := newStateOwner(p, "gone")
		gone.st.calls.Add(3)
	}()
	for range 3 { // the owner is collected and its cleanup runs
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if got := p.Int64(t, "test.calls", attribute.String("name", "gone")); got != 3 {
		t.Errorf("test.calls{gone} after its owner was collected = %d; want 3, its last counts", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Int64(t, "test.calls", attribute.String("name", "gone")) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the series of a collected owner is still reported: %s", p.Describe(t, "test.calls"))
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.Int64(t, "test.calls", attribute.String("name", "kept")); got != 1 {
		t.Errorf("test.calls{kept} = %d; want 1", got)
	}
	runtime.KeepAlive(keep)
}

func TestObserveStateUnregister(t *testing.T) {
	p := telemetrytest.New(t)
	o, reg := newStateOwner(p, "a")
	o.st.calls.Inc()
	if got := p.Int64(t, "test.calls", attribute.String("name", "a")); got != 1 {
		t.Errorf("test.calls = %d; want 1", got)
	}
	reg.Unregister()
	if p.HasMetric(t, "test.calls") {
		t.Errorf("test.calls still reported after Unregister: %s", p.Describe(t, "test.calls"))
	}
	runtime.KeepAlive(o)
}
