// Package domain is the fixture's domain: it imports only the standard
// library's basics.
package domain

import (
	"errors"
	"time"
)

// Order is an order.
type Order struct {
	ID     string
	Placed time.Time
	Lines  []int
}

// ErrEmpty is the error of an order without lines.
var ErrEmpty = errors.New("an order needs at least one line")
