// Package projlag reports how far projections are behind the event store
// they read, as the cqrs.projection.lag gauge.
package projlag

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/eventsource"
)

// Name is the name of the gauge.
const Name = "cqrs.projection.lag"

// AttrProjection names the projection of a measurement.
const AttrProjection = attribute.Key("cqrs.projection")

// Gauge tracks the positions of running projections and, when the meter
// provider collects, reports for each the store's head minus its
// position. The head is read once per collection, only while some
// projection runs, so an idle or unread gauge costs no query. It reports
// nothing for a store that is not an [eventsource.HeadReader].
type Gauge struct {
	head eventsource.HeadReader
	reg  metric.Registration

	mu        sync.Mutex
	positions map[string]*Position
}

// Position is the last position a projection handled.
type Position struct {
	atomic.Int64
	set attribute.Set
}

// New registers the gauge with m, reading the head of store.
func New(m metric.Meter, store eventsource.Store) *Gauge {
	g := &Gauge{positions: map[string]*Position{}}
	head, ok := store.(eventsource.HeadReader)
	if !ok {
		return g
	}
	g.head = head
	gauge, err := m.Int64ObservableGauge(Name, metric.WithUnit("{event}"),
		metric.WithDescription("Events committed to the store that a projection has not handled yet."))
	if err != nil {
		otel.Handle(err)
		return g
	}
	g.reg, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		return g.observe(ctx, o, gauge)
	}, gauge)
	if err != nil {
		otel.Handle(err)
	}
	return g
}

func (g *Gauge) observe(ctx context.Context, o metric.Observer, gauge metric.Int64Observable) error {
	g.mu.Lock()
	running := make([]*Position, 0, len(g.positions))
	for _, p := range g.positions {
		running = append(running, p)
	}
	g.mu.Unlock()
	if len(running) == 0 {
		return nil
	}
	head, err := g.head.Head(ctx)
	if err != nil {
		return err
	}
	for _, p := range running {
		o.ObserveInt64(gauge, max(head-p.Load(), 0), metric.WithAttributeSet(p.set))
	}
	return nil
}

// Track starts reporting the projection called name, from position pos.
// The caller stores each handled position in the result and calls
// [Gauge.Untrack] when the projection stops.
func (g *Gauge) Track(name string, pos int64) *Position {
	p := &Position{set: attribute.NewSet(AttrProjection.String(name))}
	p.Store(pos)
	g.mu.Lock()
	g.positions[name] = p
	g.mu.Unlock()
	return p
}

// Untrack stops reporting p's projection, unless it was tracked again
// since.
func (g *Gauge) Untrack(name string, p *Position) {
	g.mu.Lock()
	if g.positions[name] == p {
		delete(g.positions, name)
	}
	g.mu.Unlock()
}

// Close unregisters the gauge's callback.
func (g *Gauge) Close() {
	if g.reg != nil {
		_ = g.reg.Unregister()
	}
}
