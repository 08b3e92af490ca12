// Package eventstore is the order repository on an event store: an order
// is the stream of its events, loaded and saved through an
// eventsource.Repository on any eventsource.Store (the in-memory one, or
// eventsource/pgstore on PostgreSQL).
//
// The domain's order knows nothing of event sourcing; the adapter wraps it
// in an aggregate of its own, which embeds eventsource.Base and hands the
// events to the order's Apply.
package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/orders/domain"
	"github.com/otelpatterns/patterns/hexagonal"
)

// The stored names of the order's events: part of the stored data, so a
// change of an event's shape gets a new name (and an upcaster).
const (
	typePlaced    = "orders.order_placed.v1"
	typePaid      = "orders.order_paid.v1"
	typeCancelled = "orders.order_cancelled.v1"
)

// aggregate is an order as the event store sees it.
type aggregate struct {
	eventsource.Base
	order domain.Order
}

func (a *aggregate) Apply(event any) error { return a.order.Apply(event) }

// Repository is a ports.OrderRepository on an event store.
type Repository struct {
	repo *eventsource.Repository[*aggregate]
	load func(context.Context, domain.OrderID) (*domain.Order, error)
	save func(context.Context, *domain.Order) error
}

// New returns a repository of orders on store, its calls traced and
// counted as a driven adapter's (EventStore.Load, EventStore.Save) with
// opts.
func New(store eventsource.Store, opts ...hexagonal.InstrumentOption) (*Repository, error) {
	reg := eventsource.NewRegistry()
	eventsource.Register[domain.OrderPlaced](reg, typePlaced)
	eventsource.Register[domain.OrderPaid](reg, typePaid)
	eventsource.Register[domain.OrderCancelled](reg, typeCancelled)
	repo, err := eventsource.NewRepository(store, reg, func() *aggregate { return &aggregate{} })
	if err != nil {
		return nil, err
	}
	r := &Repository{repo: repo}
	r.load = hexagonal.Instrument(hexagonal.DrivenAdapter, "EventStore", "Load", r.loadOrder, opts...)
	r.save = hexagonal.InstrumentErr(hexagonal.DrivenAdapter, "EventStore", "Save", r.saveOrder, opts...)
	return r, nil
}

// Load returns the order rebuilt from its events, or an error matching
// domain.ErrNotFound.
func (r *Repository) Load(ctx context.Context, id domain.OrderID) (*domain.Order, error) {
	return r.load(ctx, id)
}

// Save appends the order's new events, expecting its stream at the
// version the order was loaded at: a concurrent change fails with a
// conflict (409 at the edge) rather than being overwritten.
func (r *Repository) Save(ctx context.Context, o *domain.Order) error {
	return r.save(ctx, o)
}

func (r *Repository) loadOrder(ctx context.Context, id domain.OrderID) (*domain.Order, error) {
	a, err := r.repo.Load(ctx, string(id))
	if errors.Is(err, eventsource.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", domain.ErrNotFound, id)
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
	// The order was loaded (or placed) at base; the aggregate that saves
	// its changes is loaded again, and must be at base too.
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
