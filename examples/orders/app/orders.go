// Package app is the order system's use cases: place, pay, cancel and get
// an order. Each loads what it needs through the ports, lets the domain
// decide, and stores and announces the outcome through the ports again.
// It knows the domain and the ports, never an adapter.
//
// Every use case, every domain decision and every call through a port is
// wrapped with hexagonal.Instrument in its layer, so that a traced request
// shows a span per layer, and each is counted by outcome.
package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/examples/orders/domain"
	"github.com/otelpatterns/patterns/examples/orders/ports"
	"github.com/otelpatterns/patterns/hexagonal"
)

// PlaceOrder is the input of [Orders.Place].
type PlaceOrder struct {
	Customer string        `json:"customer"`
	Lines    []domain.Line `json:"lines"`
}

// PayOrder is the input of [Orders.Pay].
type PayOrder struct {
	ID     domain.OrderID
	Amount domain.Money
}

// CancelOrder is the input of [Orders.Cancel].
type CancelOrder struct {
	ID     domain.OrderID
	Reason string
}

// OrderView is an order as the use cases return it.
type OrderView struct {
	ID        domain.OrderID `json:"id"`
	Customer  string         `json:"customer"`
	Lines     []domain.Line  `json:"lines"`
	Total     domain.Money   `json:"total"`
	Status    string         `json:"status"`
	PaymentID string         `json:"payment_id,omitempty"`
	Version   int64          `json:"version"`
}

func viewOf(o *domain.Order) OrderView {
	return OrderView{
		ID: o.ID(), Customer: o.Customer(), Lines: o.Lines(), Total: o.Total(),
		Status: o.Status().String(), PaymentID: o.PaymentID(), Version: o.Version(),
	}
}

// Ports are what the use cases need from the outside, and how they name
// new orders.
type Ports struct {
	Repository ports.OrderRepository
	Payments   ports.PaymentGateway
	Inventory  ports.Inventory
	Notifier   ports.Notifier
	// NewID returns the ID of a new order.
	NewID func() domain.OrderID
}

// Orders is the use cases. Its fields are the calls they make, each
// wrapped in its layer's span and metrics once, at construction.
type Orders struct {
	// The use cases, as the driving adapters call them.
	Place  func(context.Context, PlaceOrder) (OrderView, error)
	Pay    func(context.Context, PayOrder) (OrderView, error)
	Cancel func(context.Context, CancelOrder) (OrderView, error)
	Get    func(context.Context, domain.OrderID) (OrderView, error)

	newID func() domain.OrderID

	// The domain's decisions.
	placeOrder   func(context.Context, domain.OrderPlaced) (*domain.Order, error)
	checkPayable func(context.Context, *domain.Order) error
	payOrder     func(context.Context, paid) error
	cancelOrder  func(context.Context, cancelled) error

	// The ports.
	load    func(context.Context, domain.OrderID) (*domain.Order, error)
	save    func(context.Context, *domain.Order) error
	charge  func(context.Context, ports.Charge) (string, error)
	reserve func(context.Context, domain.OrderPlaced) error
	release func(context.Context, domain.OrderID) error
	notify  func(context.Context, ports.Notification) error
}

// cancelled is the input of the domain's Cancel.
type cancelled struct {
	order  *domain.Order
	reason string
}

// paid is the input of the domain's Pay.
type paid struct {
	order     *domain.Order
	paymentID string
	amount    domain.Money
}

