package gateway_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// uriBackend is a backend that answers with the request target exactly as
// it arrived on the wire.
func uriBackend(t *testing.T) *backend {
	b := newBackend(t, "uri")
	b.handle(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.RequestURI)) })
	return b
}

func hasDotSegment(uri string) bool {
	path, _, _ := strings.Cut(uri, "?")
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// TestRewriteEncodedDotSegment: a single wildcard whose value is an
// encoded dot segment ("%2E%2E", which ServeMux does not clean) must not
// reach the upstream as a literal "..", which the upstream would resolve,
// sending the request to a path outside the rewrite template
// ("/internal/users/../profile" is "/internal/profile").
func TestRewriteEncodedDotSegment(t *testing.T) {
	b := uriBackend(t)
	_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "b", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(
			gateway.Route{Pattern: "GET /v1/users/{id}/profile", Upstream: "b", Rewrite: "/internal/users/{id}/profile"},
			gateway.Route{Pattern: "GET /v1/files/{rest...}", Upstream: "b", Rewrite: "/public/{rest...}"},
		))
	for _, p := range []string{"/v1/users/%2E%2E/profile", "/v1/users/%2e./profile", "/v1/users/%2E/profile", "/v1/files/a/%2E%2E/%2E%2E/x"} {
		resp, uri := get(t, srv, p)
		if resp.StatusCode != http.StatusOK || hasDotSegment(uri) {
			t.Errorf("GET %s: upstream got %q (status %d); want no literal dot segment", p, uri, resp.StatusCode)
		}
	}
	// Ordinary values are unchanged.
	if _, uri := get(t, srv, "/v1/users/a.b%2Fc/profile"); uri != "/internal/users/a.b%2Fc/profile" {
		t.Errorf("upstream got %q; want /internal/users/a.b%%2Fc/profile", uri)
	}
}

// TestStripPrefixEncodedPrefix: a client that spells the prefix with
// escapes ("/%73/" for "/s/") must not get the rest of its path sent
// unescaped, turning "%2E%2E" into a literal ".." or "%2F" into a slash.
func TestStripPrefixEncodedPrefix(t *testing.T) {
	b := uriBackend(t)
	_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "b", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /s/", Upstream: "b", StripPrefix: "/s"}))
	tests := []struct{ path, want string }{
		{"/s/x", "/x"},
		{"/s/a%2Fb", "/a%2Fb"},
		{"/s/%2E%2E/x", "/%2E%2E/x"},
		{"/%73/%2E%2E/x", "/%2E%2E/x"},
		{"/%73/..%2Fx", "/..%2Fx"},
		{"/%73/a%2Fb", "/a%2Fb"},
	}
	for _, tt := range tests {
		resp, uri := get(t, srv, tt.path)
		if resp.StatusCode != http.StatusOK || uri != tt.want {
			t.Errorf("GET %s: upstream got %q (status %d); want %q", tt.path, uri, resp.StatusCode, tt.want)
		}
	}
}

// TestHostPatternCaseInsensitive: host names are case-insensitive (RFC
// 9110, 4.2.3) and a trailing dot names the same host, but ServeMux
// compares hosts byte for byte: "API.example.com" skipped the route of
// "api.example.com/admin/" (and its middleware, authentication say) for
// a less specific one.
func TestHostPatternCaseInsensitive(t *testing.T) {
	admin, public := newBackend(t, "admin"), newBackend(t, "public")
	deny := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "denied", http.StatusUnauthorized) })
	}
	_, srv := start(t, gateway.WithUpstreams(
		gateway.Upstream{Name: "admin", Targets: []gateway.Target{admin.target()}},
		gateway.Upstream{Name: "public", Targets: []gateway.Target{public.target()}},
	), gateway.WithRoutes(
		gateway.Route{Pattern: "api.example.com/admin/", Upstream: "admin", Middleware: []gateway.Middleware{deny}},
		gateway.Route{Pattern: "/", Upstream: "public"},
	))
	for _, host := range []string{"api.example.com", "API.Example.COM", "api.example.com.", "Api.Example.Com.:80"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/users", nil)
		req.Host = host
		resp, _ := do(t, srv.Client(), req)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Host %q: status %d from %q; want the api.example.com/admin/ route's 401", host, resp.StatusCode, resp.Header.Get("X-Backend"))
		}
	}
}

