package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/otelpatterns/patterns/gateway"
)

// TestZeroGateway: a Gateway not made by New (the zero value, or a nil
// pointer) answers 500 saying so, instead of a nil dereference.
func TestZeroGateway(t *testing.T) {
	for name, g := range map[string]*gateway.Gateway{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
			if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "not made by New") {
				t.Errorf("ServeHTTP = %d %q; want 500 saying the Gateway was not made by New", rec.Code, rec.Body.String())
			}
		})
	}
}

// TestZeroGatewayMethods: Update and Close of a Gateway not made by New
// are errors; its Proxy and Transport answer 503 / an error, as for an
// unknown upstream.
func TestZeroGatewayMethods(t *testing.T) {
	var g gateway.Gateway
	for name, err := range map[string]error{"Update": g.Update(), "Close": g.Close()} {
		if err == nil || !strings.Contains(err.Error(), "not made by New") {
			t.Errorf("%s() = %v; want an error saying the Gateway was not made by New", name, err)
		}
	}
	rec := httptest.NewRecorder()
	g.Proxy("orders").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if rec.Code < 500 {
		t.Errorf("Proxy(...).ServeHTTP = %d; want a 5xx", rec.Code)
	}
	req := httptest.NewRequest(http.MethodGet, "http://orders/x", nil)
	if resp, err := g.Transport().RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Errorf("Transport().RoundTrip = %d, nil; want an error", resp.StatusCode)
	}
}
