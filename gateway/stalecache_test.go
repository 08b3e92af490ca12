package gateway_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/gateway"
)

// A request with Cache-Control: no-store asks every cache on the way not
// to store any part of its response (RFC 9111, 5.2.1.5): the stale cache,
// a shared one, does not keep it, nor serve it later to other clients.
func TestStaleCacheRequestNoStore(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "report")
	})
	c, err := cache.New[gateway.CachedResponse](cache.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, srv := single(t, b, gateway.Route{Pattern: "GET /", Fallback: &gateway.Fallback{Cache: c}})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/report", nil)
	req.Header.Set("Cache-Control", "no-store")
	if resp, _ := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
		t.Fatalf("upstream up: %d", resp.StatusCode)
	}
	b.Close()
	resp, body := get(t, srv, "/report")
	if resp.StatusCode == http.StatusOK || resp.Header.Get(gateway.FallbackHeader) != "" {
		t.Errorf("upstream down: %d %q %s=%q; the response to a no-store request was kept and served",
			resp.StatusCode, body, gateway.FallbackHeader, resp.Header.Get(gateway.FallbackHeader))
	}
}

// A public response that varies on Cookie or Authorization is kept with
// digests of the request's values of them, not the session cookie or
// bearer token in the clear (in an L2 such as Redis too); TestStaleCacheVary
// checks that it is served to requests with the same values only.
func TestStaleCacheKeepsNoCredentials(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Vary", "Cookie, Authorization")
		fmt.Fprint(w, "page")
	})
	c, err := cache.New[gateway.CachedResponse](cache.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, srv := single(t, b, gateway.Route{Pattern: "GET /", Fallback: &gateway.Fallback{Cache: c}})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/page", nil)
	req.Header.Set("Cookie", "session=s3cr3t-session")
	req.Header.Set("Authorization", "Bearer s3cr3t-token")
	if resp, _ := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
		t.Fatalf("upstream up: %d", resp.StatusCode)
	}
	var cr gateway.CachedResponse
	ok := false
	for i := 0; i < 100 && !ok; i++ { // the store follows the body's end
		cr, err = c.Get(t.Context(), req.URL.Host+"/page")
		ok = err == nil
		if !ok {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatalf("response not kept: %v", err)
	}
	for name, vs := range cr.Vary {
		for _, v := range vs {
			if v == "session=s3cr3t-session" || v == "Bearer s3cr3t-token" {
				t.Errorf("cache entry holds the request's %s in the clear: %q", name, v)
			}
		}
	}
}