// TestUpdateDropsHealthCheck: a target that health checks had taken out
// of service kept its state through an Update that removed the
// upstream's HealthCheck, and with no checks left to put it back, it
// stayed out of service for good (every request 503).
func TestUpdateDropsHealthCheck(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("X-Backend", "b")
	})
	routes := gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"})
	checked := gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
		HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: 20 * time.Millisecond, UnhealthyThreshold: 1}}
	g, srv := start(t, gateway.WithUpstreams(checked), routes)
	waitFor(t, srv, "/", 1, "the target is out of service", func(r *http.Response) bool { return r.StatusCode == http.StatusServiceUnavailable })

	unchecked := checked
	unchecked.HealthCheck = nil
	if err := g.Update(gateway.WithUpstreams(unchecked), routes); err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, srv, "/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "b" {
		t.Errorf("after an Update without health checks: status %d; want 200 from the target", resp.StatusCode)
	}
}

// TestStaleCacheSkipsPrivate: a response marked Cache-Control: private is
// for one user alone (RFC 9111, 5.2.2.7: a shared cache must not store
// it), but the stale-cache fallback kept it, under a key without the user
// by default, and served it to the next user while the upstream was down.
func TestStaleCacheSkipsPrivate(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0, Private")
		fmt.Fprintf(w, "account of %s", r.Header.Get("X-User"))
	})
	c, err := cache.New[gateway.CachedResponse](cache.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /account", Upstream: "u", Fallback: &gateway.Fallback{Cache: c}}))
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/account", nil)
	req.Header.Set("X-User", "alice")
	if resp, body := do(t, srv.Client(), req); resp.StatusCode != 200 || body != "account of alice" {
		t.Fatalf("upstream up: %d %q", resp.StatusCode, body)
	}
	b.Close()
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/account", nil)
	req.Header.Set("X-User", "bob")
	if resp, body := do(t, srv.Client(), req); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("upstream down: bob got %d %q; want the gateway's 502, not alice's private response", resp.StatusCode, body)
	}
}

// TestStaleCacheSkipsAuthenticated: under the default key, which has no
// user, the answer to an authenticated request was kept and served stale
// to the next user, even when the auth middleware had removed the
// Authorization header before the proxy. It is kept only when the
// upstream says a shared cache may keep it for anyone (public). One
// that says s-maxage or must-revalidate was kept too, and served stale,
// which both forbid (RFC 9111, 5.2.2.2 and 5.2.2.10).
func TestStaleCacheSkipsAuthenticated(t *testing.T) {
	for _, tc := range []struct {
		cacheControl string
		shared       bool
	}{{"", false}, {"max-age=60", false}, {"public, max-age=60", true}, {"s-maxage=60", false},
		{"max-age=0, must-revalidate", false}, {"public, proxy-revalidate", false}, {"public, no-cache", false}} {
		t.Run(tc.cacheControl, func(t *testing.T) {
			b := newBackend(t, "b")
			b.handle(func(w http.ResponseWriter, r *http.Request) {
				if tc.cacheControl != "" {
					w.Header().Set("Cache-Control", tc.cacheControl)
				}
				fmt.Fprintf(w, "account of %s", r.Header.Get("X-User"))
			})
			c, err := cache.New[gateway.CachedResponse](cache.WithTTL(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			login := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					p := &gateway.Principal{Subject: r.Header.Get("Authorization")}
					r = r.Clone(gateway.WithPrincipal(r.Context(), p))
					r.Header.Del("Authorization")
					r.Header.Set("X-User", p.Subject)
					next.ServeHTTP(w, r)
				})
			}
			_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
				gateway.WithRoutes(gateway.Route{Pattern: "GET /account", Upstream: "u",
					Middleware: []gateway.Middleware{login}, Fallback: &gateway.Fallback{Cache: c}}))
			as := func(user string) (*http.Response, string) {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/account", nil)
				req.Header.Set("Authorization", user)
				return do(t, srv.Client(), req)
			}
			if resp, body := as("alice"); resp.StatusCode != 200 || body != "account of alice" {
				t.Fatalf("upstream up: %d %q", resp.StatusCode, body)
			}
			b.Close()
			resp, body := as("bob")
			if tc.shared && (resp.StatusCode != 200 || body != "account of alice") {
				t.Errorf("upstream down, a shareable response: bob got %d %q; want the stale response", resp.StatusCode, body)
			}
			if !tc.shared && resp.StatusCode != http.StatusBadGateway {
				t.Errorf("upstream down: bob got %d %q; want the gateway's 502, not alice's response", resp.StatusCode, body)
			}
		})
	}
}

