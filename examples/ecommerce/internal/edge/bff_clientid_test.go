package edge

import "testing"

// TestBFFPassesTheClientIDOn: the services learn the caller's client ID
// (ClientIDHeader, from the token) on the BFF routes too, as on the
// gateway's own, and one client's forged header reaches none of them.
func TestBFFPassesTheClientIDOn(t *testing.T) {
	svcs := newServices(t)
	r := startEdge(t, svcs, nil)
	for _, tc := range []struct{ path, client string }{
		{"/web/orders/o-1", "web-app"},
		{"/mobile/orders/o-1", "reporting"},
	} {
		res := r.do(t, "GET", tc.path, r.token(t, tc.client), "", ClientIDHeader, "someone-else")
		if res.status != 200 {
			t.Fatalf("GET %s = %v; want 200", tc.path, res)
		}
		for name, s := range map[string]*stub{"orders": svcs.orders, "shipping": svcs.shipping} {
			path := "/orders/o-1"
			if name == "shipping" {
				path = "/shipments/o-1"
			}
			got := s.last(path)
			if got == nil {
				t.Fatalf("GET %s: the %s service got no %s", tc.path, name, path)
			}
			if id := got.Header.Get(ClientIDHeader); id != tc.client {
				t.Errorf("GET %s: %s = %q at the %s service; want %s", tc.path, ClientIDHeader, id, name, tc.client)
			}
		}
	}
}
