package domain

import (
	"errors"
	"testing"
)

func placed(t *testing.T) *Order {
	t.Helper()
	o, err := Place("o-1", "alice", []Line{{SKU: "mug", Quantity: 2, UnitPrice: 1250}, {SKU: "tea", Quantity: 1, UnitPrice: 400}})
	if err != nil {
		t.Fatalf("Place() = %v; want nil", err)
	}
	return o
}

func TestPlace(t *testing.T) {
	o := placed(t)
	if o.Total() != 2900 || o.Status() != Placed || o.Version() != 1 || len(o.Changes()) != 1 {
		t.Errorf("placed order: total %s, status %s, version %d, %d changes; want 29.00, placed, 1, 1",
			o.Total(), o.Status(), o.Version(), len(o.Changes()))
	}
	for _, tc := range []struct {
		name     string
		id       OrderID
		customer string
		lines    []Line
		want     error
	}{
		{"no lines", "o-2", "bob", nil, ErrEmptyOrder},
		{"no customer", "o-2", " ", []Line{{SKU: "mug", Quantity: 1, UnitPrice: 1}}, ErrInvalid},
		{"bad id", "o 2", "bob", []Line{{SKU: "mug", Quantity: 1, UnitPrice: 1}}, ErrInvalid},
		{"no SKU", "o-2", "bob", []Line{{Quantity: 1, UnitPrice: 1}}, ErrInvalid},
		{"zero quantity", "o-2", "bob", []Line{{SKU: "mug", UnitPrice: 1}}, ErrInvalid},
		{"free", "o-2", "bob", []Line{{SKU: "mug", Quantity: 1}}, ErrInvalid},
	} {
		if _, err := Place(tc.id, tc.customer, tc.lines); !errors.Is(err, tc.want) {
			t.Errorf("%s: Place() = %v; want %v", tc.name, err, tc.want)
		}
	}
}

func TestPayAndCancel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(*Order) error
		cmd    func(*Order) error
		want   error
		status Status
	}{
		{"pay", nil, func(o *Order) error { return o.Pay("p-1", 2900) }, nil, Paid},
		{"pay the wrong amount", nil, func(o *Order) error { return o.Pay("p-1", 2800) }, ErrWrongAmount, Placed},
		{"pay twice", func(o *Order) error { return o.Pay("p-1", 2900) }, func(o *Order) error { return o.Pay("p-2", 2900) }, ErrAlreadyPaid, Paid},
		{"pay after cancellation", func(o *Order) error { return o.Cancel("no") }, func(o *Order) error { return o.Pay("p-1", 2900) }, ErrCancelled, Cancelled},
		{"cancel", nil, func(o *Order) error { return o.Cancel("no") }, nil, Cancelled},
		{"cancel after payment", func(o *Order) error { return o.Pay("p-1", 2900) }, func(o *Order) error { return o.Cancel("no") }, ErrAlreadyPaid, Paid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := placed(t)
			if tc.before != nil {
				if err := tc.before(o); err != nil {
					t.Fatal(err)
				}
			}
			n := len(o.Changes())
			err := tc.cmd(o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("command = %v; want %v", err, tc.want)
			}
			if recorded := len(o.Changes()) - n; (err == nil) != (recorded == 1) {
				t.Errorf("command recorded %d events with error %v; want 1 on success, none on failure", recorded, err)
			}
			if o.Status() != tc.status {
				t.Errorf("status = %s; want %s", o.Status(), tc.status)
			}
		})
	}
}

// TestReplay rebuilds an order from its events, as a repository does.
func TestReplay(t *testing.T) {
	o := placed(t)
	if err := o.Pay("p-1", o.Total()); err != nil {
		t.Fatal(err)
	}
	var r Order
	for _, e := range o.Changes() {
		if err := r.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	if r.ID() != o.ID() || r.Status() != Paid || r.PaymentID() != "p-1" || r.Version() != 2 || len(r.Changes()) != 0 {
		t.Errorf("replayed order = %+v; want o-1 paid by p-1 at version 2, no changes", r)
	}
	if err := r.Apply(struct{}{}); err == nil {
		t.Errorf("Apply(unknown event) = nil; want an error")
	}
}
