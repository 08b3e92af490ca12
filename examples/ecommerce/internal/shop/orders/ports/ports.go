// Package ports declares what the order service's application needs from
// the world outside its domain: where orders are kept, the read model, and
// the services the order saga calls. The application depends on these,
// never on an adapter.
package ports

import (
	"context"
	"time"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
)

// OrderRepository keeps orders (the aggregate).
type OrderRepository interface {
	// Load returns the order rebuilt from its events, or an error
	// matching domain.ErrNotFound.
	Load(ctx context.Context, id domain.OrderID) (*domain.Order, error)
	// Save stores the order's changes, failing if another save changed
	// the order since it was loaded.
	Save(ctx context.Context, o *domain.Order) error
}

// Catalogue prices products.
type Catalogue interface {
	// Price returns sku's unit price, or an error matching
	// domain.ErrInvalid for a product that does not exist.
	Price(ctx context.Context, sku string) (int64, error)
}

// Inventory holds stock for orders.
type Inventory interface {
	// Reserve holds every line of order id, or none: an error matching
	// domain.ErrRejected when stock is short.
	Reserve(ctx context.Context, id domain.OrderID, lines []domain.Line) error
	// Release gives back what order id holds, if anything.
	Release(ctx context.Context, id domain.OrderID) error
}

// Charge asks the payment service for money.
type Charge struct {
	OrderID     domain.OrderID
	CustomerID  string
	AmountCents int64
	// IdempotencyKey makes a charge sent again charge once.
	IdempotencyKey string
}

// Payments takes and refunds payments.
type Payments interface {
	// Charge returns the payment's ID, or an error matching
	// domain.ErrRejected when the payment is declined.
	Charge(ctx context.Context, c Charge) (paymentID string, err error)
	// Refund gives back the payment of order id, if it took one.
	Refund(ctx context.Context, id domain.OrderID) error
}

// Shipment is a parcel created for an order.
type Shipment struct {
	Carrier, Tracking string
}

// Shipping ships orders.
type Shipping interface {
	// Create creates the shipment of order id, once however often asked.
	Create(ctx context.Context, id domain.OrderID, customer string) (Shipment, error)
}

// OrderView is the read model of an order, as GET /orders/{id} answers.
type OrderView struct {
	OrderID    string        `json:"order_id"`
	CustomerID string        `json:"customer_id"`
	Status     domain.Status `json:"status"`
	Lines      []domain.Line `json:"lines"`
	TotalCents int64         `json:"total_cents"`
	Reason     string        `json:"reason,omitempty"`
	UpdatedAt  time.Time     `json:"updated_at"`
}

// OrderViews is the read model the projection writes and queries read.
type OrderViews interface {
	// Get returns the view of order id, or an error matching
	// domain.ErrNotFound until the projection has seen the order.
	Get(ctx context.Context, id domain.OrderID) (OrderView, error)
	// Apply folds one of the order's events (a domain event value) into
	// its view, idempotently: applying it twice, or after a later event,
	// leaves the view as it was.
	Apply(ctx context.Context, event any, at time.Time) error
}
