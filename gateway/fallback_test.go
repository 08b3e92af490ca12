package gateway_test

import (
	"fmt"
	"net/http"
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