// TestServerMetricsHostBounded: otelhttp takes the server.address and
// server.port of the HTTP server metrics from the Host header, which the
// client writes: each new Host made a new series of
// http.server.request.duration (unbounded cardinality).
func TestServerMetricsHostBounded(t *testing.T) {
	tel := telemetrytest.New(t)
	b := newBackend(t, "b")
	_, srv := start(t, gateway.WithMeterProvider(tel.MeterProvider), gateway.WithTracerProvider(tel.TracerProvider),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"},
			gateway.Route{Pattern: "api.example.com/v1/", Upstream: "u"}))
	for i := range 20 {
		for _, path := range []string{"/", "/v1/x"} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			req.Host = fmt.Sprintf("h%d.attacker.test:%d", i, 1000+i)
			resp, _ := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("Host %s: status %d", req.Host, resp.StatusCode)
			}
		}
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/x", nil)
	req.Host = "API.example.com:8443"
	if resp, _ := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	addrs := map[string]bool{}
	for _, set := range telemetrytest.AttributeSets(tel.Metric(t, "http.server.request.duration")) {
		a, _ := set.Value("server.address")
		p, _ := set.Value("server.port")
		addrs[a.String()+" "+p.String()] = true
	}
	if len(addrs) > 2 {
		t.Errorf("http.server.request.duration has %d server.address/server.port pairs from 41 requests: %v; want them bounded by the gateway's configuration", len(addrs), addrs)
	}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	if want := "api.example.com " + port; !addrs[want] {
		t.Errorf("server.address/server.port pairs %v; want %q among them (the route's host, the local port)", addrs, want)
	}
}

// TestStaleCacheContentEncoding: the stale-cache fallback kept a response
// as the upstream encoded it for the client that asked (gzip) and served
// it to a client that does not accept gzip, which could not read it.
func TestStaleCacheContentEncoding(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = zw.Write([]byte("catalogue"))
			_ = zw.Close()
			return
		}
		_, _ = w.Write([]byte("catalogue"))
	})
	c, err := cache.New[gateway.CachedResponse](cache.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /catalogue", Upstream: "u", Fallback: &gateway.Fallback{Cache: c}}))
	// http.Client asks for gzip itself, and decodes the answer.
	if resp, body := get(t, srv, "/catalogue"); resp.StatusCode != 200 || body != "catalogue" {
		t.Fatalf("upstream up: %d %q", resp.StatusCode, body)
	}
	b.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/catalogue", nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, body := do(t, srv.Client(), req)
	if resp.StatusCode == 200 && (resp.Header.Get("Content-Encoding") != "" || body != "catalogue") {
		t.Errorf("upstream down, client without gzip: %d, Content-Encoding %q, body %q; want a body it can read, or the gateway's 502",
			resp.StatusCode, resp.Header.Get("Content-Encoding"), body)
	}
	// A client that accepts gzip still gets the stale response.
	if resp, body := get(t, srv, "/catalogue"); resp.StatusCode != 200 || body != "catalogue" || resp.Header.Get(gateway.FallbackHeader) == "" {
		t.Errorf("upstream down, client with gzip: %d %q %v; want the stale response", resp.StatusCode, body, resp.Header)
	}
}

// TestUpdateDropsOutlier: an ejected target kept its ejection through an
// Update that removed its upstream's Outlier, staying out of service (503)
// for the rest of an ejection that no longer had a policy behind it.
func TestUpdateDropsOutlier(t *testing.T) {
	b := newBackend(t, "b")
	var failing atomic.Bool
	failing.Store(true)
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Backend", "b")
	})
	routes := gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"})
	ejecting := gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
		Outlier: &gateway.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour}}
	g, srv := start(t, gateway.WithUpstreams(ejecting), routes)
	get(t, srv, "/")
	failing.Store(false)
	if resp, _ := get(t, srv, "/"); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after a failure: status %d; want the gateway's 503 (target ejected)", resp.StatusCode)
	}
	plain := ejecting
	plain.Outlier = nil
	if err := g.Update(gateway.WithUpstreams(plain), routes); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, srv, "/"); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "b" {
		t.Errorf("after an Update without outlier ejection: status %d; want 200 from the target", resp.StatusCode)
	}
}

