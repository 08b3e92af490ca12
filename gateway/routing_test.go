package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

// TestRoutingPrecedence checks that routes follow ServeMux's precedence:
// the most specific pattern wins, methods and hosts included.
func TestRoutingPrecedence(t *testing.T) {
	names := []string{"wild", "exact", "get", "host", "prefix"}
	var ups []gateway.Upstream
	for _, n := range names {
		ups = append(ups, gateway.Upstream{Name: n, Targets: []gateway.Target{newBackend(t, n).target()}})
	}
	_, srv := start(t, gateway.WithUpstreams(ups...), gateway.WithRoutes(
		gateway.Route{Pattern: "/a/{x}", Upstream: "wild"},
		gateway.Route{Pattern: "/a/b", Upstream: "exact"},
		gateway.Route{Pattern: "GET /a/b", Upstream: "get"},
		gateway.Route{Pattern: "api.example.com/a/b", Upstream: "host"},
		gateway.Route{Pattern: "/static/", Upstream: "prefix"},
	))
	tests := []struct {
		method, host, path string
		want               string
	}{
		{"GET", "", "/a/z", "wild"},
		{"POST", "", "/a/b", "exact"},
		{"GET", "", "/a/b", "get"},
		{"HEAD", "", "/a/b", "get"},
		{"GET", "api.example.com", "/a/b", "host"},
		{"GET", "", "/static/css/site.css", "prefix"},
		{"GET", "", "/nothing", ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		if tt.host != "" {
			req.Host = tt.host
		}
		resp, _ := do(t, srv.Client(), req)
		if got := resp.Header.Get("X-Backend"); got != tt.want {
			t.Errorf("%s %s%s went to %q (status %d); want %q", tt.method, tt.host, tt.path, got, resp.StatusCode, tt.want)
		}
	}
}

// TestRoutingMatchers checks header and query matchers among routes of
// one pattern: more matchers first, exact, regexp and presence, and 404
// when none matches.
func TestRoutingMatchers(t *testing.T) {
	var ups []gateway.Upstream
	for _, n := range []string{"v1", "v2", "beta", "canary", "any"} {
		ups = append(ups, gateway.Upstream{Name: n, Targets: []gateway.Target{newBackend(t, n).target()}})
	}
	_, srv := start(t, gateway.WithUpstreams(ups...), gateway.WithRoutes(
		gateway.Route{Pattern: "/orders", Upstream: "v1"},
		gateway.Route{Pattern: "/orders", Upstream: "v2", Headers: []gateway.Match{{Name: "x-api-version", Value: "2"}}},
		gateway.Route{Pattern: "/orders", Upstream: "beta", Headers: []gateway.Match{{Name: "X-Api-Version", Value: "2"}},
			Query: []gateway.Match{{Name: "beta", Regexp: "1|true"}}},
		gateway.Route{Pattern: "/orders", Upstream: "canary", Headers: []gateway.Match{{Name: "X-Canary"}}},
		gateway.Route{Pattern: "/items", Upstream: "any", Query: []gateway.Match{{Name: "id", Regexp: "[0-9]+"}}},
	))
	tests := []struct {
		path   string
		header http.Header
		want   string
		status int
	}{
		{"/orders", nil, "v1", 200},
		{"/orders", http.Header{"X-Api-Version": {"2"}}, "v2", 200},
		{"/orders", http.Header{"X-Api-Version": {"3", "2"}}, "v2", 200},
		{"/orders?beta=true", http.Header{"X-Api-Version": {"2"}}, "beta", 200},
		{"/orders?beta=truex", http.Header{"X-Api-Version": {"2"}}, "v2", 200}, // regexps match whole values
		{"/orders?beta=1", nil, "v1", 200},
		{"/orders", http.Header{"X-Canary": {""}}, "canary", 200},
		{"/items?id=42", nil, "any", 200},
		{"/items?id=4x2", nil, "", 404}, // the pattern matches, no route does
		{"/items", nil, "", 404},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
		for k, v := range tt.header {
			req.Header[k] = v
		}
		resp, _ := do(t, srv.Client(), req)
		if got := resp.Header.Get("X-Backend"); got != tt.want || resp.StatusCode != tt.status {
			t.Errorf("GET %s %v went to %q with %d; want %q with %d", tt.path, tt.header, got, resp.StatusCode, tt.want, tt.status)
		}
	}
}

// TestRewritePaths checks StripPrefix, Rewrite templates with single and
// rest wildcards (escaping kept), and target URL paths.
func TestRewritePaths(t *testing.T) {
	b := newBackend(t, "b")
	_, srv := start(t,
		gateway.WithUpstreams(
			gateway.Upstream{Name: "b", Targets: []gateway.Target{b.target()}},
			gateway.Upstream{Name: "based", Targets: []gateway.Target{{URL: b.URL + "/base/"}}}),
		gateway.WithRoutes(
			gateway.Route{Pattern: "/api/", Upstream: "b", StripPrefix: "/api"},
			gateway.Route{Pattern: "/apix/", Upstream: "b", StripPrefix: "/api"},
			gateway.Route{Pattern: "/v1/orders/{id}", Upstream: "b", Rewrite: "/orders/{id}/v1"},
			gateway.Route{Pattern: "/files/{path...}", Upstream: "b", Rewrite: "/storage/{path}"},
			gateway.Route{Pattern: "/b/", Upstream: "based", StripPrefix: "/b"},
		))
	tests := []struct {
		path, wantPath, wantRaw, wantQuery string
	}{
		{"/api/orders?x=1", "/orders", "", "x=1"},
		{"/api/", "/", "", ""},
		{"/apix/y", "/apix/y", "", ""}, // /api is not a whole segment of /apix
		{"/v1/orders/42", "/orders/42/v1", "", ""},
		{"/v1/orders/a%2Fb?q=%20", "/orders/a/b/v1", "/orders/a%2Fb/v1", "q=%20"},
		{"/files/a/b%2Fc/d", "/storage/a/b/c/d", "/storage/a/b%2Fc/d", ""},
		{"/b/x/y", "/base/x/y", "", ""},
	}
	for _, tt := range tests {
		resp, body := get(t, srv, tt.path)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: status %d: %s", tt.path, resp.StatusCode, body)
			continue
		}
		s := echo(t, body)
		if s.Path != tt.wantPath || s.RawPath != tt.wantRaw || s.Query != tt.wantQuery {
			t.Errorf("GET %s arrived as %q (raw %q) ?%q; want %q (raw %q) ?%q",
				tt.path, s.Path, s.RawPath, s.Query, tt.wantPath, tt.wantRaw, tt.wantQuery)
		}
	}
}

