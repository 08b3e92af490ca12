package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/examples/internal/exampletest"
	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// TestRun runs the whole program and checks each scene's lines: the
// web query's four upstream calls where unbatched resolvers would make
// 49, its span tree with each upstream's call under the resolver that
// needs it, the mobile query's smaller answer and two calls, the
// repeated web query that finds its products in the cache, and the
// partial answer while the reviews service fails; then the REST BFF: the
// web page from four calls, the mobile one shaped smaller with its
// customer and products from the cache, the web page again from the
// document cache, a 200 without the reviews while they fail, a 502
// naming the customer while it fails, eight identical requests that make
// one call per upstream, and the span tree of one aggregation.
func TestRun(t *testing.T) {
	got, telOut := exampletest.Run(t, 30*time.Second, run)

	for _, want := range []string{
		"  answer: 3039 bytes, 10 orders; the first:\n",
		"  upstream calls: 4 (customers GET /customers ×1, orders GET /orders ×1, products GET /products ×1, reviews GET /reviews ×1)\n",
		"  without batching, one call per loading resolver: 49 (Order.customer ×10, OrderItem.product ×19, Product.rating ×19, Query.orders ×1)\n",
		"  answer: 827 bytes (the web's: 3039), 10 orders:\n",
		`    {"id":"1001","status":"placed","total":39.9,"customer":{"name":"Ada Lovelace"}}` + "\n",
		"  upstream calls: 2 (customers GET /customers ×1, orders GET /orders ×1)\n",
		"  answer: 3039 bytes, the same answer; upstream calls: 3 (customers GET /customers ×1, orders GET /orders ×1, reviews GET /reviews ×1)\n",
		"  answer: 5373 bytes, 10 orders, 19 ratings null; upstream calls: 3 (customers GET /customers ×1, orders GET /orders ×1, reviews GET /reviews ×1)\n",
		"  errors: 19 × \"bff: upstream reviews answered 500 Internal Server Error\"\n",
		"  at orders.0.items.0.product.rating, orders.1.items.0.product.rating, …\n",

		"== REST web: GET /web/orders/1003, the order page aggregated from the four upstreams\n" +
			"  answer: 200, 891 bytes, fields customer, order, products, reviews\n" +
			"  upstream calls: 4 (customers GET /customers/{id} ×1, orders GET /orders/{id} ×1, products GET /products ×1, reviews GET /reviews ×1)\n",
		"  answer: 200, 103 bytes (the web's: 891):\n" +
			`    {"customer":"Alan Turing","id":"1003","placed":"2026-11-12T10:14:00Z","status":"shipped","total":386.9}` + "\n" +
			"  upstream calls: 2 (orders GET /orders/{id} ×1, reviews GET /reviews ×1); the customer and the products from the cache\n",
		"== REST web again: the whole document from the cache\n" +
			"  answer: 200, 891 bytes, the same answer; upstream calls: 0\n",
		"  answer: 200, 394 bytes, fields _partial, customer, order, products; X-Aggregate-Partial: reviews\n" +
			`  _partial: {"reviews":{"error":"status","status":500}}` + "\n" +
			"  upstream calls: 4 (customers GET /customers/{id} ×1, orders GET /orders/{id} ×1, products GET /products ×1, reviews GET /reviews ×1)\n",
		"  answer: 502 Bad Gateway, the required customer failed:\n" +
			`    {"_failed":{"customer":{"error":"status","status":500}}}` + "\n",
		"== REST: 8 identical concurrent requests → one call per upstream\n" +
			"  GET /web/orders/1006 ×8, the orders service holding the first until all are in: answers 200 ×8, 1 distinct\n" +
			"  upstream calls: 4 (customers GET /customers/{id} ×1, orders GET /orders/{id} ×1, products GET /products ×1, reviews GET /reviews ×1)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output does not contain %q", want)
		}
	}
	for _, re := range []string{
		`(?m)^    POST /graphql +server .*http\.route=/graphql http\.response\.status_code=200$`,
		`(?m)^      GraphQL Request +internal`,
		`(?m)^        Field: GraphQL field: Query\.orders +internal`,
		`(?m)^          GET +client .* orders /orders\?limit=10 http\.response\.status_code=200$`,
		`(?m)^          Field: GraphQL field: Order\.customer +internal .*\n            GET +client .* customers /customers\?ids=c1,c2,c3,c4,c5,c6 http\.response\.status_code=200$`,
		`(?m)^          Field: GraphQL field: Order\.customer ×9 +internal`,
		`(?m)^            Field: GraphQL field: OrderItem\.product +internal .*\n              GET +client .* products /products\?ids=p1,p4,p5,p7,p8,p2,p6,p3 http\.response\.status_code=200$`,
		`(?m)^              Field: GraphQL field: Product\.rating +internal .*\n                GET +client .* reviews /reviews\?product_ids=p1,p4,p5,p7,p8,p2,p6,p3 http\.response\.status_code=200$`,

		`(?m)^    GET /\{client\}/orders/\{id\} +server .* http\.route=/\{client\}/orders/\{id\} http\.response\.status_code=200\n` +
			`      gateway\.aggregation +internal .* client_type=web$`,
		`(?m)^        gateway\.aggregation\.part +internal .* part=order stage=0 outcome=ok\n          GET +client .* orders /orders/1007 http\.response\.status_code=200$`,
		`(?m)^        gateway\.aggregation\.part +internal .* part=customer stage=1 outcome=ok\n          GET +client .* customers /customers/c1 http\.response\.status_code=200$`,
		`(?m)^        gateway\.aggregation\.part +internal .* part=products stage=1 outcome=ok\n          GET +client .* products /products\?ids=p3 http\.response\.status_code=200$`,
		`(?m)^        gateway\.aggregation\.part +internal .* part=reviews stage=1 outcome=ok\n          GET +client .* reviews /reviews\?product_ids=p3 http\.response\.status_code=200$`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output does not match %s", re)
		}
	}
	for _, tree := range []struct{ from, to string }{
		{"== the spans of that query", "== mobile"},
		{"== the spans of one aggregation", ""},
	} {
		_, sec, _ := strings.Cut(got, tree.from)
		if tree.to != "" {
			sec, _, _ = strings.Cut(sec, tree.to)
		}
		if n := strings.Count(sec, "  GET  "); n != 4 {
			t.Errorf("the span tree after %q shows %d client spans; want 4", tree.from, n)
		}
	}
	if strings.Contains(got, `"Name"`) {
		t.Errorf("stdout contains telemetry JSON; want it on the telemetry writer only")
	}
	for _, want := range []string{`"Name":"POST /graphql"`, `"Name":"GraphQL Request"`, `"Name":"Field: GraphQL field: Order.customer"`, `"Name":"http.client.request.duration"`, `"Name":"cache.requests"`,
		`"Name":"` + aggregate.SpanAggregation + `"`, `"Name":"` + aggregate.SpanPart + `"`, `"Name":"` + aggregate.MetricParts + `"`} {
		if !strings.Contains(telOut, want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
}
