package main

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestBFF starts the system with its spans kept in a recorder.
func newTestBFF(t *testing.T) (*bff, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	b, err := start(tp, noop.NewMeterProvider())
	if err != nil {
		t.Fatalf("start() = %v; want nil", err)
	}
	t.Cleanup(b.close)
	return b, rec
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

const fieldPrefix = "Field: GraphQL field: "

// TestResolverSpansParentUpstreamCalls checks the trace of the web query:
// graphql-go's request span under the gateway's server span, every
// resolver span under it, and each upstream's one client span under the
// span of the resolver that needs that upstream's data.
func TestResolverSpansParentUpstreamCalls(t *testing.T) {
	b, rec := newTestBFF(t)
	r, err := b.query(t.Context(), webQuery, false)
	if err != nil {
		t.Fatalf("query() = %v; want nil", err)
	}
	spans, err := requestSpans(t.Context(), rec, 0)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var server, request sdktrace.ReadOnlySpan
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
		switch {
		case s.SpanKind() == trace.SpanKindServer:
			server = s
		case s.Name() == "GraphQL Request":
			request = s
		}
	}
	if server == nil || request == nil {
		t.Fatalf("spans lack the server span or the GraphQL Request span")
	}
	if got := attr(server, semconv.HTTPRouteKey).AsString(); got != "/graphql" {
		t.Errorf("server span %s = %q; want /graphql", semconv.HTTPRouteKey, got)
	}
	if request.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("GraphQL Request's parent is not the server span")
	}
	// under reports whether s descends from anc.
	under := func(s, anc sdktrace.ReadOnlySpan) bool {
		for p, ok := byID[s.Parent().SpanID()]; ok; p, ok = byID[p.Parent().SpanID()] {
			if p == anc {
				return true
			}
		}
		return false
	}
	parentField := map[string]string{
		"orders":    "Query.orders",
		"customers": "Order.customer",
		"products":  "OrderItem.product",
		"reviews":   "Product.rating",
	}
	clients := map[string]int{}
	for _, s := range spans {
		if strings.HasPrefix(s.Name(), fieldPrefix) && !under(s, request) {
			t.Errorf("resolver span %q is not under GraphQL Request", s.Name())
		}
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		addr := net.JoinHostPort(attr(s, semconv.ServerAddressKey).String(), attr(s, semconv.ServerPortKey).String())
		upstream := b.names[addr]
		clients[upstream]++
		p, ok := byID[s.Parent().SpanID()]
		if !ok {
			t.Errorf("client span to %s has no parent in the trace", upstream)
			continue
		}
		if got, want := strings.TrimPrefix(p.Name(), fieldPrefix), parentField[upstream]; got != want {
			t.Errorf("client span to %s (%q): parent %q; want the resolver span of %s", upstream, upstream, p.Name(), want)
		}
		if code := attr(s, semconv.HTTPResponseStatusCodeKey).AsInt64(); code != http.StatusOK {
			t.Errorf("client span to %s: status %d; want 200", upstream, code)
		}
	}
	want := map[string]int{"orders": 1, "customers": 1, "products": 1, "reviews": 1}
	if !maps.Equal(clients, want) {
		t.Errorf("client spans by upstream = %v; want %v", clients, want)
	}
	if got := r.calls.total(); got != 4 {
		t.Errorf("upstream calls = %v; want 4", r.calls)
	}
}

// TestBatching runs queries of several shapes on a fresh system each and
// checks the upstream calls they make: one per upstream and level,
// whatever the number of orders, and none for what is not selected.
func TestBatching(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		want        calls
		check       func(t *testing.T, body string)
	}{{
		name:  "three orders",
		query: `{ orders(first: 3) { id customer { name } items { product { name } } } }`,
		want:  calls{"orders GET /orders": 1, "customers GET /customers": 1, "products GET /products": 1},
	}, {
		name:  "ten orders with reviews",
		query: `{ orders { items { product { reviews(first: 1) { stars } rating } } } }`,
		want:  calls{"orders GET /orders": 1, "products GET /products": 1, "reviews GET /reviews": 1},
	}, {
		name:  "no nested selection",
		query: `{ orders { id total } }`,
		want:  calls{"orders GET /orders": 1},
	}, {
		name:  "no orders",
		query: `{ orders(first: 0) { id customer { name } } }`,
		want:  calls{},
		check: func(t *testing.T, body string) {
			if body != `{"data":{"orders":[]}}` {
				t.Errorf("body = %s; want no orders", body)
			}
		},
	}, {
		name:  "one order",
		query: `{ order(id: "1003") { customer { name } items { product { name reviews { author } } } } }`,
		want:  calls{"orders GET /orders/{id}": 1, "customers GET /customers": 1, "products GET /products": 1, "reviews GET /reviews": 1},
		check: func(t *testing.T, body string) {
			if !strings.Contains(body, `"customer":{"name":"Alan Turing"}`) || strings.Count(body, `"product":{`) != 3 {
				t.Errorf("body = %s; want Alan Turing's order of three items", body)
			}
		},
	}, {
		name:  "unknown order",
		query: `{ order(id: "9999") { id } }`,
		want:  calls{"orders GET /orders/{id}": 1},
		check: func(t *testing.T, body string) {
			if body != `{"data":{"order":null}}` {
				t.Errorf("body = %s; want a null order", body)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newTestBFF(t)
			r, err := b.query(t.Context(), tc.query, false)
			if err != nil {
				t.Fatalf("query() = %v; want nil", err)
			}
			if !maps.Equal(r.calls, tc.want) {
				t.Errorf("upstream calls = %v; want %v", r.calls, tc.want)
			}
			if tc.check != nil {
				tc.check(t, string(r.body))
			}
		})
	}
}

