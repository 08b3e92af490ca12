package telemetry_test

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

type owner struct {
	calls telemetry.Counter
	set   []metric.ObserveOption
}

func newOwner(t *testing.T, p *telemetrytest.Providers, name string) (*owner, *telemetry.Registration) {
	m := telemetry.Meter(p.MeterProvider, "test")
	c := telemetry.Int64ObservableCounter(m, "test.calls", metric.WithUnit("{call}"))
	o := &owner{set: []metric.ObserveOption{metric.WithAttributes(attribute.String("name", name))}}
	reg := telemetry.Observe(m, o, func(o *owner, obs metric.Observer) {
		obs.ObserveInt64(c, o.calls.Load(), o.set...)
	}, c)
	return o, reg
}

func TestCounterObserved(t *testing.T) {
	p := telemetrytest.New(t)
	o, reg := newOwner(t, p, "a")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				o.calls.Inc()
			}
		})
	}
	wg.Wait()
	o.calls.Add(5)
	if got := p.Int64(t, "test.calls", attribute.String("name", "a")); got != 8005 {
		t.Errorf("test.calls = %d; want 8005", got)
	}
	if got := p.Int64(t, "test.calls", attribute.String("name", "a")); got != 8005 {
		t.Errorf("test.calls on a second collection = %d; want 8005 (cumulative)", got)
	}
	reg.Unregister()
	reg.Unregister() // idempotent
	if p.HasMetric(t, "test.calls") {
		t.Errorf("test.calls still reported after Unregister: %s", p.Describe(t, "test.calls"))
	}
	runtime.KeepAlive(o)
}

func TestObserveDropsCollectedOwner(t *testing.T) {
	p := telemetrytest.New(t)
	keep, _ := newOwner(t, p, "kept")
	keep.calls.Inc()
	func() {
		gone, _ := newOwner(t, p, "gone")
		gone.calls.Inc()
	}()
	// The cleanup runs some time after the collection that frees the owner.
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		if p.Int64(t, "test.calls", attribute.String("name", "gone")) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the series of a collected owner is still reported: %s", p.Describe(t, "test.calls"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.Int64(t, "test.calls", attribute.String("name", "kept")); got != 1 {
		t.Errorf("test.calls{kept} = %d; want 1", got)
	}
	runtime.KeepAlive(keep)
}

func TestUnregisterNil(t *testing.T) {
	var r *telemetry.Registration
	r.Unregister()
	(&telemetry.Registration{}).Unregister()
}
