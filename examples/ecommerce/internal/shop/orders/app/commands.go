package app

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
)

// LineInput is a line as the customer asks for it: the price is the
// catalogue's.
type LineInput struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// PlaceOrder is the command that places an order. It is identified by
// its idempotency key (cqrs.Identified) and targets the order's stream
// (cqrs.Targeted), so that cqrs.Deduplication makes a command sent twice
// place one order.
type PlaceOrder struct {
	// IdempotencyKey is the client's Idempotency-Key, or one made for a
	// request that had none (NewPlaceOrder does both).
	IdempotencyKey string
	OrderID        domain.OrderID
	CustomerID     string
	Lines          []LineInput
}

// NewPlaceOrder returns the command for a request with idempotency key
// (which may be empty). The order's ID is derived from the customer and
// the key, so that the same request sent again names the same order and
// is answered with the same ID; a request without a key gets a random
// one.
func NewPlaceOrder(key, customer string, lines []LineInput) PlaceOrder {
	if key == "" {
		key = "auto-" + rand.Text()
	}
	sum := sha256.Sum256([]byte(customer + "\x00" + key))
	return PlaceOrder{
		IdempotencyKey: key,
		OrderID:        domain.OrderID("ord-" + hex.EncodeToString(sum[:10])),
		CustomerID:     customer,
		Lines:          lines,
	}
}

// CommandID returns the idempotency key, hashed if it is longer than an
// event store's command IDs may be.
func (c PlaceOrder) CommandID() string {
	if len(c.IdempotencyKey) <= 100 {
		return "place-order/" + c.IdempotencyKey
	}
	sum := sha256.Sum256([]byte(c.IdempotencyKey))
	return "place-order/" + hex.EncodeToString(sum[:])
}

// CommandStream returns the order's stream: the order ID.
func (c PlaceOrder) CommandStream() string { return string(c.OrderID) }

// Validate checks the command before its handler runs (cqrs.Validation).
func (c PlaceOrder) Validate() error {
	var errs []error
	if c.IdempotencyKey == "" {
		errs = append(errs, errors.New("an idempotency key is required"))
	}
	if _, err := domain.ParseOrderID(string(c.OrderID)); err != nil {
		errs = append(errs, err)
	}
	if c.CustomerID == "" {
		errs = append(errs, errors.New("customer_id is required"))
	}
	// The lines are checked here as the domain checks them, before the
	// handler asks the catalogue for each line's price.
	if len(c.Lines) == 0 || len(c.Lines) > domain.MaxLines {
		errs = append(errs, fmt.Errorf("an order has 1 to %d lines", domain.MaxLines))
	}
	for i, l := range c.Lines {
		if err := domain.CheckLine(l.SKU, l.Qty); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", i, err))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &invalidError{err}
	}
	return nil
}

// invalidError is a command that does not validate: 400 at the edge.
type invalidError struct{ err error }

func (e *invalidError) Error() string      { return e.err.Error() }
func (e *invalidError) Unwrap() error      { return e.err }
func (e *invalidError) DomainKind() string { return "invalid" }

// GetOrder is the query of an order's read model.
type GetOrder struct {
	OrderID domain.OrderID
}
