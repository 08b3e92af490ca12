package domain

// The order's events: facts, in the past tense. They are stored, so they
// carry exported fields and change only by a new version.
type (
	// OrderPlaced starts an order.
	OrderPlaced struct {
		OrderID    OrderID `json:"order_id"`
		CustomerID string  `json:"customer_id"`
		Lines      []Line  `json:"lines"`
	}
	// StockReserved records that the inventory holds the order's lines.
	StockReserved struct {
		OrderID OrderID `json:"order_id"`
	}
	// PaymentCharged records the payment: the point of no return.
	PaymentCharged struct {
		OrderID     OrderID `json:"order_id"`
		PaymentID   string  `json:"payment_id"`
		AmountCents int64   `json:"amount_cents"`
	}
	// OrderShipped records the shipment: the order is completed.
	OrderShipped struct {
		OrderID  OrderID `json:"order_id"`
		Carrier  string  `json:"carrier"`
		Tracking string  `json:"tracking"`
	}
	// OrderRejected records a business refusal by another service (stock
	// short, payment declined); what was done before it is then undone.
	OrderRejected struct {
		OrderID OrderID `json:"order_id"`
		Step    string  `json:"step"`
		Reason  string  `json:"reason"`
	}
	// OrderCompensated records that what the order had reserved was
	// given back.
	OrderCompensated struct {
		OrderID OrderID `json:"order_id"`
	}
	// OrderNeedsAttention records that the saga stopped half done and
	// an operator has to decide.
	OrderNeedsAttention struct {
		OrderID OrderID `json:"order_id"`
		Reason  string  `json:"reason"`
	}
)
