package shop

import (
	"context"
	"testing"
)

// A charge is answered by its idempotency key first: sent again, it is the
// charge taken, whatever the faults say since (a retry after a lost
// answer must not turn a taken payment into a decline, which the saga
// would not refund).
func TestPaymentsKeyFirst(t *testing.T) {
	ctx := context.Background()
	f := &Faults{}
	p := newPayments(f)
	first, err := p.charge(ctx, chargeIn{key: "k1", req: ChargeRequest{OrderID: "ord-1", CustomerID: "ada", AmountCents: 100}})
	if err != nil {
		t.Fatal(err)
	}
	f.DeclineCustomer("ada")
	again, err := p.charge(ctx, chargeIn{key: "k1", req: ChargeRequest{OrderID: "ord-1", CustomerID: "ada", AmountCents: 100}})
	if err != nil || again != first {
		t.Errorf("the charge sent again: %+v, %v; want %+v", again, err, first)
	}
}

// A refund that found no charge stands: a charge for that order arriving
// late (its request overtaken by the saga's refund) takes no money.
func TestPaymentsRefundBeforeCharge(t *testing.T) {
	ctx := context.Background()
	p := newPayments(&Faults{})
	if _, err := p.refund(ctx, "ord-2"); err != nil {
		t.Fatal(err)
	}
	late, err := p.charge(ctx, chargeIn{key: "k2", req: ChargeRequest{OrderID: "ord-2", CustomerID: "bob", AmountCents: 100}})
	if err == nil && !late.Refunded {
		t.Errorf("a charge after the order's refund took money: %+v", late)
	}
	if c, ok := p.charged("ord-2"); ok && !c.Refunded {
		t.Errorf("order ord-2 holds a charge after its refund: %+v", c)
	}
}