// TestStrictPaths: paths that servers read in different ways (an escaped
// slash, a backslash, a NUL) are refused with WithStrictPaths, and pass
// as before without it.
func TestStrictPaths(t *testing.T) {
	b := newBackend(t, "b")
	opts := []gateway.Option{
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/files/", Upstream: "u"}),
	}
	_, strict := start(t, append(opts, gateway.WithStrictPaths())...)
	_, lax := start(t, opts...)
	for _, tc := range []struct {
		path    string
		refused bool
	}{
		{"/files/a/b", false},
		{"/files/a%20b", false},
		{"/files/%61", false},
		{"/files/..%2Fadmin", true},
		{"/files/a%2fb", true},
		{"/files/a%5Cb", true},
		{"/files/a%5cb", true},
		{"/files/a%00b", true},
	} {
		resp, _ := get(t, strict, tc.path)
		if got := resp.StatusCode == http.StatusBadRequest; got != tc.refused {
			t.Errorf("strict %s: status %d; refused %v, want %v", tc.path, resp.StatusCode, got, tc.refused)
		}
		if resp, _ := get(t, lax, tc.path); resp.StatusCode != http.StatusOK {
			t.Errorf("lax %s: status %d; want 200", tc.path, resp.StatusCode)
		}
	}
}

// TestUnboundedBodyLimits: a route's MaxBodyBytes and a retry policy's
// MaxBodyBytes of math.MaxInt64, the obvious "no bound", overflowed: the
// route's panicked in the transport's goroutine, ending the process, and
// the retry's read no body at all.
func TestUnboundedBodyLimits(t *testing.T) {
	var fails atomic.Int32
	fails.Store(1)
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if fails.Add(-1) >= 0 {
			http.Error(w, "once more", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "got %s", body)
	})
	_, srv := start(t,
		gateway.WithUpstreams(
			gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
				Retry: &gateway.Retry{MaxBodyBytes: math.MaxInt64}},
			gateway.Upstream{Name: "once", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(
			gateway.Route{Pattern: "/", Upstream: "u", MaxBodyBytes: math.MaxInt64},
			gateway.Route{Pattern: "/once/", Upstream: "once", MaxBodyBytes: math.MaxInt64}))
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/x", strings.NewReader("hello"))
	resp, body := do(t, srv.Client(), req)
	if resp.StatusCode != http.StatusOK || body != "got hello" {
		t.Errorf("PUT retried once: %d %q; want 200 \"got hello\"", resp.StatusCode, body)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/once/x", strings.NewReader("world"))
	if resp, body := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK || body != "got world" {
		t.Errorf("POST: %d %q; want 200 \"got world\"", resp.StatusCode, body)
	}
}

// TestHandlerKeepsRequest: a route handler may read its request from a
// goroutine of its own after it returns (a shadow copy). The gateway set
// the bounded metric host on that same request once the handler had
// returned, a data race the race detector reports.
func TestHandlerKeepsRequest(t *testing.T) {
	tel := telemetrytest.New(t) // SDK providers: the metric host is set only with telemetry on
	read := make(chan string)
	_, srv := start(t, gateway.WithTracerProvider(tel.TracerProvider), gateway.WithMeterProvider(tel.MeterProvider),
		gateway.WithRoutes(gateway.Route{Pattern: "/keep", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			go func() {
				time.Sleep(10 * time.Millisecond) // after the gateway is done with the request
				read <- r.Host
			}()
		})}))
	resp, _ := get(t, srv, "/keep")
	if host := <-read; resp.StatusCode != http.StatusOK || host != strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("status %d, the handler's goroutine read Host %q; want 200 and the client's %q", resp.StatusCode, host, srv.URL)
	}
}

