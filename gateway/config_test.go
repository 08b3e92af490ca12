package gateway_test

import (
	"io"
	"log"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/retry"
)

var okUpstream = gateway.Upstream{Name: "orders", Targets: []gateway.Target{{URL: "http://127.0.0.1:1"}}}

// TestNewNamesEveryBadField checks that each configuration error is
// reported, naming its field, and all of them at once.
func TestNewNamesEveryBadField(t *testing.T) {
	handler := http.NotFoundHandler()
	tests := []struct {
		name string
		opts []gateway.Option
		want []string
	}{
		{"empty target list",
			[]gateway.Option{gateway.WithUpstreams(gateway.Upstream{Name: "orders"})},
			[]string{`upstream "orders": targets: must not be empty`}},
		{"bad weight",
			[]gateway.Option{gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: []gateway.Target{
				{URL: "http://a:1"}, {URL: "http://b:1", Weight: -2}}})},
			[]string{`upstream "orders": targets[1].weight: must be positive (got -2)`}},
		{"bad target URLs",
			[]gateway.Option{gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: []gateway.Target{
				{URL: "ftp://a"}, {URL: "http://"}, {URL: "http://a:1?x=1"}, {URL: "http://u:p@a"}, {URL: "http://a:1"}, {URL: "http://a:1"},
				{URL: "http://b/v1"}, {URL: "http://b:80/v2"}}})},
			[]string{`targets[0].url: "ftp://a": scheme must be http or https`,
				`targets[1].url: "http://": host must not be empty`,
				`targets[2].url: "http://a:1?x=1": must not have a query`,
				`targets[3].url: "http://u:p@a": must not carry user information`,
				`targets[5].url: "http://a:1" is also targets[4]`,
				`targets[7].url: "http://b:80/v2" has the host and port of targets[6] ("http://b/v1")`}},
		{"unnamed and duplicate upstreams",
			[]gateway.Option{gateway.WithUpstreams(gateway.Upstream{Targets: okUpstream.Targets}, okUpstream, okUpstream)},
			[]string{`upstreams[0]: name: must not be empty`, `upstreams[2]: name: "orders" is already an upstream`}},
		{"unknown balance",
			[]gateway.Option{gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: okUpstream.Targets, Balance: "random"})},
			[]string{`upstream "orders": balance: unknown policy "random"`}},
		{"bad health check",
			[]gateway.Option{gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: okUpstream.Targets,
				HealthCheck: &gateway.HealthCheck{Path: "healthz", Interval: time.Second, Timeout: -2 * time.Second, HealthyThreshold: -1}})},
			[]string{`health_check.path: "healthz" is not an absolute path`,
				`health_check.timeout: must be positive (got -2s)`,
				`health_check.healthy_threshold: must be positive (got -1)`}},
		{"bad outlier",
			[]gateway.Option{gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: okUpstream.Targets,
				Outlier: &gateway.Outlier{BaseEjection: time.Minute, MaxEjection: time.Second, MaxEjectedPercent: 101}})},
			[]string{`outlier.max_ejection: must be at least base_ejection`, `outlier.max_ejected_percent: must be in 1..100 (got 101)`}},
		{"bad breaker and retry",
			[]gateway.Option{gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: okUpstream.Targets,
				Breaker: &gateway.Breaker{Options: []circuitbreaker.Option{circuitbreaker.WithFailureRate(200)}},
				Retry:   &gateway.Retry{Attempts: -1, Backoff: retry.Exponential(time.Second, 0.5, time.Minute), MaxBodyBytes: -1}})},
			[]string{`upstream "orders": breaker.options: `, `WithFailureRate(200)`,
				`retry.attempts: must be positive (got -1)`, `retry.max_body_bytes: must not be negative`,
				`retry.backoff: `, `multiplier must be at least 1`}},
		{"h2c with https",
			[]gateway.Option{gateway.WithUpstreams(gateway.Upstream{Name: "grpc", H2C: true, Targets: []gateway.Target{{URL: "https://a"}}})},
			[]string{`upstream "grpc": targets[0].url: "https://a": h2c targets must be http`}},
		{"bad CIDRs",
			[]gateway.Option{gateway.WithTrustedProxies("10.0.0.0/8", "10.0.0.0/33", "proxy.local")},
			[]string{`trusted_proxies[1]: "10.0.0.0/33" is not a CIDR prefix`,
				`trusted_proxies[2]: "proxy.local" is neither a CIDR prefix nor an IP address`}},
		{"bad request ID header",
			[]gateway.Option{gateway.WithRequestIDHeader("X Request")},
			[]string{`request_id_header: "X Request" is not a header name`}},
		{"bad dropped header",
			[]gateway.Option{gateway.WithDroppedHeaders("X-User", "X\nUser")},
			[]string{`dropped_headers[1]: "X\\nUser" is not a header name`}},
		{"unknown upstream",
			[]gateway.Option{gateway.WithUpstreams(okUpstream), gateway.WithRoutes(gateway.Route{Pattern: "/x/", Upstream: "ordrs"})},
			[]string{`routes[0] "/x/": upstream: "ordrs" is not an upstream`}},
		{"route with neither or both",
			[]gateway.Option{gateway.WithUpstreams(okUpstream), gateway.WithRoutes(
				gateway.Route{Pattern: "/a"},
				gateway.Route{Pattern: "/b", Upstream: "orders", Handler: handler})},
			[]string{`routes[0] "/a": upstream: set an upstream or a handler`,
				`routes[1] "/b": handler: cannot be set with an upstream ("orders")`}},
		{"bad pattern",
			[]gateway.Option{gateway.WithRoutes(gateway.Route{Pattern: "GET /a/{x", Handler: handler}, gateway.Route{Handler: handler})},
			[]string{`routes[0] "GET /a/{x": pattern: parsing "GET /a/{x": `, `routes[1] "": pattern: must not be empty`}},
		{"bad rewrite",
			[]gateway.Option{gateway.WithUpstreams(okUpstream), gateway.WithRoutes(
				gateway.Route{Pattern: "/a/{id}", Upstream: "orders", Rewrite: "/b/{idd}"},
				gateway.Route{Pattern: "/c/{id}", Upstream: "orders", Rewrite: "c/{id}", StripPrefix: "c"},
				gateway.Route{Pattern: "/d/{id}", Upstream: "orders", Rewrite: "/d/{id"})},
			[]string{`routes[0] "/a/{id}": rewrite: "/b/{idd}": "{idd}" is not a wildcard of the pattern`,
				`routes[1] "/c/{id}": strip_prefix: "c" must start with /`,
				`routes[1] "/c/{id}": strip_prefix: cannot be set with rewrite`,
				`routes[1] "/c/{id}": rewrite: "c/{id}" must start with /`,
				`routes[2] "/d/{id}": rewrite: "/d/{id": unmatched {`}},
		{"bad matchers",
			[]gateway.Option{gateway.WithRoutes(gateway.Route{Pattern: "/a", Handler: handler,
				Headers: []gateway.Match{{Name: ""}, {Name: "X Bad"}, {Name: "X-V", Value: "1", Regexp: "1"}},
				Query:   []gateway.Match{{Name: "q", Regexp: "("}}})},
			[]string{`headers[0].name: must not be empty`, `headers[1].name: "X Bad" is not a header name`,
				`headers[2]: value and regexp cannot both be set`, `query[0].regexp: error parsing regexp`}},
		{"bad limits",
			[]gateway.Option{gateway.WithRoutes(gateway.Route{Pattern: "/a", Handler: handler, Timeout: -1, MaxBodyBytes: -1,
				Middleware: []gateway.Middleware{nil}})},
			[]string{`timeout: must not be negative`, `max_body_bytes: must not be negative`, `middleware[0]: must not be nil`}},
		{"bad fallbacks",
			[]gateway.Option{gateway.WithUpstreams(okUpstream), gateway.WithRoutes(
				gateway.Route{Pattern: "/a", Upstream: "orders", Fallback: &gateway.Fallback{}},
				gateway.Route{Pattern: "/b", Upstream: "orders", Fallback: &gateway.Fallback{Status: 42, Handler: handler}},
				gateway.Route{Pattern: "/c", Handler: handler, Fallback: &gateway.Fallback{Body: []byte("x")}})},
			[]string{`routes[0] "/a": fallback: set a static response, a handler or a cache`,
				`routes[1] "/b": fallback.status: 42 is not a final HTTP status`,
				`routes[1] "/b": fallback.handler: cannot be set with a static response`,
				`routes[2] "/c": fallback: only routes with an upstream take one`}},
		{"conflicting patterns",
			[]gateway.Option{gateway.WithRoutes(
				gateway.Route{Pattern: "/a/{x}", Handler: handler},
				gateway.Route{Pattern: "/b", Handler: handler},
				gateway.Route{Pattern: "/{y}/c", Handler: handler})},
			[]string{`routes[2] "/{y}/c" conflicts with routes[0] "/a/{x}": `, `both match some paths, like "/a/c"`}},
		{"same pattern, same matchers",
			[]gateway.Option{gateway.WithRoutes(
				gateway.Route{Pattern: "/a", Handler: handler, Headers: []gateway.Match{{Name: "x-v", Value: "1"}}},
				gateway.Route{Pattern: "/a", Handler: handler, Headers: []gateway.Match{{Name: "X-V", Value: "1"}}})},
			[]string{`routes[1] "/a" conflicts with routes[0] "/a": same pattern and same matchers`}},
		{"nil option",
			[]gateway.Option{gateway.WithRequestIDHeader("X-Id"), nil},
			[]string{"gateway: opts[1] is nil"}},
		{"equivalent patterns",
			[]gateway.Option{gateway.WithRoutes(
				gateway.Route{Pattern: "GET /a/{x}", Handler: handler},
				gateway.Route{Pattern: "GET /a/{y}", Handler: handler})},
			[]string{`routes[1] "GET /a/{y}" conflicts with routes[0] "GET /a/{x}"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := gateway.New(tt.opts...)
			if err == nil {
				_ = g.Close()
				t.Fatalf("New() = nil error; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New() = %v\nwant it to say %q", err, w)
				}
			}
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "gateway: ") {
					t.Errorf("error line %q has no gateway: prefix", line)
				}
			}
		})
	}
}

// TestPatternsServeMuxAccepts protects the precedence rules: patterns
// that ServeMux orders (more specific wins) are not conflicts.
func TestPatternsServeMuxAccepts(t *testing.T) {
	h := http.NotFoundHandler()
	g, err := gateway.New(gateway.WithRoutes(
		gateway.Route{Pattern: "/a/{x}", Handler: h},
		gateway.Route{Pattern: "/a/b", Handler: h},
		gateway.Route{Pattern: "GET /a/b", Handler: h},
		gateway.Route{Pattern: "api.example.com/a/b", Handler: h},
		gateway.Route{Pattern: "/a/b", Handler: h, Headers: []gateway.Match{{Name: "X-V", Value: "2"}}},
	))
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	_ = g.Close()
}

// TestUpdateRefusesNilOptions: a nil option is an error of Update, as of
// New, and the live table stays.
func TestUpdateRefusesNilOptions(t *testing.T) {
	g, err := gateway.New()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	err = g.Update(nil, gateway.WithStrictPaths())
	if err == nil || !strings.Contains(err.Error(), "gateway: opts[0] is nil") {
		t.Errorf("Update(nil, ...) = %v; want an error naming opts[0]", err)
	}
}

func TestUpdateRefusesNewOnlyOptions(t *testing.T) {
	g, err := gateway.New()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	err = g.Update(gateway.WithTracerProvider(nil), gateway.WithTransport(http.DefaultTransport),
		gateway.WithErrorLog(log.New(io.Discard, "", 0)))
	for _, name := range []string{"WithTracerProvider", "WithTransport", "WithErrorLog"} {
		if err == nil || !strings.Contains(err.Error(), "Update: "+name+": only New takes it") {
			t.Errorf("Update() = %v; want it to refuse %s", err, name)
		}
	}
}

// TestMiddlewareReturningNil: a route middleware that returns a nil
// handler is a configuration error of New and Update, naming the route
// and the middleware, not a panic at the route's first request.
func TestMiddlewareReturningNil(t *testing.T) {
	broken := func(http.Handler) http.Handler { return nil }
	route := gateway.Route{Pattern: "/orders/", Upstream: "orders",
		Middleware: []gateway.Middleware{func(h http.Handler) http.Handler { return h }, broken}}
	_, err := gateway.New(gateway.WithUpstreams(okUpstream), gateway.WithRoutes(route))
	if err == nil || !strings.Contains(err.Error(), `route "/orders/": middleware[1]: returned a nil handler`) {
		t.Errorf("New() = %v; want an error naming the route and middleware[1]", err)
	}

	g, err := gateway.New(gateway.WithUpstreams(okUpstream))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Update(gateway.WithUpstreams(okUpstream), gateway.WithRoutes(route)); err == nil {
		t.Error("Update() with a middleware returning nil = nil; want an error")
	}
}

// TestMiddlewarePanicking: a middleware that refuses to be built by
// panicking (ratelimit's, for a Limiter not made by ratelimit.New) made
// New and Update panic; they return it as the route's error, and Update
// keeps the live table.
func TestMiddlewarePanicking(t *testing.T) {
	var zero ratelimit.Limiter
	route := gateway.Route{Pattern: "/orders/", Upstream: "orders", Middleware: []gateway.Middleware{zero.Middleware}}
	const want = `route "/orders/": middleware[0]: panicked: ratelimit: Middleware: the Limiter was not made by New`
	_, err := gateway.New(gateway.WithUpstreams(okUpstream), gateway.WithRoutes(route))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("New() = %v; want an error containing %q", err, want)
	}

	b := newBackend(t, "b")
	up := gateway.Upstream{Name: "orders", Targets: []gateway.Target{b.target()}}
	g, srv := start(t, gateway.WithUpstreams(up), gateway.WithRoutes(gateway.Route{Pattern: "/orders/", Upstream: "orders"}))
	if err := g.Update(gateway.WithUpstreams(up), gateway.WithRoutes(route)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Update() = %v; want an error containing %q", err, want)
	}
	if resp, _ := get(t, srv, "/orders/1"); resp.StatusCode != http.StatusOK {
		t.Errorf("after the refused Update: status %d; want 200 from the live table", resp.StatusCode)
	}
}
