package aggregate_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// serve starts a local upstream that answers every request with v.
func serve(v any) *httptest.Server {
	b, _ := json.Marshal(v)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
}

// An order page: the order and its reviews at once, then the order's
// customer. The reviews service is down, and optional: the page comes
// without them, and says so.
func ExampleNew() {
	orders := serve(map[string]any{"id": 42, "customer_id": "c-7"})
	defer orders.Close()
	customers := serve(map[string]any{"name": "Ada"})
	defer customers.Close()
	reviews := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer reviews.Close()

	page, err := aggregate.New([]aggregate.Part{
		{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
		{Name: "customer", Upstream: "customers", Path: "/customers/{order.customer_id}"},
		{Name: "reviews", Upstream: "reviews", Path: "/reviews?order={id}", Optional: true, Timeout: time.Second},
	}, aggregate.WithShapes(aggregate.FromHeader("X-Client"), map[string]aggregate.Shape{
		"mobile": aggregate.Select(map[string]string{"id": "order.id", "customer": "customer.name"}),
	}))
	if err != nil {
		log.Fatal(err)
	}
	g, err := gateway.New(
		gateway.WithUpstreams(
			gateway.Upstream{Name: "orders", Targets: []gateway.Target{{URL: orders.URL}}},
			gateway.Upstream{Name: "customers", Targets: []gateway.Target{{URL: customers.URL}}},
			gateway.Upstream{Name: "reviews", Targets: []gateway.Target{{URL: reviews.URL}}},
		),
		gateway.WithRoutes(gateway.Route{
			Pattern: "GET /pages/orders/{id}", Handler: page, Timeout: 5 * time.Second,
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	for _, client := range []string{"web", "mobile"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/pages/orders/42", nil)
		req.Header.Set("X-Client", client)
		resp, err := srv.Client().Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(client, resp.StatusCode, resp.Header.Get(aggregate.PartialHeader))
		fmt.Println(string(body))
	}
	// Output:
	// web 200 reviews
	// {"_partial":{"reviews":{"error":"status","status":503}},"customer":{"name":"Ada"},"order":{"customer_id":"c-7","id":42}}
	// mobile 200 reviews
	// {"_partial":{"reviews":{"error":"status","status":503}},"customer":"Ada","id":42}
}

// Select keeps the fields a client needs, under the names it wants.
func ExampleSelect() {
	shape := aggregate.Select(map[string]string{
		"id":            "order.id",
		"customer.name": "customer.full_name",
		"first_item":    "order.items.0.sku",
	})
	doc := map[string]any{
		"order":    map[string]any{"id": 42, "items": []any{map[string]any{"sku": "A-1"}}, "internal": "x"},
		"customer": map[string]any{"full_name": "Ada Lovelace", "email": "ada@example.com"},
	}
	b, _ := json.Marshal(shape(doc))
	fmt.Println(string(b))
	// Output:
	// {"customer":{"name":"Ada Lovelace"},"first_item":"A-1","id":42}
}

// The dependency graph of a page: the order comes first, the customer
// when the order has named it. When a required part fails, so does the
// page, with that part's status, and the parts that depend on it are
// not called.
func Example() {
	var customerCalls atomic.Int32
	orders := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/orders/42" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id": 42, "customer_id": "c-7"}`)
	}))
	defer orders.Close()
	customers := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		customerCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id": %q, "name": "Ada"}`, r.URL.Path[len("/customers/"):])
	}))
	defer customers.Close()

	page, err := aggregate.New([]aggregate.Part{
		{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
		{Name: "customer", Upstream: "customers", Path: "/customers/{order.customer_id}"},
	})
	if err != nil {
		log.Fatal(err)
	}
	g, err := gateway.New(
		gateway.WithUpstreams(
			gateway.Upstream{Name: "orders", Targets: []gateway.Target{{URL: orders.URL}}},
			gateway.Upstream{Name: "customers", Targets: []gateway.Target{{URL: customers.URL}}},
		),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /pages/orders/{id}", Handler: page, Timeout: 5 * time.Second}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	for _, id := range []string{"42", "43"} {
		resp, err := srv.Client().Get(srv.URL + "/pages/orders/" + id)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	fmt.Println("customer calls:", customerCalls.Load())
	// Output:
	// 200 {"customer":{"id":"c-7","name":"Ada"},"order":{"customer_id":"c-7","id":42}}
	// 404 {"_failed":{"order":{"error":"status","status":404}}}
	// customer calls: 1
}
