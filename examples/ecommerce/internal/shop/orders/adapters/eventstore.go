package adapters

import (
	"context"
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/hexagonal"
)

// The stored names of the order's events: part of the stored data, so a
// change of an event's shape gets a new name (and an upcaster).
const (
	TypePlaced         = "shop.order_placed.v1"
	TypeReserved       = "shop.stock_reserved.v1"
	TypeCharged        = "shop.payment_charged.v1"
	TypeShipped        = "shop.order_shipped.v1"
	TypeRejected       = "shop.order_rejected.v1"
	TypeCompensated    = "shop.order_compensated.v1"
	TypeNeedsAttention = "shop.order_needs_attention.v1"
)

// Events returns the registry of the order's events.
func Events() *eventsource.Registry {
	reg := eventsource.NewRegistry()
	eventsource.Register[domain.OrderPlaced](reg, TypePlaced)
	eventsource.Register[domain.StockReserved](reg, TypeReserved)
	eventsource.Register[domain.PaymentCharged](reg, TypeCharged)
	eventsource.Register[domain.OrderShipped](reg, TypeShipped)
	eventsource.Register[domain.OrderRejected](reg, TypeRejected)
	eventsource.Register[domain.OrderCompensated](reg, TypeCompensated)
	eventsource.Register[domain.OrderNeedsAttention](reg, TypeNeedsAttention)
	return reg
}

// aggregate is an order as the event store sees it.
type aggregate struct {
	eventsource.Base
	order domain.Order
}

func (a *aggregate) Apply(event any) error { return a.order.Apply(event) }

// Repository is a ports.OrderRepository on an event store. It is safe for
// concurrent use.
type Repository struct {
	repo *eventsource.Repository[*aggregate]
	load func(context.Context, domain.OrderID) (*domain.Order, error)
	save func(context.Context, *domain.Order) error
}

// NewRepository returns a repository of orders on store, its calls traced
// and counted as a driven adapter's (EventStore.Load, EventStore.Save).
func NewRepository(store eventsource.Store) (*Repository, error) {
	repo, err := eventsource.NewRepository(store, Events(), func() *aggregate { return &aggregate{} })
	if err != nil {
		return nil, err
	}
	r := &Repository{repo: repo}
	r.load = hexagonal.Instrument(hexagonal.DrivenAdapter, "EventStore", "Load", r.loadOrder)
	r.save = hexagonal.InstrumentErr(hexagonal.DrivenAdapter, "EventStore", "Save", r.saveOrder)
	return r, nil
}

// Load returns the order rebuilt from its events, or an error matching
// domain.ErrNotFound.
func (r *Repository) Load(ctx context.Context, id domain.OrderID) (*domain.Order, error) {
	return r.load(ctx, id)
}

// Save appends the order's new events, expecting its stream at the
// version the order was loaded at: a concurrent change fails with a
// conflict rather than being overwritten. A duplicate command (the
// context's command ID recorded already) fails with
// eventsource.ErrDuplicateCommand, which cqrs.Deduplication turns into
// success.
func (r *Repository) Save(ctx context.Context, o *domain.Order) error {
	return r.save(ctx, o)
}

func (r *Repository) loadOrder(ctx context.Context, id domain.OrderID) (*domain.Order, error) {
	a, err := r.repo.Load(ctx, string(id))
	if errors.Is(err, eventsource.ErrNotFound) {
		return nil, domain.NotFound(fmt.Sprintf("no order %s", id))
	}
	if err != nil {
		return nil, err
	}
	return &a.order, nil
}

func (r *Repository) saveOrder(ctx context.Context, o *domain.Order) error {
	changes := o.Changes()
	if len(changes) == 0 {
		return nil
	}
	// The aggregate that saves the changes is loaded again at the version
	// the order was loaded at (none for a new order).
	base := o.Version() - int64(len(changes))
	a := r.repo.New(string(o.ID()))
	if base > 0 {
		var err error
		if a, err = r.repo.Load(ctx, string(o.ID())); err != nil {
			return err
		}
	}
	if a.Version() != base {
		return conflict(&eventsource.ConflictError{StreamID: string(o.ID()), Expected: eventsource.Exact(base), Actual: a.Version()})
	}
	for _, e := range changes {
		if err := eventsource.Raise(a, e); err != nil {
			return err
		}
	}
	if err := r.repo.Save(ctx, a); err != nil {
		if errors.Is(err, eventsource.ErrConcurrencyConflict) {
			return conflict(err)
		}
		return err
	}
	o.Saved()
	return nil
}

// conflict makes a lost race the caller's to retry: 409 at the edge.
func conflict(err error) error {
	return hexagonal.Errorf(hexagonal.KindConflict, "the order changed meanwhile; load it again: %w", err)
}