// TestUnderscoreHeaderVariants: a header whose name differs from a
// protected one only by underscores for hyphens ("X_Client_Id" for the
// dropped "X-Client-Id", "X_Forwarded_For" from an untrusted peer) must
// not reach the upstream, which may read both as one (nginx with
// underscores_in_headers on, CGI and WSGI, which map "-" to "_", many
// frameworks). By default every header with an underscore in its name
// is removed, as nginx does; with WithUnderscoreHeaders the others pass
// and those variants are still removed.
func TestUnderscoreHeaderVariants(t *testing.T) {
	b := newBackend(t, "headers")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for k := range r.Header {
			names = append(names, strings.ToLower(k))
		}
		_, _ = w.Write([]byte(strings.Join(names, " ")))
	})
	send := func(t *testing.T, srv string) []string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv+"/h", nil)
		for _, name := range []string{"X_Client_Id", "x_client-id", "X-CLIENT_ID", "X_Forwarded_For", "x_real_ip",
			"Forwarded_", "X_Request_Id", "X_Custom", "X-Plain"} {
			req.Header[name] = []string{"forged"}
		}
		resp, got := do(t, http.DefaultClient, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return strings.Fields(got)
	}
	opts := []gateway.Option{
		gateway.WithUpstreams(gateway.Upstream{Name: "b", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /h", Upstream: "b"}),
		gateway.WithDroppedHeaders("X-Client-Id"),
	}
	t.Run("default", func(t *testing.T) {
		_, srv := start(t, opts...)
		for _, name := range send(t, srv.URL) {
			if strings.Contains(name, "_") {
				t.Errorf("upstream got %q; want no header with an underscore", name)
			}
		}
	})
	t.Run("WithUnderscoreHeaders", func(t *testing.T) {
		_, srv := start(t, append(opts, gateway.WithUnderscoreHeaders())...)
		got := send(t, srv.URL)
		kept := map[string]bool{}
		for _, name := range got {
			kept[name] = true
			norm := strings.ReplaceAll(name, "_", "-")
			switch norm {
			case "x-client-id", "x-forwarded-for", "x-real-ip", "x-request-id":
				if strings.Contains(name, "_") {
					t.Errorf("upstream got %q, a variant of %s", name, norm)
				}
			}
		}
		for _, want := range []string{"x_custom", "forwarded_", "x-plain"} {
			if !kept[want] {
				t.Errorf("upstream got %q; want %s kept", got, want)
			}
		}
	})
}

// TestSpoofedSchemeHeadersDropped: X-Forwarded-Ssl and X-Forwarded-Scheme
// from a peer that is not a trusted proxy reached the upstream, which
// frameworks read as the scheme the client used, before X-Forwarded-Proto
// (Rack's scheme: "X-Forwarded-Ssl: on" is https whatever the gateway's
// X-Forwarded-Proto says; Spring's ForwardedHeaderFilter removes both with
// the others), so a client on plain HTTP could pass for one on HTTPS
// (secure cookies, redirects, HSTS decisions). From a trusted proxy they
// are kept, as the other forwarding headers are.
func TestSpoofedSchemeHeadersDropped(t *testing.T) {
	b := newBackend(t, "b")
	send := func(t *testing.T, srv string) seen {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv+"/", nil)
		req.Header.Set("X-Forwarded-Ssl", "on")
		req.Header.Set("X-Forwarded-Scheme", "https")
		_, body := do(t, http.DefaultClient, req)
		return echo(t, body)
	}
	t.Run("untrusted", func(t *testing.T) {
		_, srv := single(t, b, gateway.Route{})
		s := send(t, srv.URL)
		for _, k := range []string{"X-Forwarded-Ssl", "X-Forwarded-Scheme"} {
			if v := s.Header[k]; len(v) > 0 {
				t.Errorf("upstream got %s: %q from an untrusted peer; want none", k, v)
			}
		}
	})
	t.Run("trusted", func(t *testing.T) {
		_, srv := start(t, gateway.WithTrustedProxies("127.0.0.1"),
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
			gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
		s := send(t, srv.URL)
		if got := s.Header.Get("X-Forwarded-Ssl"); got != "on" {
			t.Errorf("upstream got X-Forwarded-Ssl %q from a trusted proxy; want on", got)
		}
	})
}

// TestSpoofedClientHeadersDropped: True-Client-Ip and X-Client-Ip (the
// client's address, which frameworks and rate limiters read before
// X-Forwarded-For) and Front-End-Https (the scheme, "on") from a peer
// that is not a trusted proxy reached the upstream and the route's
// middleware, so a client could pass for another address or for one on
// HTTPS. From a trusted proxy they are kept, as the other forwarding
// headers are.
func TestSpoofedClientHeadersDropped(t *testing.T) {
	b := newBackend(t, "b")
	forged := map[string]string{"True-Client-Ip": "203.0.113.9", "X-Client-Ip": "203.0.113.10", "Front-End-Https": "on"}
	// What the route's middleware sees, before the upstream.
	var inMiddleware http.Header
	var mu sync.Mutex
	seenBy := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			inMiddleware = r.Header.Clone()
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}
	send := func(t *testing.T, srv string) (seen, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv+"/", nil)
		for k, v := range forged {
			req.Header.Set(k, v)
		}
		_, body := do(t, http.DefaultClient, req)
		mu.Lock()
		defer mu.Unlock()
		return echo(t, body), inMiddleware
	}
	route := gateway.Route{Pattern: "/", Upstream: "u", Middleware: []gateway.Middleware{seenBy}}
	t.Run("untrusted", func(t *testing.T) {
		_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
			gateway.WithRoutes(route))
		up, mw := send(t, srv.URL)
		for k := range forged {
			if v := up.Header[k]; len(v) > 0 {
				t.Errorf("upstream got %s: %q from an untrusted peer; want none", k, v)
			}
			if v := mw[k]; len(v) > 0 {
				t.Errorf("middleware saw %s: %q from an untrusted peer; want none", k, v)
			}
		}
	})
	t.Run("trusted", func(t *testing.T) {
		_, srv := start(t, gateway.WithTrustedProxies("127.0.0.1"),
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
			gateway.WithRoutes(route))
		up, _ := send(t, srv.URL)
		for k, v := range forged {
			if got := up.Header.Get(k); got != v {
				t.Errorf("upstream got %s %q from a trusted proxy; want %q", k, got, v)
			}
		}
	})
}