// TestHandlerRouteContext checks a pluggable handler route: the gateway's
// context (client address, route, request ID) is there, and middleware
// runs in order, first outermost, with the route already known.
func TestHandlerRouteContext(t *testing.T) {
	var order []string
	var mu sync.Mutex
	mw := func(name string) gateway.Middleware {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				route, _ := gateway.RouteFrom(r.Context())
				mu.Lock()
				order = append(order, name+":"+route)
				mu.Unlock()
				next.ServeHTTP(w, r)
			})
		}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, ok := gateway.ClientIP(r.Context())
		route, _ := gateway.RouteFrom(r.Context())
		fmt.Fprintf(w, "%v %v %s %s %s", ip, ok, route, r.PathValue("id"), r.Header.Get("X-Request-Id"))
	})
	_, srv := start(t, gateway.WithRoutes(gateway.Route{
		Pattern: "GET /local/{id}", Handler: h, Middleware: []gateway.Middleware{mw("outer"), mw("inner")},
	}))
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/local/7", nil)
	req.Header.Set("X-Request-Id", "req-1")
	resp, body := do(t, srv.Client(), req)
	if want := "127.0.0.1 true GET /local/{id} 7 req-1"; body != want {
		t.Errorf("handler said %q; want %q", body, want)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "req-1" {
		t.Errorf("response X-Request-Id = %q; want the request's", got)
	}
	if want := "outer:GET /local/{id} inner:GET /local/{id}"; strings.Join(order, " ") != want {
		t.Errorf("middleware ran %v; want %s", order, want)
	}
}

