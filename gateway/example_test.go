package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
)

// service starts a local upstream that says who it is and what path it
// was asked for.
func service(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
}

func fetch(c *http.Client, req *http.Request) string {
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if f := resp.Header.Get(gateway.FallbackHeader); f != "" {
		return fmt.Sprintf("%d %s (fallback: %s)", resp.StatusCode, bytes.TrimSpace(body), f)
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
}

func ExampleNew() {
	a, b := service("orders-a"), service("orders-b")
	defer a.Close()
	defer b.Close()

	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{
			Name:    "orders",
			Targets: []gateway.Target{{URL: a.URL}, {URL: b.URL}},
			Balance: gateway.RoundRobin,
		}),
		gateway.WithRoutes(gateway.Route{
			Pattern:     "GET /api/orders/{id}",
			Upstream:    "orders",
			StripPrefix: "/api",
			Timeout:     5 * time.Second,
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g) // or http.ListenAndServe(":8080", g)
	defer srv.Close()

	for _, id := range []string{"1", "2", "3"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/orders/"+id, nil)
		fmt.Println(fetch(srv.Client(), req))
	}
	// Output:
	// 200 orders-a /orders/1
	// 200 orders-b /orders/2
	// 200 orders-a /orders/3
}

// Configuration errors come all at once, each naming its field.
func ExampleNew_errors() {
	_, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{Name: "orders", Targets: []gateway.Target{
			{URL: "http://10.0.0.7:8080"}, {URL: "10.0.0.8:8080", Weight: -1}}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/orders/", Upstream: "order"}),
		gateway.WithTrustedProxies("10.0.0.0/33"),
	)
	fmt.Println(err)
	// Output:
	// gateway: trusted_proxies[0]: "10.0.0.0/33" is not a CIDR prefix
	// gateway: upstream "orders": targets[1].url: "10.0.0.8:8080": first path segment in URL cannot contain colon
	// gateway: upstream "orders": targets[1].weight: must be positive (got -1)
	// gateway: routes[0] "/orders/": upstream: "order" is not an upstream
}

// Routes that share a pattern are told apart by header and query
// matchers, and Rewrite builds the upstream's path from the pattern's
// wildcards.
func ExampleRoute() {
	v1, v2 := service("v1"), service("v2")
	defer v1.Close()
	defer v2.Close()

	g, err := gateway.New(
		gateway.WithUpstreams(
			gateway.Upstream{Name: "v1", Targets: []gateway.Target{{URL: v1.URL}}},
			gateway.Upstream{Name: "v2", Targets: []gateway.Target{{URL: v2.URL}}},
		),
		gateway.WithRoutes(
			gateway.Route{Pattern: "GET /items/{id}", Upstream: "v1", Rewrite: "/legacy/item/{id}"},
			gateway.Route{Pattern: "GET /items/{id}", Upstream: "v2", Rewrite: "/items/{id}",
				Headers: []gateway.Match{{Name: "Api-Version", Value: "2"}}},
		),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	for _, version := range []string{"", "2"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/items/42", nil)
		if version != "" {
			req.Header.Set("Api-Version", version)
		}
		fmt.Println(fetch(srv.Client(), req))
	}
	// Output:
	// 200 v1 /legacy/item/42
	// 200 v2 /items/42
}

// A route with a fallback degrades gracefully: once the upstream's
// breaker opens, the static response answers, marked by the
// Gateway-Fallback header.
func ExampleFallback() {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database down", http.StatusInternalServerError)
	}))
	defer failing.Close()

	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{
			Name:    "recommendations",
			Targets: []gateway.Target{{URL: failing.URL}},
			Breaker: &gateway.Breaker{Options: []circuitbreaker.Option{
				circuitbreaker.WithConsecutiveFailures(2),
			}},
		}),
		gateway.WithRoutes(gateway.Route{
			Pattern:  "GET /recommendations",
			Upstream: "recommendations",
			Fallback: &gateway.Fallback{
				Header: http.Header{"Content-Type": {"application/json"}},
				Body:   []byte(`{"items":[]}`),
			},
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/recommendations", nil)
		fmt.Println(fetch(srv.Client(), req))
	}
	// Output:
	// 500 database down
	// 500 database down
	// 200 {"items":[]} (fallback: unavailable)
}

