package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// TestStaticFallback checks a static fallback when every breaker is
// open: the static response, marked, counted; and that an upstream's own
// error status is passed on, not replaced.
func TestStaticFallback(t *testing.T) {
	tel := telemetrytest.New(t)
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	_, srv := start(t, gateway.WithMeterProvider(tel.MeterProvider),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
			Breaker: &gateway.Breaker{Options: []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(1)}}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /recommendations", Upstream: "u", Fallback: &gateway.Fallback{
			Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"items":[]}`)}}))
	resp, body := get(t, srv, "/recommendations")
	if resp.StatusCode != 500 || body != "boom\n" || resp.Header.Get(gateway.FallbackHeader) != "" {
		t.Errorf("upstream's own 500: %d %q %v; want it passed on", resp.StatusCode, body, resp.Header)
	}
	resp, body = get(t, srv, "/recommendations")
	if resp.StatusCode != 200 || body != `{"items":[]}` || resp.Header.Get(gateway.FallbackHeader) != "unavailable" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("breaker open: %d %q %v; want the static fallback marked unavailable", resp.StatusCode, body, resp.Header)
	}
	if n := tel.Int64(t, "gateway.fallbacks", attrRoute("/recommendations"),
		gateway.AttrFallbackReason.String("unavailable"), gateway.AttrFallbackSource.String("static")); n != 1 {
		t.Errorf("gateway.fallbacks = %d; want 1", n)
	}
}

// TestHandlerFallbackOnTimeout checks a handler fallback for a route
// whose time ran out: the handler gets the request with the deadline
// lifted.
func TestHandlerFallbackOnTimeout(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	fb := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "fallback for %s, context %v", r.URL.Path, r.Context().Err())
	})
	_, srv := single(t, b, gateway.Route{Pattern: "/slow", Timeout: 30 * time.Millisecond, Fallback: &gateway.Fallback{Handler: fb}})
	resp, body := get(t, srv, "/slow")
	if resp.StatusCode != 200 || body != "fallback for /slow, context <nil>" || resp.Header.Get(gateway.FallbackHeader) != "timeout" {
		t.Errorf("timed out: %d %q %v; want the handler's answer, marked timeout", resp.StatusCode, body, resp.Header)
	}
}

// TestStaleCacheFallback checks that a route's successful GET responses
// are kept and served, with Age and without Set-Cookie, when the upstream
// later fails; a request the cache does not know gets the gateway's
// error.
func TestStaleCacheFallback(t *testing.T) {
	tel := telemetrytest.New(t)
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=secret")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "catalogue %s", r.URL.Query().Get("page"))
	})
	c, err := cache.New[gateway.CachedResponse](cache.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, srv := start(t, gateway.WithMeterProvider(tel.MeterProvider),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /catalogue", Upstream: "u", Fallback: &gateway.Fallback{Cache: c}}))
	if resp, body := get(t, srv, "/catalogue?page=1"); resp.StatusCode != 200 || body != "catalogue 1" {
		t.Fatalf("upstream up: %d %q", resp.StatusCode, body)
	}
	b.Close() // down: 502
	resp, body := get(t, srv, "/catalogue?page=1")
	if resp.StatusCode != 200 || body != "catalogue 1" || resp.Header.Get(gateway.FallbackHeader) != "failure" ||
		resp.Header.Get("Age") == "" || resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("upstream down: %d %q %v; want the stale response, marked failure, with Age, without Set-Cookie", resp.StatusCode, body, resp.Header)
	}
	if resp, _ := get(t, srv, "/catalogue?page=2"); resp.StatusCode != 502 || resp.Header.Get(gateway.FallbackHeader) != "" {
		t.Errorf("upstream down, page never cached: %d %v; want the gateway's 502", resp.StatusCode, resp.Header)
	}
	if n := tel.Int64(t, "gateway.fallbacks", attrRoute("/catalogue"),
		gateway.AttrFallbackReason.String("failure"), gateway.AttrFallbackSource.String("cache")); n != 1 {
		t.Errorf("gateway.fallbacks = %d; want 1", n)
	}
}

// TestStaleCacheVary: the stale response was kept under a key of host
// and path alone, whatever its Vary header said, and served to any
// request: a response that varies on X-Tenant went to another tenant,
// and one to a request with a session cookie to another session. It is
// served only to requests with the same values of the headers it
// varies on, never kept with Vary: *, and a request with a Cookie counts
// as made on someone's behalf.
func TestStaleCacheVary(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/tenant":
			w.Header().Set("Vary", "Accept-Encoding, X-Tenant")
			fmt.Fprintf(w, "catalogue of %s", r.Header.Get("X-Tenant"))
		case "/any":
			w.Header().Set("Vary", "*")
			fmt.Fprint(w, "varies on everything")
		case "/account":
			c, _ := r.Cookie("session")
			fmt.Fprintf(w, "account of %s", c.Value)
		}
	})
	c, err := cache.New[gateway.CachedResponse](cache.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, srv := single(t, b, gateway.Route{Pattern: "GET /", Fallback: &gateway.Fallback{Cache: c}})
	send := func(path, header, value string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if header != "" {
			req.Header.Set(header, value)
		}
		return do(t, srv.Client(), req)
	}
	for _, r := range []struct{ path, header, value string }{
		{"/tenant", "X-Tenant", "acme"}, {"/any", "", ""}, {"/account", "Cookie", "session=alice"},
	} {
		if resp, _ := send(r.path, r.header, r.value); resp.StatusCode != http.StatusOK {
			t.Fatalf("upstream up, %s: status %d", r.path, resp.StatusCode)
		}
	}
	b.Close()
	for _, r := range []struct {
		path, header, value string
		want                string // the stale body, or "" for the gateway's 502
	}{
		{"/tenant", "X-Tenant", "acme", "catalogue of acme"},
		{"/tenant", "X-Tenant", "globex", ""},
		{"/tenant", "", "", ""},
		{"/any", "", "", ""},
		{"/account", "Cookie", "session=bob", ""},
	} {
		resp, body := send(r.path, r.header, r.value)
		switch {
		case r.want != "" && (resp.StatusCode != http.StatusOK || body != r.want):
			t.Errorf("upstream down, %s with %s %q: %d %q; want the stale %q", r.path, r.header, r.value, resp.StatusCode, body, r.want)
		case r.want == "" && resp.StatusCode != http.StatusBadGateway:
			t.Errorf("upstream down, %s with %s %q: %d %q; want the gateway's 502", r.path, r.header, r.value, resp.StatusCode, body)
		}
	}
}

// TestStaleCacheBadEntry: an entry of a cache shared with other programs
// with a status net/http panics on (0, say: "{}" in an L2) made the
// fallback panic, which dropped the client's connection. It is a miss.
func TestStaleCacheBadEntry(t *testing.T) {
	b := newBackend(t, "b")
	c, err := cache.New[gateway.CachedResponse](cache.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, srv := single(t, b, gateway.Route{Pattern: "GET /", Fallback: &gateway.Fallback{Cache: c}})
	b.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if err := c.Set(t.Context(), host+"/items", gateway.CachedResponse{Body: []byte("no status")}); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, srv, "/items"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("upstream down, an entry without a status: %d %q; want the gateway's 502", resp.StatusCode, body)
	}
}

// TestFallbackNotForUnsafeRequests: a POST that reached the upstream
// and timed out was answered with the static fallback's 200, telling
// the client nothing was done, or done, when the upstream may have done
// it. It gets the gateway's 504; with an Idempotency-Key, or when no
// target could take it at all, the fallback.
func TestFallbackNotForUnsafeRequests(t *testing.T) {
	b := newBackend(t, "b")
	release := make(chan struct{})
	defer close(release)
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	_, srv := single(t, b, gateway.Route{Pattern: "/orders", Timeout: 50 * time.Millisecond,
		Fallback: &gateway.Fallback{Body: []byte(`{"queued":true}`)}})
	post := func(key string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/orders", strings.NewReader(`{"item":42}`))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, _ := do(t, srv.Client(), req)
		return resp
	}
	if resp := post(""); resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get(gateway.FallbackHeader) != "" {
		t.Errorf("POST timed out: %d, %s %q; want the gateway's 504, no fallback", resp.StatusCode, gateway.FallbackHeader, resp.Header.Get(gateway.FallbackHeader))
	}
	if resp := post("order-42"); resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.FallbackHeader) != "timeout" {
		t.Errorf("POST with an Idempotency-Key timed out: %d, %s %q; want the fallback", resp.StatusCode, gateway.FallbackHeader, resp.Header.Get(gateway.FallbackHeader))
	}
	if resp, _ := get(t, srv, "/orders"); resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.FallbackHeader) != "timeout" {
		t.Errorf("GET timed out: %d, %s %q; want the fallback", resp.StatusCode, gateway.FallbackHeader, resp.Header.Get(gateway.FallbackHeader))
	}
}
