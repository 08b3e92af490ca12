package main

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// getOK sends GET path and fails the test unless the answer is a 200.
func getOK(t *testing.T, b *bff, path string) *restRun {
	t.Helper()
	r, err := b.get(t.Context(), path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s; want 200", path, r.status, r.body)
	}
	return r
}

// decodeDoc decodes a REST answer's document.
func decodeDoc(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("the answer %s is not a JSON object: %v", body, err)
	}
	return doc
}

// TestRESTStatusPolicy fails, slows and misses upstreams, each on a
// fresh system, and checks the REST BFF's status, its partial and failed
// fields and header: an optional part (the reviews) that fails or times
// out leaves a 200 without it; a required one fails the answer with its
// upstream's 4xx, or 502, never 500.
func TestRESTStatusPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		path    string
		fault   func(s *services) (restore func())
		status  int
		fields  []string // the document's top-level fields
		meta    string   // the field naming what failed, as JSON
		partial string   // the X-Aggregate-Partial header
	}{{
		name:   "all up",
		path:   "/web/orders/1001",
		status: http.StatusOK,
		fields: []string{"customer", "order", "products", "reviews"},
	}, {
		name:    "reviews down",
		path:    "/web/orders/1001",
		fault:   failing(func(s *services) *service { return s.reviews }),
		status:  http.StatusOK,
		fields:  []string{aggregate.PartialField, "customer", "order", "products"},
		meta:    `{"reviews":{"error":"status","status":500}}`,
		partial: "reviews",
	}, {
		name:    "reviews slower than their timeout",
		path:    "/web/orders/1001",
		fault:   func(s *services) func() { return s.reviews.hold() },
		status:  http.StatusOK,
		fields:  []string{aggregate.PartialField, "customer", "order", "products"},
		meta:    `{"reviews":{"error":"timeout"}}`,
		partial: "reviews",
	}, {
		name:   "customers down",
		path:   "/web/orders/1001",
		fault:  failing(func(s *services) *service { return s.customers }),
		status: http.StatusBadGateway,
		fields: []string{aggregate.FailedField},
		meta:   `{"customer":{"error":"status","status":500}}`,
	}, {
		name:   "products down",
		path:   "/mobile/orders/1001",
		fault:  failing(func(s *services) *service { return s.products }),
		status: http.StatusBadGateway,
		fields: []string{aggregate.FailedField},
		meta:   `{"products":{"error":"status","status":500}}`,
	}, {
		name:   "orders down",
		path:   "/web/orders/1001",
		fault:  failing(func(s *services) *service { return s.orders }),
		status: http.StatusBadGateway,
		fields: []string{aggregate.FailedField},
		meta:   `{"order":{"error":"status","status":500}}`,
	}, {
		name:   "no such order",
		path:   "/web/orders/9999",
		status: http.StatusNotFound,
		fields: []string{aggregate.FailedField},
		meta:   `{"order":{"error":"status","status":404}}`,
	}, {
		name:   "no such client type",
		path:   "/tv/orders/1001",
		status: http.StatusNotFound,
		fields: []string{aggregate.ErrorField},
		meta:   `"unknown_client"`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newTestBFF(t)
			if tc.fault != nil {
				defer tc.fault(b.svcs)()
			}
			r, err := b.get(t.Context(), tc.path)
			if err != nil {
				t.Fatalf("GET %s: %v", tc.path, err)
			}
			if r.status != tc.status {
				t.Errorf("status = %d; want %d (body %s)", r.status, tc.status, r.body)
			}
			fields, err := r.fields()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(fields, tc.fields) {
				t.Errorf("fields = %v; want %v (body %s)", fields, tc.fields, r.body)
			}
			if tc.meta != "" {
				got, err := r.field(tc.fields[0])
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.meta {
					t.Errorf("%s = %s; want %s", tc.fields[0], got, tc.meta)
				}
			}
			if got := r.header.Get(aggregate.PartialHeader); got != tc.partial {
				t.Errorf("%s = %q; want %q", aggregate.PartialHeader, got, tc.partial)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", ct)
			}
		})
	}
}