// TestHotSwapUnderLoad swaps the table 100 times while clients send
// requests, alternating between two upstreams with health checks; no
// request may fail, and every answer comes from one table or the other.
// A table that fails validation in the middle is refused and the live one
// keeps serving. TestMain's goleak check covers the health checks of the
// 100 tables.
func TestHotSwapUnderLoad(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	table := func(name string, bk *backend) []gateway.Option {
		return []gateway.Option{
			gateway.WithUpstreams(gateway.Upstream{Name: name, Targets: []gateway.Target{bk.target()},
				HealthCheck: &gateway.HealthCheck{Path: "/health", Interval: 5 * time.Millisecond}}),
			gateway.WithRoutes(gateway.Route{Pattern: "/x", Upstream: name}),
		}
	}
	g, srv := start(t, table("a", a)...)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg               sync.WaitGroup
		total, failed    atomic.Int64
		fromA, fromB     atomic.Int64
		firstFailureOnce sync.Once
		firstFailure     string
	)
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
				resp, err := srv.Client().Do(req)
				total.Add(1)
				if err != nil {
					failed.Add(1)
					firstFailureOnce.Do(func() { firstFailure = err.Error() })
					continue
				}
				_ = resp.Body.Close()
				switch resp.Header.Get("X-Backend") {
				case "a":
					fromA.Add(1)
				case "b":
					fromB.Add(1)
				default:
					failed.Add(1)
					firstFailureOnce.Do(func() { firstFailure = resp.Status })
				}
			}
		})
	}
	for i := range 100 {
		opts := table("a", a)
		if i%2 == 0 {
			opts = table("b", b)
		}
		if err := g.Update(opts...); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
		if i == 50 {
			bad := gateway.WithRoutes(gateway.Route{Pattern: "/x", Upstream: "missing"})
			if err := g.Update(bad); err == nil {
				t.Errorf("Update with an unknown upstream = nil; want an error")
			}
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during the swaps; first: %s", failed.Load(), total.Load(), firstFailure)
	}
	if fromA.Load() == 0 || fromB.Load() == 0 {
		t.Errorf("answers from a: %d, from b: %d; want both tables to have served", fromA.Load(), fromB.Load())
	}
	// The last table (i = 99) routes to a.
	if resp, _ := get(t, srv, "/x"); resp.Header.Get("X-Backend") != "a" {
		t.Errorf("after the swaps /x went to %q; want a", resp.Header.Get("X-Backend"))
	}
	t.Logf("%d requests during 100 swaps", total.Load())
}

// TestInFlightFinishesOnOldTable checks that a request in flight during a
// swap finishes on the table it started with, even when the new table
// drops its upstream.
func TestInFlightFinishesOnOldTable(t *testing.T) {
	slow := newBackend(t, "slow")
	started := make(chan struct{})
	release := make(chan struct{})
	slow.handle(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Header().Set("X-Backend", "slow")
		fmt.Fprint(w, "done")
	})
	g, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "slow", Targets: []gateway.Target{slow.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/x", Upstream: "slow"}))
	type result struct {
		status  int
		backend string
	}
	done := make(chan result)
	go func() {
		resp, err := srv.Client().Get(srv.URL + "/x")
		if err != nil {
			done <- result{}
			return
		}
		_ = resp.Body.Close()
		done <- result{resp.StatusCode, resp.Header.Get("X-Backend")}
	}()
	<-started
	if err := g.Update(gateway.WithRoutes(gateway.Route{Pattern: "/y", Handler: http.NotFoundHandler()})); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, srv, "/x"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("new request to /x after the swap: %d; want 404", resp.StatusCode)
	}
	close(release)
	if r := <-done; r.status != 200 || r.backend != "slow" {
		t.Errorf("request in flight during the swap: %d from %q; want 200 from slow", r.status, r.backend)
	}
}