// TestDroppedUnderscoreNameHyphenVariant: a dropped header named with
// underscores ("X_Client_Id") was removed, but its spelling with hyphens
// ("X-Client-Id") passed, which nginx, CGI and WSGI upstreams read as the
// same header (HTTP_X_CLIENT_ID): a client could forge what the
// gateway's middleware sets, with or without WithUnderscoreHeaders.
func TestDroppedUnderscoreNameHyphenVariant(t *testing.T) {
	b := newBackend(t, "b")
	for _, extra := range [][]gateway.Option{nil, {gateway.WithUnderscoreHeaders()}} {
		opts := append([]gateway.Option{
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
			gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}),
			gateway.WithDroppedHeaders("X_Client_Id"),
		}, extra...)
		_, srv := start(t, opts...)
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		req.Header.Set("X-Client-Id", "forged")
		req.Header["X-Client_Id"] = []string{"forged"}
		_, body := do(t, http.DefaultClient, req)
		s := echo(t, body)
		for k := range s.Header {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Client-Id") {
				t.Errorf("underscores allowed %v: upstream got %s: %q; want no spelling of the dropped X_Client_Id", extra != nil, k, s.Header[k])
			}
		}
	}
}

// TestRequestIDHeaderWithUnderscore: with a request-ID header named with
// underscores (WithRequestIDHeader("X_Request_Id")), the client's ID was
// removed with the other headers with underscores before it was read, so
// a well-formed ID was never kept, as the option promises; and the
// spelling with hyphens, which an nginx, CGI or WSGI upstream reads as
// the same header, passed beside the gateway's.
func TestRequestIDHeaderWithUnderscore(t *testing.T) {
	b := newBackend(t, "b")
	for _, extra := range [][]gateway.Option{nil, {gateway.WithUnderscoreHeaders()}} {
		_, srv := start(t, append([]gateway.Option{
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
			gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}),
			gateway.WithRequestIDHeader("X_Request_Id"),
		}, extra...)...)
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		req.Header["X_Request_Id"] = []string{"client-id-42"}
		req.Header.Set("X-Request-Id", "forged")
		resp, body := do(t, http.DefaultClient, req)
		if got := resp.Header.Get("X_Request_Id"); got != "client-id-42" {
			t.Errorf("underscores allowed %v: response X_Request_Id %q; want the client's client-id-42", extra != nil, got)
		}
		s := echo(t, body)
		for k, v := range s.Header {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Request-Id") && (len(v) != 1 || v[0] != "client-id-42") {
				t.Errorf("underscores allowed %v: upstream got %s: %q; want only the request ID client-id-42", extra != nil, k, v)
			}
		}
	}
}

