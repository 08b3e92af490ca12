package app

import (
	"context"
	"testing"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/saga"
)

// An order the domain would refuse for its lines (too many, a quantity
// out of range, no SKU) is refused by the command's validation, before
// its handler asks the catalogue for a price per line: a body of a
// megabyte holds tens of thousands of lines.
func TestPlaceOrderValidatesLinesFirst(t *testing.T) {
	svc := &services{}
	o, err := New(Ports{Orders: &repo{events: map[domain.OrderID][]any{}}, Views: noViews{},
		Catalogue: svc, Inventory: svc, Payments: svc, Shipping: svc}, SagaConfig{},
		func(opts ...saga.Option) (*saga.Orchestrator, error) {
			return saga.NewOrchestrator(&saga.MemoryLog{}, opts...)
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Orchestrator().Close(context.Background()) })
	bus := cqrs.NewBus()
	if err := bus.Use(cqrs.Validation()); err != nil {
		t.Fatal(err)
	}
	if err := o.Register(bus); err != nil {
		t.Fatal(err)
	}
	many := make([]LineInput, domain.MaxLines+1)
	for i := range many {
		many[i] = LineInput{SKU: "A", Qty: 1}
	}
	for name, lines := range map[string][]LineInput{
		"too many lines": many,
		"negative qty":   {{SKU: "A", Qty: -1}},
		"zero qty":       {{SKU: "A", Qty: 0}},
		"qty too large":  {{SKU: "A", Qty: domain.MaxQty + 1}},
		"no sku":         {{SKU: "", Qty: 1}},
	} {
		err := bus.Dispatch(context.Background(), NewPlaceOrder("k-"+name, "ada", lines))
		if k, _ := hexagonal.DomainKind(err); k != hexagonal.KindInvalid {
			t.Errorf("%s: %v, want an invalid order", name, err)
		}
	}
	if svc.priced != 0 {
		t.Errorf("the catalogue was asked %d prices for orders refused for their lines", svc.priced)
	}
}
