package domain

import (
	"fmt"
	"strings"
)

// OrderID identifies an order.
type OrderID string

// ParseOrderID returns s as an OrderID: one to 64 letters, digits, '-' or
// '_'.
func ParseOrderID(s string) (OrderID, error) {
	if s == "" || len(s) > 64 || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return "", fmt.Errorf("%w: order ID %q", ErrInvalid, s)
	}
	return OrderID(s), nil
}

// Money is an amount in cents of the shop's one currency, so that no
// amount is ever rounded.
type Money int64

// String formats m as units and cents: 1250 is "12.50".
func (m Money) String() string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	return fmt.Sprintf("%s%d.%02d", sign, m/100, m%100)
}

// Line is a line of an order: a quantity of one product at a unit price.
type Line struct {
	SKU       string `json:"sku"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
}

// Total returns the line's price.
func (l Line) Total() Money { return Money(l.Quantity) * l.UnitPrice }

func (l Line) check() error {
	switch {
	case strings.TrimSpace(l.SKU) == "":
		return fmt.Errorf("%w: a line needs a SKU", ErrInvalid)
	case l.Quantity < 1 || l.Quantity > 1000:
		return fmt.Errorf("%w: quantity %d of %s is not between 1 and 1000", ErrInvalid, l.Quantity, l.SKU)
	case l.UnitPrice <= 0:
		return fmt.Errorf("%w: unit price %s of %s is not positive", ErrInvalid, l.UnitPrice, l.SKU)
	}
	return nil
}

// Status is where an order is in its life.
type Status int

// The statuses.
const (
	Placed Status = iota + 1
	Paid
	Cancelled
)

// String returns the status's name.
func (s Status) String() string {
	switch s {
	case Placed:
		return "placed"
	case Paid:
		return "paid"
	case Cancelled:
		return "cancelled"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}
