// Package ports declares what the application needs from the world
// outside the domain, as interfaces the adapters implement: where orders
// are kept, who takes payments, what reserves stock and who tells the
// customer. The application depends on these, never on an adapter.
package ports

import (
	"context"

	"github.com/otelpatterns/patterns/examples/orders/domain"
)

// OrderRepository keeps orders.
type OrderRepository interface {
	// Load returns the order id, or an error matching domain.ErrNotFound.
	Load(ctx context.Context, id domain.OrderID) (*domain.Order, error)
	// Save stores the order's changes, failing if another save changed
	// the order since it was loaded.
	Save(ctx context.Context, o *domain.Order) error
}

// Charge asks a payment service for money.
type Charge struct {
	OrderID domain.OrderID
	Amount  domain.Money
	// IdempotencyKey makes a charge sent again (a retry) charge once.
	IdempotencyKey string
}

// PaymentGateway takes payments.
type PaymentGateway interface {
	// Charge returns the payment's ID, or an error matching
	// domain.ErrPaymentDeclined when the service declines it.
	Charge(ctx context.Context, c Charge) (paymentID string, err error)
}

// Inventory reserves stock for orders.
type Inventory interface {
	// Reserve reserves the lines of order id, all or none, or fails with
	// an error matching domain.ErrOutOfStock.
	Reserve(ctx context.Context, id domain.OrderID, lines []domain.Line) error
	// Release gives back what order id reserved.
	Release(ctx context.Context, id domain.OrderID) error
}

// Notification is a message to a customer about an order.
type Notification struct {
	Customer string
	OrderID  domain.OrderID
	Message  string
}

// Notifier tells customers what happened to their orders.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}
