package domain

import "strings"

// OrderID identifies an order.
type OrderID string

// ParseOrderID checks s as an order ID.
func ParseOrderID(s string) (OrderID, error) {
	if s == "" || len(s) > 100 || strings.ContainsAny(s, "/ \t\n") {
		return "", invalid("an order ID is 1 to 100 characters without '/' or spaces")
	}
	return OrderID(s), nil
}

// Line is qty of a product at its unit price when the order was placed.
type Line struct {
	SKU        string `json:"sku"`
	Qty        int    `json:"qty"`
	PriceCents int64  `json:"price_cents"`
}

// Status is where an order stands.
type Status string

// The statuses of an order, in the order they are reached. Completed,
// Rejected (nothing to undo), Compensated and NeedsAttention end it.
const (
	Pending        Status = "pending"
	Reserved       Status = "reserved"
	Paid           Status = "paid"
	Completed      Status = "completed"
	Rejected       Status = "rejected"
	Compensated    Status = "compensated"
	NeedsAttention Status = "needs_attention"
)

// Rank orders the statuses along an order's life, so that a read model
// fed at least once, and out of order after a redelivery, keeps the
// latest: an event of a lower rank than the status it has is stale.
func (s Status) Rank() int {
	switch s {
	case Pending:
		return 1
	case Reserved:
		return 2
	case Paid:
		return 3
	case Rejected:
		return 4
	case Completed, Compensated, NeedsAttention:
		return 5
	}
	return 0
}
