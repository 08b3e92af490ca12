package gateway_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

// TestProxy checks that a route handler can proxy to upstreams it
// chooses per request, with the forwarding headers and request ID a
// proxied route gets, and that an upstream gone after Update gets 503.
func TestProxy(t *testing.T) {
	legacy, next := newBackend(t, "legacy"), newBackend(t, "next")
	var g *gateway.Gateway
	split := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "legacy"
		if r.Header.Get("X-Beta") != "" {
			name = "next"
		}
		g.Proxy(name).ServeHTTP(w, r)
	})
	ups := []gateway.Upstream{
		{Name: "legacy", Targets: []gateway.Target{legacy.target()}},
		{Name: "next", Targets: []gateway.Target{next.target()}},
	}
	routes := gateway.WithRoutes(gateway.Route{Pattern: "/orders/", Handler: split})
	g, srv := start(t, gateway.WithUpstreams(ups...), routes)

	_, body := get(t, srv, "/orders/7?x=1")
	s := echo(t, body)
	if s.Backend != "legacy" || s.Path != "/orders/7" || s.Query != "x=1" {
		t.Fatalf("without X-Beta: got %+v, want legacy /orders/7?x=1", s)
	}
	if s.Header.Get("X-Forwarded-For") == "" || s.Header.Get("X-Request-Id") == "" {
		t.Errorf("forwarding headers missing: %v", s.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/orders/7", nil)
	req.Header.Set("X-Beta", "1")
	if _, body := do(t, srv.Client(), req); echo(t, body).Backend != "next" {
		t.Fatalf("with X-Beta: got %q, want the next backend", body)
	}

	if err := g.Update(gateway.WithUpstreams(ups[0]), routes); err != nil {
		t.Fatal(err)
	}
	resp, _ := do(t, srv.Client(), req)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upstream removed: status %d, want 503", resp.StatusCode)
	}
}

// TestTransport checks calls to upstreams by name, and that the caller's
// request is left as it was.
func TestTransport(t *testing.T) {
	orders := newBackend(t, "orders")
	g, _ := start(t, gateway.WithUpstreams(gateway.Upstream{
		Name: "orders", Targets: []gateway.Target{{URL: orders.URL + "/v2"}},
		Retry: &gateway.Retry{},
	}))
	client := &http.Client{Transport: g.Transport()}

	req, _ := http.NewRequest(http.MethodPost, "http://orders/orders?id=1", strings.NewReader("hello"))
	resp, body := do(t, client, req)
	s := echo(t, body)
	if resp.StatusCode != http.StatusOK || s.Path != "/v2/orders" || s.Query != "id=1" || s.Body != "hello" {
		t.Fatalf("got %d %+v, want 200 POST /v2/orders?id=1 hello", resp.StatusCode, s)
	}
	if req.URL.Host != "orders" || req.URL.Scheme != "http" {
		t.Errorf("the caller's URL was changed: %v", req.URL)
	}

	req, _ = http.NewRequest(http.MethodPut, "http://missing/x", io.NopCloser(strings.NewReader("x")))
	if _, err := client.Do(req); !errors.Is(err, gateway.ErrUnknownUpstream) || !strings.Contains(err.Error(), `"missing"`) {
		t.Fatalf("unknown upstream: err = %v", err)
	}
}

