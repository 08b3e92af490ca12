package domain

import (
	"fmt"
	"strings"
)

// Order is the order aggregate: the lines a customer ordered, and whether
// they were paid or the order cancelled. Its commands (Place, Pay,
// Cancel) check the rules against its state and record an event; its
// state changes only by events, so that a repository can rebuild it from
// them (Apply).
type Order struct {
	id        OrderID
	customer  string
	lines     []Line
	status    Status
	paymentID string
	version   int64 // events applied, recorded ones included
	changes   []any // events recorded since the order was loaded or saved
}

// Place returns a new order of lines for customer, with its OrderPlaced
// event recorded.
func Place(id OrderID, customer string, lines []Line) (*Order, error) {
	if _, err := ParseOrderID(string(id)); err != nil {
		return nil, err
	}
	if strings.TrimSpace(customer) == "" {
		return nil, fmt.Errorf("%w: an order needs a customer", ErrInvalid)
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%w: order %s", ErrEmptyOrder, id)
	}
	for _, l := range lines {
		if err := l.check(); err != nil {
			return nil, err
		}
	}
	o := &Order{}
	o.record(OrderPlaced{ID: id, Customer: customer, Lines: append([]Line(nil), lines...)})
	return o, nil
}

// CheckPayable returns nil when the order may be paid now: it is neither
// cancelled nor paid. The application asks before it charges anyone.
func (o *Order) CheckPayable() error {
	switch o.status {
	case Cancelled:
		return fmt.Errorf("order %s cannot be paid: %w", o.id, ErrCancelled)
	case Paid:
		return fmt.Errorf("order %s cannot be paid: %w (payment %s)", o.id, ErrAlreadyPaid, o.paymentID)
	}
	return nil
}

// Pay records the payment paymentID of amount, which must be the order's
// total.
func (o *Order) Pay(paymentID string, amount Money) error {
	if err := o.CheckPayable(); err != nil {
		return err
	}
	if amount != o.Total() {
		return fmt.Errorf("%w: %s paid for order %s of %s", ErrWrongAmount, amount, o.id, o.Total())
	}
	if paymentID == "" {
		return fmt.Errorf("%w: a payment needs an ID", ErrInvalid)
	}
	o.record(OrderPaid{PaymentID: paymentID, Amount: amount})
	return nil
}

// Cancel cancels the order, which must not be paid. Cancelling a
// cancelled order does nothing.
func (o *Order) Cancel(reason string) error {
	switch o.status {
	case Paid:
		return fmt.Errorf("order %s cannot be cancelled: %w", o.id, ErrAlreadyPaid)
	case Cancelled:
		return nil
	}
	o.record(OrderCancelled{Reason: reason})
	return nil
}

// Apply changes the order's state for one event, checking no rule (the
// event is a fact). A repository calls it for each stored event.
func (o *Order) Apply(event any) error {
	switch e := event.(type) {
	case OrderPlaced:
		o.id, o.customer, o.lines, o.status = e.ID, e.Customer, e.Lines, Placed
	case OrderPaid:
		o.status, o.paymentID = Paid, e.PaymentID
	case OrderCancelled:
		o.status = Cancelled
	default:
		return fmt.Errorf("domain: an order has no event of type %T", event)
	}
	o.version++
	return nil
}

func (o *Order) record(event any) {
	_ = o.Apply(event) // the commands record only the events Apply knows
	o.changes = append(o.changes, event)
}

// ID returns the order's ID.
func (o *Order) ID() OrderID { return o.id }

// Customer returns who placed the order.
func (o *Order) Customer() string { return o.customer }

// Lines returns the order's lines.
func (o *Order) Lines() []Line { return append([]Line(nil), o.lines...) }

// Status returns the order's status.
func (o *Order) Status() Status { return o.status }

// PaymentID returns the ID of the order's payment, if it is paid.
func (o *Order) PaymentID() string { return o.paymentID }

// Total returns the sum of the order's lines.
func (o *Order) Total() Money {
	var t Money
	for _, l := range o.lines {
		t += l.Total()
	}
	return t
}

// Version returns the number of events applied to the order, those
// recorded and not yet saved included.
func (o *Order) Version() int64 { return o.version }

// Changes returns the events recorded since the order was loaded or last
// saved.
func (o *Order) Changes() []any { return o.changes }

// Saved tells the order that its changes are stored.
func (o *Order) Saved() { o.changes = nil }
