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

// A call through Transport reaches the target with the target's own
// host as its Host header, as a proxied request does (Upstream.PassHost
// unset): it went with the upstream's name, which http.NewRequest took
// from the URL, and a virtual-hosted target got "Host: orders".
func TestTransportSendsTargetHost(t *testing.T) {
	b := newBackend(t, "orders")
	g, _ := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: []gateway.Target{b.target()}}))
	client := &http.Client{Transport: g.Transport()}
	req, err := http.NewRequest(http.MethodGet, "http://orders/orders/42", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, client, req)
	want := strings.TrimPrefix(b.URL, "http://")
	if s := echo(t, body); resp.StatusCode != http.StatusOK || s.Host != want {
		t.Fatalf("the target got Host %q (status %d); want the target's own host %q", s.Host, resp.StatusCode, want)
	}
}

// g.Proxy and g.Transport go to g's upstreams even when another gateway
// serves the request: they took the table of the serving gateway, so a
// route of front calling back.Proxy("orders") got front's "orders", or
// 503 when front had none.
func TestProxyOfAnotherGatewayUsesItsOwnTable(t *testing.T) {
	orders := newBackend(t, "orders")
	back, _ := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: []gateway.Target{orders.target()}}))
	client := &http.Client{Transport: back.Transport()}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/call" {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://orders/x", nil)
			resp, err := client.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			return
		}
		back.Proxy("orders").ServeHTTP(w, r)
	})
	other := newBackend(t, "other")
	_, front := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "other", Targets: []gateway.Target{other.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Handler: h}))
	if resp, body := get(t, front, "/orders/1"); resp.StatusCode != http.StatusOK || orders.hits.Load() != 1 {
		t.Errorf("back.Proxy(\"orders\") in a route of another gateway: %d %q; want back's orders upstream", resp.StatusCode, body)
	}
	if resp, body := get(t, front, "/call"); resp.StatusCode != http.StatusOK {
		t.Errorf("back.Transport() with the context of another gateway's request: %d %q; want back's orders upstream", resp.StatusCode, body)
	}
}

// Proxy's handler answers a request without a URL (one a handler made
// itself) with a 500, as Transport refuses it with an error: it
// panicked.
func TestProxyWithoutURLAnswers(t *testing.T) {
	b := newBackend(t, "b")
	g, _ := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}))
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.URL = nil
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.Fatalf("Proxy(...).ServeHTTP of a request without a URL panicked: %v; want a 5xx answer", v)
			}
		}()
		g.Proxy("u").ServeHTTP(rec, r)
	}()
	if rec.Code < 500 {
		t.Errorf("status %d; want a 5xx", rec.Code)
	}
}
