package eventstore

import (
	"context"
	"errors"
	"testing"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/orders/domain"
	"github.com/otelpatterns/patterns/hexagonal"
)

// TestSaveLoad stores an order's events and rebuilds it from them, and
// checks that of two writers that loaded the same version, the second
// save fails with a conflict (409 at the edge) and writes nothing.
func TestSaveLoad(t *testing.T) {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	r, err := New(store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Load(ctx, "o-1"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Load(missing) = %v; want %v", err, domain.ErrNotFound)
	}
	o, err := domain.Place("o-1", "alice", []domain.Line{{SKU: "mug", Quantity: 1, UnitPrice: 1250}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, o); err != nil {
		t.Fatalf("Save(new) = %v", err)
	}
	if len(o.Changes()) != 0 {
		t.Errorf("after Save, %d changes; want none", len(o.Changes()))
	}

	first, err := r.Load(ctx, "o-1")
	if err != nil {
		t.Fatal(err)
	}
	second, err := r.Load(ctx, "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Pay("p-1", 1250); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, first); err != nil {
		t.Fatalf("Save(paid) = %v", err)
	}
	if err := second.Cancel("changed my mind"); err != nil {
		t.Fatal(err)
	}
	err = r.Save(ctx, second)
	if !errors.Is(err, eventsource.ErrConcurrencyConflict) || hexagonal.StatusOf(err) != 409 {
		t.Errorf("Save(stale) = %v (status %d); want a concurrency conflict answering 409", err, hexagonal.StatusOf(err))
	}

	got, err := r.Load(ctx, "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status() != domain.Paid || got.PaymentID() != "p-1" || got.Version() != 2 || got.Total() != 1250 {
		t.Errorf("loaded order: %s by %q at version %d, total %s; want paid by p-1 at version 2, total 12.50",
			got.Status(), got.PaymentID(), got.Version(), got.Total())
	}
}
