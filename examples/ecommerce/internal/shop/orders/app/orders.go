// Package app is the order service's application layer: the PlaceOrder
// command and the GetOrder query, which the wiring registers on a cqrs
// bus, the order saga across inventory, payment and shipping, and the
// projection of the order's events into its read model. It depends on
// the domain, the ports and the library's patterns, never on an adapter.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/saga"
)

// Ports are the adapters the application uses.
type Ports struct {
	Orders    ports.OrderRepository
	Views     ports.OrderViews
	Catalogue ports.Catalogue
	Inventory ports.Inventory
	Payments  ports.Payments
	Shipping  ports.Shipping
}

// Orders is the order service's application. It is safe for concurrent
// use.
type Orders struct {
	p     Ports
	def   *saga.Definition[OrderSaga]
	orch  *saga.Orchestrator
	place func(context.Context, PlaceOrder) error
	get   func(context.Context, GetOrder) (ports.OrderView, error)
	start func(context.Context, domain.OrderPlaced) error
	apply func(context.Context, any) error
	now   func() time.Time
	// logger receives what needs a person.
	logger *slog.Logger
}

// New returns the application on p, with the order saga run by the
// orchestrator that newOrchestrator makes (on the saga log the wiring
// chose) with the options given: the saga's definition and what to do
// when a saga needs attention.
func New(p Ports, cfg SagaConfig, newOrchestrator func(opts ...saga.Option) (*saga.Orchestrator, error)) (*Orders, error) {
	if p.Orders == nil || p.Views == nil || p.Catalogue == nil || p.Inventory == nil || p.Payments == nil || p.Shipping == nil {
		return nil, errors.New("app: every port is required")
	}
	o := &Orders{p: p, now: time.Now, logger: cfg.Logger}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	def, err := o.define(cfg)
	if err != nil {
		return nil, err
	}
	o.def = def
	if o.orch, err = newOrchestrator(saga.WithDefinitions(def), saga.WithNeedsAttention(o.needsAttention)); err != nil {
		return nil, err
	}
	o.place = hexagonal.InstrumentErr(hexagonal.Application, "Orders", "Place", o.doPlace)
	o.get = hexagonal.Instrument(hexagonal.Application, "Orders", "Get", o.doGet)
	o.start = hexagonal.InstrumentErr(hexagonal.Application, "Orders", "StartSaga", o.doStart)
	o.apply = hexagonal.InstrumentErr(hexagonal.Application, "OrderViews", "Project", o.doApply)
	return o, nil
}

// Register registers the command and query handlers on bus.
func (o *Orders) Register(bus *cqrs.Bus) error {
	return errors.Join(
		cqrs.HandleCommand(bus, o.place),
		cqrs.HandleQuery(bus, o.get),
	)
}

// Orchestrator returns the orchestrator of the order sagas, for the
// wiring's lifecycle (Recover at start, Close at stop).
func (o *Orders) Orchestrator() *saga.Orchestrator { return o.orch }

// Definition returns the order saga's definition.
func (o *Orders) Definition() *saga.Definition[OrderSaga] { return o.def }

// doPlace prices the lines from the catalogue and saves the new order.
// Its append records the command's ID (the context carries it), so that
// a copy of the command appends nothing.
func (o *Orders) doPlace(ctx context.Context, c PlaceOrder) error {
	lines := make([]domain.Line, 0, len(c.Lines))
	for _, l := range c.Lines {
		price, err := o.p.Catalogue.Price(ctx, l.SKU)
		if err != nil {
			return fmt.Errorf("pricing %s: %w", l.SKU, err)
		}
		lines = append(lines, domain.Line{SKU: l.SKU, Qty: l.Qty, PriceCents: price})
	}
	ord, err := domain.Place(c.OrderID, c.CustomerID, lines)
	if err != nil {
		return err
	}
	return o.p.Orders.Save(ctx, ord)
}

func (o *Orders) doGet(ctx context.Context, q GetOrder) (ports.OrderView, error) {
	return o.p.Views.Get(ctx, q.OrderID)
}

// StartSaga starts the saga of a placed order, once: the event that
// triggers it is delivered at least once, and a saga of the order's ID
// that exists already is the same saga.
func (o *Orders) StartSaga(ctx context.Context, e domain.OrderPlaced) error {
	return o.start(ctx, e)
}

func (o *Orders) doStart(ctx context.Context, e domain.OrderPlaced) error {
	data := OrderSaga{OrderID: e.OrderID, CustomerID: e.CustomerID, Lines: e.Lines}
	for _, l := range e.Lines {
		data.TotalCents += int64(l.Qty) * l.PriceCents
	}
	_, err := saga.Start(ctx, o.orch, o.def, data, saga.WithID(string(e.OrderID)))
	if errors.Is(err, saga.ErrExists) {
		return nil
	}
	return err
}

// Project folds one of the order's events into its read model.
func (o *Orders) Project(ctx context.Context, event any) error { return o.apply(ctx, event) }

func (o *Orders) doApply(ctx context.Context, event any) error {
	return o.p.Views.Apply(ctx, event, o.now())
}

// change loads order id, applies f and saves what f recorded, again on a
// lost race.
func (o *Orders) change(ctx context.Context, id domain.OrderID, f func(*domain.Order)) error {
	var err error
	for range 5 {
		var ord *domain.Order
		if ord, err = o.p.Orders.Load(ctx, id); err != nil {
			return err
		}
		f(ord)
		if err = o.p.Orders.Save(ctx, ord); err == nil {
			return nil
		}
		if k, ok := hexagonal.DomainKind(err); !ok || k != hexagonal.KindConflict {
			return err
		}
	}
	return err
}
