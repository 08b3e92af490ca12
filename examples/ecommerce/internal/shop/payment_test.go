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