// A single {id} wildcard in Rewrite keeps the client's spelling, as a
// {rest...} one does: a comma and a semicolon (a matrix parameter) reach
// the upstream as sent, not escaped by url.PathEscape.
func TestRewriteKeepsSingleWildcardSpelling(t *testing.T) {
	b := uriBackend(t)
	_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "b", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(
			gateway.Route{Pattern: "GET /v1/orders/{id}", Upstream: "b", Rewrite: "/orders/{id}"},
			gateway.Route{Pattern: "GET /v1/files/{rest...}", Upstream: "b", Rewrite: "/files/{rest}"},
		))
	for _, tt := range []struct{ path, want string }{
		{"/v1/files/1,2;v=2", "/files/1,2;v=2"},
		{"/v1/orders/1,2", "/orders/1,2"},
		{"/v1/orders/42;v=2", "/orders/42;v=2"},
		{"/v1/orders/a%2Fb", "/orders/a%2Fb"},
		{"/v1/orders/%2E%2E", "/orders/%2E%2E"},
		{"/v1/orders/caf%C3%A9", "/orders/caf%C3%A9"},
	} {
		resp, uri := get(t, srv, tt.path)
		if resp.StatusCode != 200 || uri != tt.want {
			t.Errorf("GET %s: upstream got %q (status %d); want %q", tt.path, uri, resp.StatusCode, tt.want)
		}
	}
}

// A pattern whose host has a port is an error: ServeMux matches the
// request's host without its port, so the route would never match, and
// its requests would go to a less specific route, past its middleware.
func TestHostPatternWithPort(t *testing.T) {
	for _, p := range []string{"api.example.com:8443/admin/", "GET [::1]:8080/x", "example.com:80/"} {
		_, err := gateway.New(gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: "http://127.0.0.1:1"}}}),
			gateway.WithRoutes(gateway.Route{Pattern: p, Upstream: "u"}))
		if err == nil || !strings.Contains(err.Error(), "has a port") {
			t.Errorf("New with pattern %q: %v; want an error saying its host has a port", p, err)
		}
	}
	for _, p := range []string{"api.example.com/admin/", "GET [::1]/x", "/a:b/"} {
		g, err := gateway.New(gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: "http://127.0.0.1:1"}}}),
			gateway.WithRoutes(gateway.Route{Pattern: p, Upstream: "u"}))
		if err != nil {
			t.Errorf("New with pattern %q: %v", p, err)
			continue
		}
		_ = g.Close()
	}
}

// A header matcher on a header the gateway removes on arrival (one of
// WithDroppedHeaders, one with an underscore by default) is an error:
// the route could never match.
func TestHeaderMatcherOnDroppedHeader(t *testing.T) {
	up := gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: "http://127.0.0.1:1"}}})
	route := func(name string) gateway.Option {
		return gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u", Headers: []gateway.Match{{Name: name, Value: "x"}}})
	}
	for _, tt := range []struct {
		name string
		opts []gateway.Option
	}{
		{"X_Tenant", nil},
		{"X-Internal-User", []gateway.Option{gateway.WithDroppedHeaders("X-Internal-User")}},
	} {
		_, err := gateway.New(append(tt.opts, up, route(tt.name))...)
		if err == nil || !strings.Contains(err.Error(), "removed on arrival") {
			t.Errorf("a matcher on %s: %v; want an error saying it is removed on arrival", tt.name, err)
		}
	}
	g, err := gateway.New(gateway.WithUnderscoreHeaders(), up, route("X_Tenant"))
	if err != nil {
		t.Fatalf("a matcher on X_Tenant with WithUnderscoreHeaders: %v", err)
	}
	_ = g.Close()
}