// New returns the use cases on p, their telemetry configured by opts
// (hexagonal.WithTracerProvider, WithMeterProvider). It returns an error
// naming every port missing.
func New(p Ports, opts ...hexagonal.InstrumentOption) (*Orders, error) {
	var errs []error
	if p.Repository == nil {
		errs = append(errs, errors.New("Ports.Repository is nil"))
	}
	if p.Payments == nil {
		errs = append(errs, errors.New("Ports.Payments is nil"))
	}
	if p.Inventory == nil {
		errs = append(errs, errors.New("Ports.Inventory is nil"))
	}
	if p.Notifier == nil {
		errs = append(errs, errors.New("Ports.Notifier is nil"))
	}
	if p.NewID == nil {
		errs = append(errs, errors.New("Ports.NewID is nil"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("app.New: %w", err)
	}
	o := &Orders{newID: p.NewID}
	const (
		order = "Order"
		use   = "Orders"
	)
	o.placeOrder = hexagonal.Instrument(hexagonal.Domain, order, "Place",
		func(_ context.Context, e domain.OrderPlaced) (*domain.Order, error) {
			return domain.Place(e.ID, e.Customer, e.Lines)
		}, opts...)
	o.checkPayable = hexagonal.InstrumentErr(hexagonal.Domain, order, "CheckPayable",
		func(_ context.Context, ord *domain.Order) error { return ord.CheckPayable() }, opts...)
	o.payOrder = hexagonal.InstrumentErr(hexagonal.Domain, order, "Pay",
		func(_ context.Context, in paid) error { return in.order.Pay(in.paymentID, in.amount) }, opts...)
	o.cancelOrder = hexagonal.InstrumentErr(hexagonal.Domain, order, "Cancel",
		func(_ context.Context, in cancelled) error { return in.order.Cancel(in.reason) }, opts...)

	o.load = hexagonal.Instrument(hexagonal.Port, "OrderRepository", "Load", p.Repository.Load, opts...)
	o.save = hexagonal.InstrumentErr(hexagonal.Port, "OrderRepository", "Save", p.Repository.Save, opts...)
	o.charge = hexagonal.Instrument(hexagonal.Port, "PaymentGateway", "Charge", p.Payments.Charge, opts...)
	o.reserve = hexagonal.InstrumentErr(hexagonal.Port, "Inventory", "Reserve",
		func(ctx context.Context, e domain.OrderPlaced) error { return p.Inventory.Reserve(ctx, e.ID, e.Lines) }, opts...)
	o.release = hexagonal.InstrumentErr(hexagonal.Port, "Inventory", "Release", p.Inventory.Release, opts...)
	o.notify = hexagonal.InstrumentErr(hexagonal.Port, "Notifier", "Notify", p.Notifier.Notify, opts...)

	o.Place = hexagonal.Instrument(hexagonal.Application, use, "Place", o.place, opts...)
	o.Pay = hexagonal.Instrument(hexagonal.Application, use, "Pay", o.pay, opts...)
	o.Cancel = hexagonal.Instrument(hexagonal.Application, use, "Cancel", o.cancel, opts...)
	o.Get = hexagonal.Instrument(hexagonal.Application, use, "Get", o.get, opts...)
	return o, nil
}

// place decides the order, reserves its stock and stores it; the stock
// goes back if the order cannot be stored.
func (o *Orders) place(ctx context.Context, in PlaceOrder) (OrderView, error) {
	placed := domain.OrderPlaced{ID: o.newID(), Customer: in.Customer, Lines: in.Lines}
	ord, err := o.placeOrder(ctx, placed)
	if err != nil {
		return OrderView{}, err
	}
	if err := o.reserve(ctx, placed); err != nil {
		return OrderView{}, err
	}
	if err := o.save(ctx, ord); err != nil {
		return OrderView{}, errors.Join(err, o.release(context.WithoutCancel(ctx), ord.ID()))
	}
	o.tell(ctx, ord, "order placed: "+ord.Total().String())
	return viewOf(ord), nil
}

// pay checks the order may be paid before anyone is charged, charges its
// total (idempotently: a retried charge, or a retried use case, charges
// once), and records the payment.
func (o *Orders) pay(ctx context.Context, in PayOrder) (OrderView, error) {
	ord, err := o.load(ctx, in.ID)
	if err != nil {
		return OrderView{}, err
	}
	if err := o.checkPayable(ctx, ord); err != nil {
		return OrderView{}, err
	}
	if in.Amount != ord.Total() {
		return OrderView{}, fmt.Errorf("%w: %s offered for order %s of %s", domain.ErrWrongAmount, in.Amount, ord.ID(), ord.Total())
	}
	paymentID, err := o.charge(ctx, ports.Charge{OrderID: ord.ID(), Amount: in.Amount, IdempotencyKey: "pay-" + string(ord.ID())})
	if err != nil {
		return OrderView{}, err
	}
	if err := o.payOrder(ctx, paid{order: ord, paymentID: paymentID, amount: in.Amount}); err != nil {
		return OrderView{}, err
	}
	if err := o.save(ctx, ord); err != nil {
		return OrderView{}, err
	}
	o.tell(ctx, ord, "payment received: "+in.Amount.String())
	return viewOf(ord), nil
}

// cancel cancels the order and gives its stock back.
func (o *Orders) cancel(ctx context.Context, in CancelOrder) (OrderView, error) {
	ord, err := o.load(ctx, in.ID)
	if err != nil {
		return OrderView{}, err
	}
	if err := o.cancelOrder(ctx, cancelled{order: ord, reason: in.Reason}); err != nil {
		return OrderView{}, err
	}
	if len(ord.Changes()) == 0 {
		return viewOf(ord), nil // cancelled already
	}
	if err := o.save(ctx, ord); err != nil {
		return OrderView{}, err
	}
	if err := o.release(ctx, ord.ID()); err != nil {
		return OrderView{}, err
	}
	o.tell(ctx, ord, "order cancelled: "+in.Reason)
	return viewOf(ord), nil
}

func (o *Orders) get(ctx context.Context, id domain.OrderID) (OrderView, error) {
	ord, err := o.load(ctx, id)
	if err != nil {
		return OrderView{}, err
	}
	return viewOf(ord), nil
}

// tell notifies the customer. A notification that fails does not undo
// what was stored: its error is in the Notifier.Notify span and metrics.
func (o *Orders) tell(ctx context.Context, ord *domain.Order, msg string) {
	_ = o.notify(ctx, ports.Notification{Customer: ord.Customer(), OrderID: ord.ID(), Message: msg})
}
