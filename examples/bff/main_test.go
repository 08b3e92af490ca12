package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestRun runs the whole program and checks each scene's lines: the
// web query's four upstream calls where unbatched resolvers would make
// 49, its span tree with each upstream's call under the resolver that
// needs it, the mobile query's smaller answer and two calls, the
// repeated web query that finds its products in the cache, and the
// partial answer while the reviews service fails.
func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(v, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, tel bytes.Buffer
	start := time.Now()
	if err := run(ctx, &out, &tel); err != nil {
		t.Fatalf("run() = %v; want nil\noutput:\n%s", err, out.String())
	}
	took := time.Since(start)
	got := out.String()
	t.Logf("run took %v; its output:\n%s", took.Round(time.Millisecond), got)
	if took >= 5*time.Second {
		t.Errorf("run took %v; want less than 5s", took)
	}

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
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output does not match %s", re)
		}
	}
	if n := strings.Count(got, "  GET  "); n != 4 {
		t.Errorf("the span tree shows %d client spans; want 4", n)
	}
	if strings.Contains(got, `"Name"`) {
		t.Errorf("stdout contains telemetry JSON; want it on the telemetry writer only")
	}
	for _, want := range []string{`"Name":"POST /graphql"`, `"Name":"GraphQL Request"`, `"Name":"Field: GraphQL field: Order.customer"`, `"Name":"http.client.request.duration"`, `"Name":"cache.requests"`} {
		if !strings.Contains(tel.String(), want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
}
