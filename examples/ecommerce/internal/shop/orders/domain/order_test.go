package domain

import (
	"errors"
	"testing"
)

func placed(t *testing.T) *Order {
	t.Helper()
	o, err := Place("ord-1", "ada", []Line{{SKU: "BOOK-1", Qty: 2, PriceCents: 1000}, {SKU: "MUG-1", Qty: 1, PriceCents: 250}})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestPlaceChecksTheOrder(t *testing.T) {
	for name, lines := range map[string][]Line{
		"no lines":   nil,
		"no sku":     {{Qty: 1}},
		"zero qty":   {{SKU: "A", Qty: 0}},
		"too many":   {{SKU: "A", Qty: MaxQty + 1}},
		"negative $": {{SKU: "A", Qty: 1, PriceCents: -1}},
	} {
		if _, err := Place("ord-1", "ada", lines); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := Place("ord-1", "", []Line{{SKU: "A", Qty: 1}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no customer: %v", err)
	}
}

// The happy path, each command made twice as a retried saga step would:
// the second records nothing.
func TestCommandsAreIdempotent(t *testing.T) {
	o := placed(t)
	if o.Total() != 2250 || o.Status() != Pending {
		t.Fatalf("placed: %v %d", o.Status(), o.Total())
	}
	steps := []struct {
		do   func()
		want Status
	}{
		{o.Reserve, Reserved},
		{func() { o.Charge("pay-1") }, Paid},
		{func() { o.Ship("parcelco", "PC1") }, Completed},
	}
	for _, s := range steps {
		s.do()
		n := len(o.Changes())
		s.do()
		if len(o.Changes()) != n || o.Status() != s.want {
			t.Fatalf("after twice: %v with %d changes, want %v with %d", o.Status(), len(o.Changes()), s.want, n)
		}
	}
	// A paid order is not rejected nor compensated: the pivot is behind it.
	o.Reject("charge", "late")
	o.Compensate()
	if o.Status() != Completed || o.Version() != 4 {
		t.Errorf("a completed order became %v at version %d", o.Status(), o.Version())
	}
}

func TestRejectThenCompensate(t *testing.T) {
	o := placed(t)
	o.Reserve()
	o.Reject("charge", "declined")
	o.Compensate()
	o.Compensate()
	if o.Status() != Compensated || o.Reason() != "declined" || o.Version() != 4 {
		t.Errorf("%v %q at version %d, want compensated, declined, 4", o.Status(), o.Reason(), o.Version())
	}
	// Replaying the events rebuilds the same order.
	var r Order
	for _, e := range o.Changes() {
		if err := r.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	if r.Status() != o.Status() || r.Total() != o.Total() || r.Customer() != "ada" || r.Reason() != o.Reason() {
		t.Errorf("replayed %+v, want %+v", r, o)
	}
}