// failing returns a fault function that makes the service answer 500.
func failing(svc func(*services) *service) func(*services) func() {
	return func(s *services) func() {
		svc(s).failing.Store(true)
		return func() { svc(s).failing.Store(false) }
	}
}

// TestRESTShapes checks each client type's document: the web gets the
// parts as merged (the order, its customer, the products of its items
// and their reviews), the mobile app five fields of them, renamed.
func TestRESTShapes(t *testing.T) {
	b, _ := newTestBFF(t)
	webRun := getOK(t, b, "/web/orders/1003")
	web := decodeDoc(t, webRun.body)
	order, _ := web["order"].(map[string]any)
	customer, _ := web["customer"].(map[string]any)
	if order["id"] != "1003" || customer["id"] != order["customer_id"] {
		t.Fatalf("web: order %v, customer %v; want order 1003 and its customer", order, customer)
	}
	var itemIDs, productIDs, reviewed []string
	for _, it := range order["items"].([]any) {
		itemIDs = append(itemIDs, it.(map[string]any)["product_id"].(string))
	}
	for _, p := range web["products"].([]any) {
		productIDs = append(productIDs, p.(map[string]any)["id"].(string))
	}
	for _, r := range web["reviews"].([]any) {
		if id := r.(map[string]any)["product_id"].(string); !slices.Contains(reviewed, id) {
			reviewed = append(reviewed, id)
		}
	}
	slices.Sort(itemIDs)
	slices.Sort(productIDs)
	slices.Sort(reviewed)
	if !slices.Equal(productIDs, itemIDs) || !slices.Equal(reviewed, itemIDs) {
		t.Errorf("web: products %v, reviews of %v; want those of the items %v", productIDs, reviewed, itemIDs)
	}

	mobileRun := getOK(t, b, "/mobile/orders/1003")
	mobile := decodeDoc(t, mobileRun.body)
	want := map[string]any{
		"id": order["id"], "status": order["status"], "total": order["total"],
		"placed": order["placed_at"], "customer": customer["name"],
	}
	if !maps.Equal(mobile, want) {
		t.Errorf("mobile = %v; want %v", mobile, want)
	}
	if len(mobileRun.body) >= len(webRun.body)/4 {
		t.Errorf("mobile: %d bytes; want less than a quarter of the web's %d", len(mobileRun.body), len(webRun.body))
	}
}

// TestRESTCache checks the two levels of the REST BFF's cache: the
// mobile page after the web one fetches only the order and the reviews
// (the customer and the products, cached by the web's parts, are shared
// across client types); the web page again runs no part (its document is
// cached); and a cached customer stands in for a customers service that
// is down.
func TestRESTCache(t *testing.T) {
	b, rec := newTestBFF(t)
	counted := func(path string) (*restRun, calls) {
		t.Helper()
		before := b.svcs.counts()
		r := getOK(t, b, path)
		return r, b.svcs.counts().since(before)
	}
	web, c := counted("/web/orders/1003")
	if c.total() != 4 {
		t.Errorf("web: upstream calls %v; want one per upstream", c)
	}
	_, c = counted("/mobile/orders/1003")
	if want := (calls{"orders GET /orders/{id}": 1, "reviews GET /reviews": 1}); !maps.Equal(c, want) {
		t.Errorf("mobile: upstream calls %v; want %v", c, want)
	}
	again, c := counted("/web/orders/1003")
	if c.total() != 0 || string(again.body) != string(web.body) {
		t.Errorf("web again: upstream calls %v, body %s; want none and the first answer", c, again.body)
	}

	// The mobile page's customer and products parts came from the cache.
	outcomes := partOutcomes(t, rec, 4+4)
	for part, want := range map[string][]string{
		"order":    {aggregate.OutcomeOK, aggregate.OutcomeOK},
		"customer": {aggregate.OutcomeOK, aggregate.OutcomeCached},
		"products": {aggregate.OutcomeOK, aggregate.OutcomeCached},
		"reviews":  {aggregate.OutcomeOK, aggregate.OutcomeOK},
	} {
		if got := outcomes[part]; !slices.Equal(got, want) {
			t.Errorf("part %s: outcomes %v; want %v", part, got, want)
		}
	}

	b.svcs.customers.failing.Store(true)
	defer b.svcs.customers.failing.Store(false)
	r, c := counted("/mobile/orders/1003?again")
	if c["customers GET /customers/{id}"] != 0 || decodeDoc(t, r.body)["customer"] != "Alan Turing" {
		t.Errorf("customers down: calls %v, body %s; want the cached customer", c, r.body)
	}
}