// TestProductsCached checks that a second request takes the products
// from the cache, and fetches only those it has not seen.
func TestProductsCached(t *testing.T) {
	b, _ := newTestBFF(t)
	if _, err := b.query(t.Context(), `{ orders(first: 1) { items { product { name } } } }`, false); err != nil {
		t.Fatal(err)
	}
	r, err := b.query(t.Context(), `{ orders(first: 2) { items { product { name } } } }`, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (calls{"orders GET /orders": 1, "products GET /products": 1}); !maps.Equal(r.calls, want) {
		t.Errorf("upstream calls = %v; want %v (order 1002's products, not 1001's)", r.calls, want)
	}
	r, err = b.query(t.Context(), `{ orders(first: 2) { items { product { name } } } }`, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (calls{"orders GET /orders": 1}); !maps.Equal(r.calls, want) {
		t.Errorf("upstream calls = %v; want %v", r.calls, want)
	}
}

// TestPartialAnswer fails an upstream: the fields that need it are null,
// each with an error naming the upstream and its status, and the rest
// of the answer is there, with status 200.
func TestPartialAnswer(t *testing.T) {
	for _, tc := range []struct {
		failing string
		null    string // a field the failure makes null
		kept    string // a field still in the answer
		errors  int    // one per resolver that needed the upstream
	}{
		{failing: "reviews", null: `"rating":null`, kept: `"name":"Desk lamp"`, errors: 19},
		{failing: "customers", null: `"customer":null`, kept: `"rating":3`, errors: 10},
	} {
		t.Run(tc.failing, func(t *testing.T) {
			b, _ := newTestBFF(t)
			svc := map[string]*service{"reviews": b.svcs.reviews, "customers": b.svcs.customers}[tc.failing]
			svc.failing.Store(true)
			r, err := b.query(t.Context(), webQuery, true)
			if err != nil {
				t.Fatalf("query() = %v; want nil", err)
			}
			body := string(r.body)
			if !strings.Contains(body, tc.null) || !strings.Contains(body, tc.kept) || len(r.orders) != 10 {
				t.Errorf("body = %s; want 10 orders with %s and %s", body, tc.null, tc.kept)
			}
			if len(r.errors) != tc.errors {
				t.Errorf("%d errors; want %d", len(r.errors), tc.errors)
			}
			for _, e := range r.errors {
				var qe struct{ Message string }
				if err := json.Unmarshal(e, &qe); err != nil || qe.Message != "bff: upstream "+tc.failing+" answered 500 Internal Server Error" {
					t.Errorf("error %s; want the upstream's 500", e)
				}
			}
			if n := r.calls[tc.failing+" GET /"+tc.failing]; n != 1 {
				t.Errorf("calls to %s = %d; want 1 (a 500 is not retried)", tc.failing, n)
			}
		})
	}
}

// TestBadRequests checks the endpoint's answers to bodies that are not a
// GraphQL request.
func TestBadRequests(t *testing.T) {
	b, _ := newTestBFF(t)
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"not JSON", "query { orders { id } }", http.StatusBadRequest},
		{"too large", `{"query":"` + strings.Repeat(" ", graphQLBodyBytes) + `{ orders { id } }"}`, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := b.front.Client().Post(b.front.URL+"/graphql", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d; want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// A query that is JSON but not valid GraphQL gets 200 with errors,
	// as GraphQL over HTTP has it for application/json.
	r, err := b.query(t.Context(), `{ orders { nope } }`, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.errors) != 1 || !strings.Contains(string(r.errors[0]), `Cannot query field \"nope\"`) || r.calls.total() != 0 {
		t.Errorf("invalid query: errors %s, calls %v; want one validation error and no call", r.errors, r.calls)
	}
}
