package domain

import "fmt"

// MaxLines bounds an order's lines, and MaxQty a line's quantity.
const (
	MaxLines = 50
	MaxQty   = 1000
)

// Order is the aggregate: its state is rebuilt from its events by Apply,
// and its commands raise new events. Each command is idempotent (a saga
// step may run again): a command whose fact is already recorded records
// nothing. An Order is not safe for concurrent use.
type Order struct {
	id        OrderID
	customer  string
	lines     []Line
	status    Status
	paymentID string
	tracking  string
	reason    string
	version   int64
	changes   []any
}

// CheckLine checks a line's SKU and quantity, an error matching
// ErrInvalid if it is not one an order may have.
func CheckLine(sku string, qty int) error {
	if sku == "" || qty < 1 || qty > MaxQty {
		return invalid(fmt.Sprintf("a line needs a sku and a qty from 1 to %d", MaxQty))
	}
	return nil
}

// Place starts order id of customer with lines.
func Place(id OrderID, customer string, lines []Line) (*Order, error) {
	if customer == "" {
		return nil, invalid("an order needs a customer_id")
	}
	if len(lines) == 0 || len(lines) > MaxLines {
		return nil, invalid(fmt.Sprintf("an order has 1 to %d lines", MaxLines))
	}
	for _, l := range lines {
		if err := CheckLine(l.SKU, l.Qty); err != nil {
			return nil, err
		}
		if l.PriceCents < 0 {
			return nil, invalid("a price is not negative")
		}
	}
	o := &Order{}
	o.record(OrderPlaced{OrderID: id, CustomerID: customer, Lines: append([]Line(nil), lines...)})
	return o, nil
}

// Reserve records that the stock is held.
func (o *Order) Reserve() {
	if o.status == Pending {
		o.record(StockReserved{OrderID: o.id})
	}
}

// Charge records the payment.
func (o *Order) Charge(paymentID string) {
	if o.status == Pending || o.status == Reserved {
		o.record(PaymentCharged{OrderID: o.id, PaymentID: paymentID, AmountCents: o.Total()})
	}
}

// Ship records the shipment, which completes the order.
func (o *Order) Ship(carrier, tracking string) {
	if o.status == Paid {
		o.record(OrderShipped{OrderID: o.id, Carrier: carrier, Tracking: tracking})
	}
}

// Reject records a business refusal at step.
func (o *Order) Reject(step, reason string) {
	if o.status.Rank() < Rejected.Rank() && o.status != Paid {
		o.record(OrderRejected{OrderID: o.id, Step: step, Reason: reason})
	}
}

// Compensate records that what the order held was given back.
func (o *Order) Compensate() {
	if o.status != Completed && o.status != Compensated && o.status != Paid {
		o.record(OrderCompensated{OrderID: o.id})
	}
}

// NeedAttention records that the order's saga stopped half done.
func (o *Order) NeedAttention(reason string) {
	if o.status != Completed && o.status != Compensated && o.status != NeedsAttention {
		o.record(OrderNeedsAttention{OrderID: o.id, Reason: reason})
	}
}

// Apply changes the state for one event, loaded or raised.
func (o *Order) Apply(event any) error {
	switch e := event.(type) {
	case OrderPlaced:
		o.id, o.customer, o.lines, o.status = e.OrderID, e.CustomerID, e.Lines, Pending
	case StockReserved:
		o.status = Reserved
	case PaymentCharged:
		o.status, o.paymentID = Paid, e.PaymentID
	case OrderShipped:
		o.status, o.tracking = Completed, e.Tracking
	case OrderRejected:
		o.status, o.reason = Rejected, e.Reason
	case OrderCompensated:
		o.status = Compensated
	case OrderNeedsAttention:
		o.status, o.reason = NeedsAttention, e.Reason
	default:
		return fmt.Errorf("order: unexpected event %T", event)
	}
	o.version++
	return nil
}

func (o *Order) record(event any) {
	if err := o.Apply(event); err != nil {
		panic(err) // only the events above are recorded
	}
	o.changes = append(o.changes, event)
}

// ID returns the order's ID.
func (o *Order) ID() OrderID { return o.id }

// Customer returns the customer's ID.
func (o *Order) Customer() string { return o.customer }

// Lines returns a copy of the lines.
func (o *Order) Lines() []Line { return append([]Line(nil), o.lines...) }

// Status returns where the order stands.
func (o *Order) Status() Status { return o.status }

// PaymentID returns the payment's ID once charged.
func (o *Order) PaymentID() string { return o.paymentID }

// Reason returns why the order was rejected or needs attention.
func (o *Order) Reason() string { return o.reason }

// Total returns the sum of the lines.
func (o *Order) Total() int64 {
	var t int64
	for _, l := range o.lines {
		t += int64(l.Qty) * l.PriceCents
	}
	return t
}

// Version returns the number of events the order has, saved or not.
func (o *Order) Version() int64 { return o.version }

// Changes returns the events recorded since the order was loaded.
func (o *Order) Changes() []any { return o.changes }

// Saved forgets the changes, once stored.
func (o *Order) Saved() { o.changes = nil }
