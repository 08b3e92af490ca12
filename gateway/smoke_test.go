package gateway_test

import (
	"net/http"
	"testing"

	"github.com/otelpatterns/patterns/gateway"
)

func TestSmoke(t *testing.T) {
	a := newBackend(t, "a")
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "a", Targets: []gateway.Target{a.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /orders/{id}", Upstream: "a", Rewrite: "/v2/orders/{id}"}),
	)
	resp, body := get(t, srv, "/orders/42?x=1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	s := echo(t, body)
	if s.Path != "/v2/orders/42" || s.Query != "x=1" {
		t.Errorf("upstream saw %s?%s", s.Path, s.Query)
	}
	t.Logf("%+v %v", s, resp.Header)
}
