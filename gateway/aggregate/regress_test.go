package aggregate_test

import (
	"net/http"
	"testing"

	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// TestEmptyFieldNotEmptySegment checks that an empty value from an
// earlier answer does not turn /customers/{order.customer_id} into
// /customers/, which is another resource (often the list of all).
func TestEmptyFieldNotEmptySegment(t *testing.T) {
	orders := newUpstream(t, "orders", jsonAnswer(map[string]any{"customer_id": ""}))
	customers := newUpstream(t, "customers", jsonAnswer([]any{"every", "customer"}))
	parts := []aggregate.Part{
		{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
		{Name: "customer", Upstream: "customers", Path: "/customers/{order.customer_id}"},
	}
	st := start(t, []*upstream{orders, customers}, "GET /orders/{id}", parts, nil)
	resp, doc := st.get(t, "/orders/7")
	if resp.StatusCode != http.StatusBadGateway || field(doc, "_failed.customer.error") != `"request"` {
		t.Errorf("empty customer_id: %d %v; want 502 with reason request", resp.StatusCode, doc)
	}
	if n := customers.hits.Load(); n != 0 {
		t.Errorf("customers called %d times with an empty path segment", n)
	}
}
