package gateway_test

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/retry"
)

// TestRetryAfterInPlaceFirstAttempt: a request without a body whose first
// attempt (sent as it is, its URL set in place) fails is retried on the
// other target with that target's scheme, host and path, the rewritten
// path and the query, each forwarding header once, and neither attempt
// carries the Authorization that a middleware removed; the request the
// route was given is not changed. The middleware that removes it is one
// that clones the request, and auth's, which copies it shallowly (the
// token cache on, a claim header forged by the client).
func TestRetryAfterInPlaceFirstAttempt(t *testing.T) {
	secret := []byte("retry test HS256 secret, 32 bytes")
	a, err := auth.New(auth.WithKeys(auth.Key{ID: "k", Algorithm: "HS256", Key: secret}),
		auth.WithClaimHeaders(map[string]string{"sub": "X-User-Id"}))
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k"
	token, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	strip := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			out := r.Clone(r.Context())
			out.Header.Del("Authorization")
			out.Header.Set("X-User-Id", "alice")
			next.ServeHTTP(w, out)
		})
	}
	for _, c := range []struct {
		name string
		mw   gateway.Middleware
	}{{"clone", strip}, {"auth", a.Middleware()}} {
		t.Run(c.name, func(t *testing.T) { testRetryAfterInPlace(t, c.mw, "Bearer "+token) })
	}
}

func testRetryAfterInPlace(t *testing.T, strip gateway.Middleware, authz string) {
	type seen struct {
		uri, host string
		xff, fwd  []string
		auth      string
		user      []string
	}
	var (
		mu    sync.Mutex
		got   []seen
		first atomic.Bool
	)
	rec := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.RequestURI, r.Host, r.Header.Values("X-Forwarded-For"), r.Header.Values("Forwarded"),
			r.Header.Get("Authorization"), r.Header.Values("X-User-Id")})
		mu.Unlock()
		if first.CompareAndSwap(true, false) {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}
	ba, bb := newBackend(t, "a"), newBackend(t, "b")
	ba.handle(rec)
	bb.handle(rec)
	var bad atomic.Value
	check := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			before := *r.URL
			next.ServeHTTP(w, r)
			if *r.URL != before {
				bad.Store("the route's request URL changed: " + r.URL.String() + " from " + before.String())
			}
			if r.Header.Get("Authorization") != authz || strings.Join(r.Header.Values("X-User-Id"), ",") != "forged" {
				bad.Store("the route's request headers changed: " + strings.Join(r.Header.Values("X-User-Id"), ","))
			}
		})
	}
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u",
			Targets: []gateway.Target{{URL: ba.URL}, {URL: bb.URL + "/base"}},
			Retry:   &gateway.Retry{Attempts: 3, Backoff: retry.Constant(0)}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /api/{rest...}", Upstream: "u", Rewrite: "/v2/{rest...}",
			Middleware: []gateway.Middleware{check, strip}}))
	send := func() *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/x%2Fy/z?q=1&r=a%20b", nil)
		req.Header.Set("Authorization", authz)
		req.Header.Set("X-User-Id", "forged")
		resp, body := do(t, srv.Client(), req)
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		return resp
	}
	firsts := map[string]bool{}
	for i := range 4 {
		mu.Lock()
		got = nil
		mu.Unlock()
		first.Store(true)
		send()
		mu.Lock()
		if len(got) != 2 {
			t.Fatalf("request %d: %d attempts; want 2", i, len(got))
		}
		for j, s := range got {
			wantPrefix := ""
			if s.host == strings.TrimPrefix(bb.URL, "http://") {
				wantPrefix = "/base"
			}
			if s.uri != wantPrefix+"/v2/x%2Fy/z?q=1&r=a%20b" {
				t.Errorf("request %d attempt %d: upstream %s got %q", i, j+1, s.host, s.uri)
			}
			if len(s.xff) != 1 || strings.Contains(s.xff[0], ",") || len(s.fwd) != 1 || strings.Contains(s.fwd[0], ",") {
				t.Errorf("request %d attempt %d: X-Forwarded-For %q, Forwarded %q; want one hop each", i, j+1, s.xff, s.fwd)
			}
			if s.auth != "" || len(s.user) != 1 || s.user[0] != "alice" {
				t.Errorf("request %d attempt %d: Authorization %q, X-User-Id %q; want none and [alice]", i, j+1, s.auth, s.user)
			}
		}
		if got[0].host == got[1].host {
			t.Errorf("request %d: retried on the same target %s", i, got[0].host)
		}
		firsts[got[0].host] = true
		mu.Unlock()
		// A request that is not retried moves the round robin on, so
		// that each target is tried first in turn.
		send()
	}
	if len(firsts) != 2 {
		t.Errorf("the first attempts went to %v; want both targets", firsts)
	}
	if v := bad.Load(); v != nil {
		t.Error(v)
	}
}
