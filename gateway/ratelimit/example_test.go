package ratelimit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
)

func ExampleNew() {
	perClient, err := ratelimit.New(ratelimit.Limit{
		Name:     "per-client",
		Requests: 2, Per: time.Minute,
		Key:   ratelimit.ByClientIP(),
		Scope: ratelimit.AcrossRoutes,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	api := perClient.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	}))

	for range 3 {
		r := httptest.NewRequest(http.MethodGet, "/orders", nil)
		r.RemoteAddr = "198.51.100.7:50000"
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		fmt.Printf("%d RateLimit: %s Retry-After: %q\n", w.Code, w.Header().Get("RateLimit"), w.Header().Get("Retry-After"))
	}
	fmt.Println(perClientPolicy(api))
	// Output:
	// 200 RateLimit: "per-client";r=1;t=30 Retry-After: ""
	// 200 RateLimit: "per-client";r=0;t=30 Retry-After: ""
	// 429 RateLimit: "per-client";r=0;t=30 Retry-After: "30"
	// "per-client";q=2;w=60
}

func perClientPolicy(h http.Handler) string {
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Header().Get("RateLimit-Policy")
}

// A limit per authenticated user and per route: list it after the auth
// middleware, which puts the principal in the request's context.
func ExampleByClaim() {
	perUser, _ := ratelimit.New(ratelimit.Limit{
		Name:     "per-user",
		Requests: 1, Per: time.Hour,
		Key:   ratelimit.ByClaim("sub"),
		Scope: ratelimit.PerRoute,
	})
	h := perUser.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, c := range []struct{ user, route string }{{"alice", "POST /reports"}, {"alice", "POST /reports"}, {"alice", "POST /exports"}, {"bob", "POST /reports"}} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		ctx := gateway.WithRoute(r.Context(), c.route)
		ctx = gateway.WithPrincipal(ctx, &gateway.Principal{Scheme: "jwt", Subject: c.user})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r.WithContext(ctx))
		fmt.Println(c.user, c.route, w.Code)
	}
	// Output:
	// alice POST /reports 200
	// alice POST /reports 429
	// alice POST /exports 200
	// bob POST /reports 200
}

// Instances of a gateway share a limit through Redis: the same Name, the
// same Redis.
func ExampleWithRedis() {
	client := redis.NewClient(&redis.Options{
		Addr:                  "127.0.0.1:6379",
		ContextTimeoutEnabled: true, // lets WithRedisTimeout interrupt a stuck Redis
	})
	defer client.Close()
	shared, err := ratelimit.New(ratelimit.Limit{
		Name:     "search",
		Requests: 1000, Per: time.Minute, Burst: 100,
		Key:   ratelimit.AllClients(),
		Scope: ratelimit.PerRoute,
	}, ratelimit.WithRedis(client), ratelimit.WithRedisTimeout(20*time.Millisecond), ratelimit.WithFailClosed())
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = shared.Middleware // list it on the search route of every instance
}

// One limiter on two routes of a gateway: with AcrossRoutes a client has
// its budget once, whichever routes it spends it on.
func Example() {
	perClient, err := ratelimit.New(ratelimit.Limit{
		Name:     "per-client",
		Requests: 2, Per: time.Minute,
		Key:   ratelimit.ByClientIP(), // the address the gateway vouches for
		Scope: ratelimit.AcrossRoutes,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	g, err := gateway.New(gateway.WithRoutes(
		gateway.Route{Pattern: "GET /orders", Handler: ok, Middleware: []gateway.Middleware{perClient.Middleware}},
		gateway.Route{Pattern: "GET /invoices", Handler: ok, Middleware: []gateway.Middleware{perClient.Middleware}},
	))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	for _, path := range []string{"/orders", "/invoices", "/orders"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode, resp.Header.Get("RateLimit"))
	}
	// Output:
	// /orders 200 "per-client";r=1;t=30
	// /invoices 200 "per-client";r=0;t=30
	// /orders 429 "per-client";r=0;t=30
}

// Configuration errors come all at once, each naming its field or
// option.
func ExampleNew_errors() {
	_, err := ratelimit.New(ratelimit.Limit{Name: "per-client", Per: time.Minute, Key: ratelimit.ByHeader("")},
		ratelimit.WithMaxKeys(0))
	fmt.Println(err)
	// Output:
	// ratelimit: Limit.Requests (0): must be positive
	// ratelimit: Limit.Key: ByHeader(""): not a valid header name
	// ratelimit: Limit.Scope: required (PerRoute or AcrossRoutes)
	// ratelimit: WithMaxKeys(0): must be positive
}
