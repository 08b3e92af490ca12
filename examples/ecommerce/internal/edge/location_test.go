package edge

import "testing"

// TestLocationAfterContinue places an order with Expect: 100-continue,
// as curl does for larger bodies: the orders service's 100 Continue,
// which the gateway passes on, must not stop the final answer's
// Location from being mapped to the gateway's path.
func TestLocationAfterContinue(t *testing.T) {
	r := startEdge(t, newServices(t), nil)
	res := r.do(t, "POST", "/api/orders", r.token(t, "web-app"), order,
		"Idempotency-Key", "k-continue", "Expect", "100-continue")
	if res.status != 202 {
		t.Fatalf("POST = %v; want 202", res)
	}
	if loc := res.header.Get("Location"); loc != "/api/orders/o-1" {
		t.Errorf("Location = %q; want /api/orders/o-1", loc)
	}
}
