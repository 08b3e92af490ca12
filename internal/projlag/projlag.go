// Package projlag reports how far projections are behind the event store
// they read, as the cqrs.projection.lag gauge.
//
// The gauge's callback runs no query: a collection must not wait for the
// database (a slow or unreachable one would hold up the export of every
// metric of the process, and each reader would add a query per
// collection). The store's head is read when a projection starts and then
// every refresh interval by a goroutine of the gauge, while projections
// run, once a reader has collected the gauge; the callback reports the
// head last read minus each projection's position. A store whose
// positions are not counts of events (pgstore's have gaps) is an
// [eventsource.EventCounter]: then each refresh also counts the events
// after each projection's position, up to [CountLimit], and the callback
// reports that count (0 once the projection has reached the head read
// with it).
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

// CountLimit is the most events the gauge counts after a projection's
// position in a store that is an [eventsource.EventCounter]: a projection
// further behind is reported CountLimit events behind, so that a refresh
// costs a bounded scan however far behind it is.
const CountLimit = 100_000

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
	counter eventsource.EventCounter // nil: positions count events
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
	// counted is the last count of the events after the projection's
	// position, with a store that is an EventCounter; nil before one.
	counted atomic.Pointer[count]
}

// count is a count of the events after a position.
type count struct {
	from int64 // the position counted from
	head int64 // the head read just before
	n    int64 // the events after from, CountLimit at most
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
	g.counter, _ = store.(eventsource.EventCounter)
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
// read, or from the last count of its events with an EventCounter. It
// runs on the collecting goroutine and reads no store.
func (g *Gauge) observe(o metric.Observer, gauge metric.Int64Observable) {
	g.collected.Store(true)
	if !g.known.Load() {
		return
	}
	head := g.last.Load()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.positions {
		pos := p.Load()
		if g.counter == nil {
			o.ObserveInt64(gauge, max(head-pos, 0), p.set...)
			continue
		}
		c := p.counted.Load()
		if c == nil {
			continue // not counted yet
		}
		lag := c.n
		if pos != c.from && pos >= c.head {
			lag = 0 // it has reached the head read with the count
		}
		o.ObserveInt64(gauge, lag, p.set...)
	}
}

// read reads the head of the store into the gauge and, with an
// EventCounter, counts the events after each projection's position. A
// failure keeps the head or count last read: the store's own telemetry
// records it.
func (g *Gauge) read(ctx context.Context) {
	ctx = context.WithValue(ctx, refreshKey{}, true)
	head, err := g.head.Head(ctx)
	if err != nil {
		return
	}
	g.last.Store(head)
	g.known.Store(true)
	if g.counter == nil {
		return
	}
	g.mu.Lock()
	tracked := make([]*Position, 0, len(g.positions))
	for _, p := range g.positions {
		tracked = append(tracked, p)
	}
	g.mu.Unlock()
	for _, p := range tracked {
		from := p.Load()
		if n, err := g.counter.CountAfter(ctx, from, CountLimit); err == nil {
			p.counted.Store(&count{from: from, head: head, n: n})
		}
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
	g.mu.Lock()
	g.positions[name] = p
	if g.stop == nil {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		g.stop, g.stopped = cancel, make(chan struct{})
		go g.refresher(rctx, g.stopped)
	}
	g.mu.Unlock()
	g.read(ctx) // counts p's events too
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
