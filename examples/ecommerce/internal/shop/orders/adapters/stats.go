package adapters

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
)

// StatsName is the stats projection's name: its checkpoint's, and the
// cqrs.projection attribute of its spans and lag.
const StatsName = "order-stats"

// Stats is how many orders stand at each status.
type Stats struct {
	Orders   int                   `json:"orders"`
	ByStatus map[domain.Status]int `json:"by_status"`
}

// StatsProjection is a cqrs.Projection fed by a cqrs.Runner straight from
// the event store, beside the bus-fed read model: how many orders stand
// at each status, for dashboards and the example's summary. Its read
// model is in memory, so the runner that feeds it keeps its checkpoint in
// memory too and replays the store from the start at each start. It is
// safe for concurrent use.
type StatsProjection struct {
	reg    *eventsource.Registry
	mu     sync.Mutex
	status map[domain.OrderID]domain.Status
	last   int64 // the position of the last event handled
}

// NewStatsProjection returns an empty projection.
func NewStatsProjection() *StatsProjection {
	return &StatsProjection{reg: Events(), status: map[domain.OrderID]domain.Status{}}
}

// Name returns StatsName.
func (p *StatsProjection) Name() string { return StatsName }

// Handle counts the order of e at the status e gives it. An event handled
// again (at or before the last position) changes nothing.
func (p *StatsProjection) Handle(_ context.Context, e eventsource.Event) error {
	event, err := p.reg.Decode(e)
	if err != nil {
		return err
	}
	d, err := deltaOf(event)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Position <= p.last {
		return nil
	}
	p.last = e.Position
	if d.status.Rank() >= p.status[d.id].Rank() {
		p.status[d.id] = d.status
	}
	return nil
}

// Stats returns the counts so far.
func (p *StatsProjection) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Orders: len(p.status), ByStatus: map[domain.Status]int{}}
	for _, st := range p.status {
		s.ByStatus[st]++
	}
	return s
}

// ServeHTTP answers GET with the stats as JSON.
func (p *StatsProjection) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p.Stats())
}