// TestDroppedHeaders checks that the dropped headers never reach an
// upstream, on any route, whoever the peer.
func TestDroppedHeaders(t *testing.T) {
	b := newBackend(t, "b")
	_, srv := start(t, gateway.WithDroppedHeaders("x-user-id"),
		gateway.WithTrustedProxies("127.0.0.0/8"),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/public", nil)
	req.Header.Set("X-User-Id", "admin")
	req.Header.Set("X-Other", "kept")
	_, body := do(t, srv.Client(), req)
	if s := echo(t, body); s.Header.Get("X-User-Id") != "" || s.Header.Get("X-Other") != "kept" {
		t.Errorf("upstream got X-User-Id %q, X-Other %q; want none and kept", s.Header.Get("X-User-Id"), s.Header.Get("X-Other"))
	}
}

// TestProxyToAndUpstreamTransport checks the handlers built before the
// gateway: they reach the upstreams of the gateway serving the request.
func TestProxyToAndUpstreamTransport(t *testing.T) {
	orders := newBackend(t, "orders")
	client := &http.Client{Transport: gateway.UpstreamTransport()}
	both := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://orders/direct", nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var s seen
		_ = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		w.Header().Set("X-Direct", resp.Header.Get("X-Backend"))
		w.Header().Set("X-Direct-Request-Id", s.Header.Get("X-Request-Id"))
		gateway.ProxyTo("orders").ServeHTTP(w, r)
	})
	_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: []gateway.Target{orders.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/orders/", Handler: both}))
	resp, body := get(t, srv, "/orders/1")
	if s := echo(t, body); s.Backend != "orders" || s.Path != "/orders/1" || resp.Header.Get("X-Direct") != "orders" {
		t.Fatalf("got %+v, X-Direct %q; want the orders backend both ways", s, resp.Header.Get("X-Direct"))
	}
	if id := resp.Header.Get("X-Request-Id"); id == "" || resp.Header.Get("X-Direct-Request-Id") != id {
		t.Errorf("the call made for the request carried request ID %q; want the request's %q", resp.Header.Get("X-Direct-Request-Id"), id)
	}

	// Outside a gateway, neither has a table to use.
	rec := httptest.NewRecorder()
	gateway.ProxyTo("orders").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/orders/1", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("ProxyTo outside a gateway: %d; want 503", rec.Code)
	}
	if _, err := client.Get("http://orders/direct"); err == nil || !strings.Contains(err.Error(), "not that of a request the gateway serves") {
		t.Errorf("UpstreamTransport outside a gateway: err = %v", err)
	}
}

// closeCount is a request body that counts its Close calls.
type closeCount struct {
	io.Reader
	closed int
}

func (b *closeCount) Close() error { b.closed++; return nil }

// TestTransportClosesBody: a RoundTripper closes the request body it is
// given, whatever becomes of the request; Transport left it open when it
// held the body for retries, when the body could not be read, and when
// no target could take the request.
func TestTransportClosesBody(t *testing.T) {
	b := newBackend(t, "b")
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	g, _ := start(t, gateway.WithUpstreams(
		gateway.Upstream{Name: "retried", Targets: []gateway.Target{b.target()}, Retry: &gateway.Retry{}},
		gateway.Upstream{Name: "once", Targets: []gateway.Target{b.target()}},
		// Ejected after its first failure, with nothing to put it back
		// before the test ends.
		gateway.Upstream{Name: "ejected", Targets: []gateway.Target{{URL: dead.URL}},
			Outlier: &gateway.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour}}))
	send := func(upstream string, body io.Reader) (*closeCount, error) {
		t.Helper()
		cb := &closeCount{Reader: body}
		req, err := http.NewRequest(http.MethodPut, "http://"+upstream+"/x", cb)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := g.Transport().RoundTrip(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		return cb, err
	}
	for _, c := range []struct {
		name, upstream string
		body           io.Reader
		wantErr        bool
	}{
		{"held for retries", "retried", strings.NewReader("order"), false},
		{"sent once", "once", strings.NewReader("order"), false},
		{"unreadable, held for retries", "retried", iotest.ErrReader(errors.New("client went away")), true},
		{"no target left", "ejected", strings.NewReader("order"), true},
	} {
		if c.upstream == "ejected" {
			_, _ = send("ejected", strings.NewReader("first")) // ejects the target
		}
		cb, err := send(c.upstream, c.body)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: RoundTrip() error = %v; want an error: %v", c.name, err, c.wantErr)
		}
		if cb.closed == 0 {
			t.Errorf("%s: the request body was not closed", c.name)
		}
	}
}