// partOutcomes waits for n part spans and returns the outcomes of each
// part, in the order their spans ended.
func partOutcomes(t *testing.T, rec *tracetest.SpanRecorder, n int) map[string][]string {
	t.Helper()
	spans := waitSpans(t, rec, aggregate.SpanPart, n)
	out := map[string][]string{}
	for _, s := range spans {
		part := attr(s, aggregate.AttrPart).AsString()
		out[part] = append(out[part], attr(s, aggregate.AttrOutcome).AsString())
	}
	return out
}

// waitSpans waits until rec holds at least n ended spans named name, and
// returns them.
func waitSpans(t *testing.T, rec *tracetest.SpanRecorder, name string, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var spans []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == name {
				spans = append(spans, s)
			}
		}
		if len(spans) >= n || time.Now().After(deadline) {
			if len(spans) < n {
				t.Fatalf("%d %s spans ended; want %d", len(spans), name, n)
			}
			return spans
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRESTCollapse sends eight identical requests while the orders
// service holds the first one's call: each upstream is called once,
// every request gets the same document, and the requests that joined the
// first one's aggregation say so on their span, with a link to it.
func TestRESTCollapse(t *testing.T) {
	b, rec := newTestBFF(t)
	const n = 8
	runs, c, err := concurrentGets(t.Context(), b, "/web/orders/1006", n)
	if err != nil {
		t.Fatal(err)
	}
	want := calls{"orders GET /orders/{id}": 1, "customers GET /customers/{id}": 1, "products GET /products": 1, "reviews GET /reviews": 1}
	if !maps.Equal(c, want) {
		t.Errorf("upstream calls = %v; want %v", c, want)
	}
	for i, r := range runs {
		if r.status != http.StatusOK || string(r.body) != string(runs[0].body) {
			t.Errorf("request %d: %d %s; want 200 and the same document as the others", i, r.status, r.body)
		}
	}
	aggs := waitSpans(t, rec, aggregate.SpanAggregation, n)
	if parts := waitSpans(t, rec, aggregate.SpanPart, 4); len(parts) != 4 {
		t.Errorf("%d part spans; want 4, one aggregation's", len(parts))
	}
	collapsed := 0
	for _, s := range aggs {
		if !attr(s, aggregate.AttrCollapsed).AsBool() {
			continue
		}
		collapsed++
		if len(s.Links()) != 1 {
			t.Errorf("a collapsed aggregation span has %d links; want 1, to the aggregation it joined", len(s.Links()))
		}
	}
	// Each of the others joined the aggregation, unless it reached it
	// only once it had ended, and then found the document in the cache.
	if collapsed == 0 {
		t.Errorf("no aggregation span is marked %s; want the requests that joined the first", aggregate.AttrCollapsed)
	}
}

// TestByItems checks the requests of the products and reviews parts:
// the ids of the order's items, each once, and no request for an order
// without items.
func TestByItems(t *testing.T) {
	req := byItems("/products?ids=")
	order := func(items ...any) aggregate.Results {
		return aggregate.Results{"order": map[string]any{"id": "1", "items": items}}
	}
	item := func(id string) any { return map[string]any{"product_id": id, "quantity": json.Number("1")} }
	r, err := req(nil, order(item("p1"), item("p 2"), item("p1")))
	if err != nil {
		t.Fatalf("byItems() = %v; want a request", err)
	}
	if got, want := r.URL.RequestURI(), "/products?ids=p1,p+2"; got != want {
		t.Errorf("request URI = %q; want %q", got, want)
	}
	if _, err := req(nil, order()); !errors.Is(err, aggregate.ErrSkip) {
		t.Errorf("byItems() of an order without items = %v; want ErrSkip", err)
	}
}
