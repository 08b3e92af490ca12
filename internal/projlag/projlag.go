// Package projlag reports how far projections are behind the event store
// they read, as the cqrs.projection.lag gauge.
//
// The gauge's callback runs no query: a collection must not wait for the
// database (a slow or unreachable one would hold up the export of every
// metric of the process, and each reader would add a query per
// collection). The store's head is read when a projection starts and then
// every refresh interval by a goroutine of the gauge, while projections
// run, once a reader has collected the gauge; the callback reports the
// head last read minus each projection's position.
package projlag

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Name is the name of the gauge.
const Name = "cqrs.projection.lag"

// Unit is the unit of the gauge.
const Unit = "{event}"

// AttrProjection names the projection of a measurement.
const AttrProjection = attribute.Key("cqrs.projection")

// DefaultRefresh is how often the head is read while projections run and
// the gauge is collected.
const DefaultRefresh = time.Second

// refreshKey marks the context of the gauge's reads of the head.
type refreshKey struct{}

// Refreshing reports whether ctx is the context of a head read by a
// gauge. Such reads happen every refresh interval, on no one's behalf:
// a store records their duration but starts no span for them, which
// would be a root span every second.
func Refreshing(ctx context.Context) bool {
	on, _ := ctx.Value(refreshKey{}).(bool)
	return on
}

// Gauge tracks the positions of running projections and reports, when the
// meter provider collects, for each the store's head less its position.
// It reports nothing for a store that is not an [eventsource.HeadReader],
// nor before the head was read once. It is safe for concurrent use.
type Gauge struct {
	head    eventsource.HeadReader
	refresh time.Duration
	reg     *telemetry.Registration

	last      atomic.Int64 // the head last read
	known     atomic.Bool  // last holds a head
	collected atomic.Bool  // a reader has collected the gauge

	mu        sync.Mutex
	positions map[string]*Position
	stop      context.CancelFunc // of the refresher; nil when none runs
	stopped   chan struct{}      // closed when the refresher returns
}

// Position is the last position a projection handled.
type Position struct {
	atomic.Int64
	set []metric.ObserveOption
}

// New registers the gauge with m, reading the head of store every refresh
// interval (DefaultRefresh if refresh is not positive).
func New(m metric.Meter, store eventsource.Store, refresh time.Duration) *Gauge {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	g := &Gauge{positions: map[string]*Position{}, refresh: refresh}
	head, ok := store.(eventsource.HeadReader)
	if !ok {
		return g
	}
	g.head = head
	gauge, err := m.Int64ObservableGauge(Name, metric.WithUnit(Unit),
		metric.WithDescription("Events committed to the store that a projection has not handled yet."))
	if err != nil {
		otel.Handle(err)
		return g
	}
	g.reg = telemetry.Observe(m, g, func(g *Gauge, o metric.Observer) { g.observe(o, gauge) }, gauge)
	return g
}

// observe reports the lag of each tracked projection from the head last
// read. It runs on the collecting goroutine and reads no store.
func (g *Gauge) observe(o metric.Observer, gauge metric.Int64Observable) {
	g.collected.Store(true)
	if !g.known.Load() {
		return
	}
	head := g.last.Load()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.positions {
		o.ObserveInt64(gauge, max(head-p.Load(), 0), p.set...)
	}
}

// read reads the head of the store into the gauge. A failure keeps the
// head last read: the store's own telemetry records it.
func (g *Gauge) read(ctx context.Context) {
	head, err := g.head.Head(context.WithValue(ctx, refreshKey{}, true))
	if err == nil {
		g.last.Store(head)
		g.known.Store(true)
	}
}

// refresher reads the head every refresh interval until ctx is done,
// once a reader has collected the gauge: without one (no SDK, say) it
// reads nothing.
func (g *Gauge) refresher(ctx context.Context, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(g.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if g.collected.Load() {
				rctx, cancel := context.WithTimeout(ctx, g.refresh)
				g.read(rctx)
				cancel()
			}
		}
	}
}

// Track starts reporting the projection called name, from position pos,
// and reads the head of the store (with ctx) unless no lag is reported.
// The caller stores each handled position in the result and calls
// [Gauge.Untrack] when the projection stops.
func (g *Gauge) Track(ctx context.Context, name string, pos int64) *Position {
	p := &Position{set: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(AttrProjection.String(name)))}}
	p.Store(pos)
	if g.reg == nil {
		return p // nothing is reported
	}
	g.read(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.positions[name] = p
	if g.stop == nil {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		g.stop, g.stopped = cancel, make(chan struct{})
		go g.refresher(rctx, g.stopped)
	}
	return p
}

// Untrack stops reporting p's projection, unless it was tracked again
// since. Once no projection is tracked, it stops reading the head and
// waits for a read under way.
func (g *Gauge) Untrack(name string, p *Position) {
	g.mu.Lock()
	if g.positions[name] == p {
		delete(g.positions, name)
	}
	var stop context.CancelFunc
	var stopped chan struct{}
	if len(g.positions) == 0 && g.stop != nil {
		stop, stopped = g.stop, g.stopped
		g.stop, g.stopped = nil, nil
	}
	g.mu.Unlock()
	if stop != nil {
		stop()
		<-stopped
	}
}

// Close stops reading the head and unregisters the gauge's callback.
func (g *Gauge) Close() {
	g.mu.Lock()
	stop, stopped := g.stop, g.stopped
	g.stop, g.stopped = nil, nil
	clear(g.positions)
	g.mu.Unlock()
	if stop != nil {
		stop()
		<-stopped
	}
	g.reg.Unregister()
}
