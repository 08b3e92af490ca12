package domain

// The events of an order: facts, in the past tense, that the order's
// state is rebuilt from. Their stored names are the repository adapter's
// business.
type (
	// OrderPlaced is every order's first event.
	OrderPlaced struct {
		ID       OrderID `json:"id"`
		Customer string  `json:"customer"`
		Lines    []Line  `json:"lines"`
	}
	// OrderPaid records the payment of the order's total.
	OrderPaid struct {
		PaymentID string `json:"payment_id"`
		Amount    Money  `json:"amount"`
	}
	// OrderCancelled records a cancellation, before payment.
	OrderCancelled struct {
		Reason string `json:"reason"`
	}
)
