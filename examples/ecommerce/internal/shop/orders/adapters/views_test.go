package adapters

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// Events come at least once and out of order after a redelivery: the view
// keeps the latest status, and an event applied again changes nothing.
func TestMemoryViewsOutOfOrder(t *testing.T) { viewsOutOfOrder(t, &MemoryViews{}) }

// The same on PostgreSQL, in a schema of the test's own.
func TestPostgresViewsOutOfOrder(t *testing.T) {
	v := NewPostgresViews(testenv.PostgresPool(t, 4), testenv.Schema(t, "shopviews"))
	if err := v.Migrate(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	viewsOutOfOrder(t, v)
}

func viewsOutOfOrder(t *testing.T, v ports.OrderViews) {
	ctx := context.Background()
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	placed := domain.OrderPlaced{OrderID: "o1", CustomerID: "ada", Lines: []domain.Line{{SKU: "A", Qty: 2, PriceCents: 300}}}
	events := []any{
		domain.StockReserved{OrderID: "o1"},
		domain.OrderShipped{OrderID: "o1"},
	}
	for i, e := range events {
		if err := v.Apply(ctx, e, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Get(ctx, "o1"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("an order seen before its OrderPlaced: %v, want not found", err)
	}
	for _, e := range []any{placed, domain.PaymentCharged{OrderID: "o1"}, domain.StockReserved{OrderID: "o1"}, placed} {
		if err := v.Apply(ctx, e, at); err != nil {
			t.Fatal(err)
		}
	}
	got, err := v.Get(ctx, "o1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != domain.Completed || got.TotalCents != 600 || got.CustomerID != "ada" || !got.UpdatedAt.Equal(at.Add(time.Second)) {
		t.Errorf("view %+v, want completed, 600, ada, updated at the latest event", got)
	}

	// A stale event redelivered leaves the reason of the latest status:
	// the refusal, then the compensation that failed, then the refusal
	// again.
	for _, e := range []any{
		domain.OrderPlaced{OrderID: "o2", CustomerID: "bob", Lines: []domain.Line{{SKU: "A", Qty: 1, PriceCents: 300}}},
		domain.OrderRejected{OrderID: "o2", Step: "charge", Reason: "card declined"},
		domain.OrderNeedsAttention{OrderID: "o2", Reason: "the release failed"},
		domain.OrderRejected{OrderID: "o2", Step: "charge", Reason: "card declined"},
	} {
		if err := v.Apply(ctx, e, at); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := v.Get(ctx, "o2"); err != nil || got.Status != domain.NeedsAttention || got.Reason != "the release failed" {
		t.Errorf("view %+v (%v), want needs_attention because the release failed", got, err)
	}
	if err := v.Apply(ctx, "not an event", at); err == nil {
		t.Error("a value that is not an order event was applied")
	}
}
