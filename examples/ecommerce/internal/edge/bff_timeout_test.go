package edge

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// TestBFFRetryIsNotCutShortByTheGateway: the BFF's first call to the
// orders service hangs, is abandoned after its per-try timeout and
// retried, and the retry answers, well within the BFF's own time. The
// gateway, which does not retry the BFF, must wait for that answer
// rather than give up on its single attempt after a per-try timeout of
// its own, the same length as the BFF's.
func TestBFFRetryIsNotCutShortByTheGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a per-try timeout")
	}
	svcs := newServices(t)
	target, _ := url.Parse(svcs.orders.srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var calls atomic.Int32
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && calls.Add(1) == 1 {
			select { // the first order read hangs
			case <-r.Context().Done():
			case <-time.After(2 * perTryTimeout):
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(hang.Close)
	r := startEdge(t, svcs, func(c *Config) { c.OrdersURL = hang.URL })

	res := r.do(t, "GET", "/mobile/orders/o-1", r.token(t, "mobile-app"), "")
	if res.status != http.StatusOK {
		t.Fatalf("GET /mobile/orders/o-1 = %v; want 200 from the BFF's retry", res)
	}
	if n := calls.Load(); n < 2 {
		t.Errorf("the orders service got %d calls; want the retry", n)
	}
}