// Update swaps the routing table while the gateway serves.
func ExampleGateway_Update() {
	blue, green := service("blue"), service("green")
	defer blue.Close()
	defer green.Close()
	table := func(target string) []gateway.Option {
		return []gateway.Option{
			gateway.WithUpstreams(gateway.Upstream{Name: "web", Targets: []gateway.Target{{URL: target}}}),
			gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "web"}),
		}
	}
	g, err := gateway.New(table(blue.URL)...)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)

	fmt.Println(fetch(srv.Client(), req))
	if err := g.Update(table(green.URL)...); err != nil {
		log.Fatal(err)
	}
	fmt.Println(fetch(srv.Client(), req))
	fmt.Println(g.Update(gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "gone"})))
	fmt.Println(fetch(srv.Client(), req))
	// Output:
	// 200 blue /
	// 200 green /
	// gateway: routes[0] "/": upstream: "gone" is not an upstream
	// 200 green /
}

// The path of a request, as the package overview draws it: the route
// matches, its middleware authenticates the caller (package
// gateway/auth) and spends its budget (package gateway/ratelimit), the
// upstream's retry, balancer and breakers send it to a target, and the
// route's fallback answers when the upstream cannot.
func Example() {
	orders := service("orders")
	defer orders.Close()

	authn, err := auth.New(auth.WithAPIKeys(auth.APIKey{
		Name: "shop-frontend", Secret: "a-long-random-secret-from-rand",
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer authn.Close()
	perCaller, err := ratelimit.New(ratelimit.Limit{
		Name: "per-caller", Requests: 2, Per: time.Minute,
		Key: ratelimit.ByClaim("sub"), Scope: ratelimit.PerRoute,
	})
	if err != nil {
		log.Fatal(err)
	}

	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{
			Name:    "orders",
			Targets: []gateway.Target{{URL: orders.URL}},
			Breaker: &gateway.Breaker{},
			Retry:   &gateway.Retry{},
		}),
		gateway.WithRoutes(gateway.Route{
			Pattern:    "GET /api/orders/{id}",
			Upstream:   "orders",
			Rewrite:    "/orders/{id}",
			Timeout:    5 * time.Second,
			Middleware: []gateway.Middleware{authn.Middleware(), perCaller.Middleware},
			Fallback:   &gateway.Fallback{Status: http.StatusOK, Body: []byte("orders are resting")},
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	get := func(key string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/orders/7", nil)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			body = nil // the refusals' bodies are for machines
		}
		line := strings.TrimSpace(fmt.Sprint(resp.StatusCode, " ", string(bytes.TrimSpace(body))))
		if why := resp.Header.Get(gateway.FallbackHeader); why != "" {
			line += " (fallback: " + why + ")"
		}
		fmt.Println(line)
	}
	get("")                               // auth refuses it
	get("a-long-random-secret-from-rand") // the upstream answers
	orders.Close()
	get("a-long-random-secret-from-rand") // the upstream is gone: the fallback answers
	get("a-long-random-secret-from-rand") // over the caller's budget
	// Output:
	// 401
	// 200 orders /orders/7
	// 200 orders are resting (fallback: failure)
	// 429
}

// A route's own handler proxies to an upstream it chooses by name, with
// that upstream's balancing, breakers and retries. ProxyTo needs no
// gateway at hand, so the handler can be built before the gateway.
func ExampleProxyTo() {
	stable, canary := service("stable"), service("canary")
	defer stable.Close()
	defer canary.Close()
	toStable, toCanary := gateway.ProxyTo("stable"), gateway.ProxyTo("canary")
	choose := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("canary") == "1" {
			toCanary.ServeHTTP(w, r)
			return
		}
		toStable.ServeHTTP(w, r)
	})
	g, err := gateway.New(
		gateway.WithUpstreams(
			gateway.Upstream{Name: "stable", Targets: []gateway.Target{{URL: stable.URL}}},
			gateway.Upstream{Name: "canary", Targets: []gateway.Target{{URL: canary.URL}}},
		),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /search", Handler: choose}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	for _, q := range []string{"", "?canary=1"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/search"+q, nil)
		fmt.Println(fetch(srv.Client(), req))
	}
	// Output:
	// 200 stable /search
	// 200 canary /search
}
