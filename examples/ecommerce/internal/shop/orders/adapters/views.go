package adapters

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
)

// delta is what one event changes in an order's view.
type delta struct {
	id       domain.OrderID
	customer string
	lines    []domain.Line // set by OrderPlaced only
	status   domain.Status
	reason   string
}

// deltaOf returns the change event makes to its order's view.
func deltaOf(event any) (delta, error) {
	switch e := event.(type) {
	case domain.OrderPlaced:
		return delta{id: e.OrderID, customer: e.CustomerID, lines: e.Lines, status: domain.Pending}, nil
	case domain.StockReserved:
		return delta{id: e.OrderID, status: domain.Reserved}, nil
	case domain.PaymentCharged:
		return delta{id: e.OrderID, status: domain.Paid}, nil
	case domain.OrderShipped:
		return delta{id: e.OrderID, status: domain.Completed}, nil
	case domain.OrderRejected:
		return delta{id: e.OrderID, status: domain.Rejected, reason: e.Reason}, nil
	case domain.OrderCompensated:
		return delta{id: e.OrderID, status: domain.Compensated}, nil
	case domain.OrderNeedsAttention:
		return delta{id: e.OrderID, status: domain.NeedsAttention, reason: e.Reason}, nil
	}
	return delta{}, fmt.Errorf("views: unexpected event %T", event)
}

// merge folds d into v. The events come at least once and, after a
// redelivery, out of order: a status of a lower rank than the view's is
// stale and kept out, so that applying an event again changes nothing.
func (d delta) merge(v *ports.OrderView, at time.Time) {
	v.OrderID = string(d.id)
	if d.customer != "" {
		v.CustomerID = d.customer
	}
	if d.lines != nil {
		v.Lines = append([]domain.Line(nil), d.lines...)
		v.TotalCents = 0
		for _, l := range d.lines {
			v.TotalCents += int64(l.Qty) * l.PriceCents
		}
	}
	// The reason goes with the status: a stale event's is stale too.
	if d.status.Rank() >= v.Status.Rank() {
		v.Status = d.status
		if d.reason != "" {
			v.Reason = d.reason
		}
	}
	if at.After(v.UpdatedAt) {
		v.UpdatedAt = at
	}
}

// MemoryViews is the read model in memory: a ports.OrderViews for a
// single process. It is safe for concurrent use; its zero value is empty.
type MemoryViews struct {
	mu    sync.Mutex
	views map[domain.OrderID]ports.OrderView
}

// Get returns the view of order id.
func (m *MemoryViews) Get(_ context.Context, id domain.OrderID) (ports.OrderView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.views[id]
	// A view made of later events before OrderPlaced arrived is not an
	// order yet.
	if !ok || v.CustomerID == "" {
		return ports.OrderView{}, domain.NotFound(fmt.Sprintf("no order %s", id))
	}
	v.Lines = append([]domain.Line(nil), v.Lines...)
	return v, nil
}

// Apply folds event into its order's view.
func (m *MemoryViews) Apply(_ context.Context, event any, at time.Time) error {
	d, err := deltaOf(event)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.views == nil {
		m.views = map[domain.OrderID]ports.OrderView{}
	}
	v := m.views[d.id]
	d.merge(&v, at.UTC())
	m.views[d.id] = v
	return nil
}
