// Command bff runs a backend for frontend (BFF): an API gateway (package
// gateway) in front of four local services (orders, customers, products
// and reviews) that serves, over the same upstreams, a GraphQL endpoint
// for every client and a REST order page per client type (package
// gateway/aggregate), and shows, in short lines:
//
//   - the web client's query: ten orders with their customer, items,
//     products and ratings, answered with one call to each upstream
//     rather than one per order and item (the N+1 problem), because the
//     resolvers batch their keys per request;
//   - the span tree of that query: the gateway's server span, graphql-go's
//     request span and one span per resolver, and the gateway's client
//     span of each upstream call under the resolver that made it;
//   - the mobile client's query over the same graph: fewer fields, a
//     smaller payload and fewer upstream calls;
//   - the web query again, its products now served from the cache
//     (package cache) and not fetched;
//   - the web query while the reviews service fails: an answer all the
//     same, with the ratings null and an error for each, from one call;
//   - REST web, GET /web/orders/{id}: the order, then its customer (by
//     the order's customer_id), the products of its items and their
//     reviews at once, merged into one JSON document, from one call to
//     each upstream;
//   - REST mobile, GET /mobile/orders/{id}: the same aggregation shaped
//     for the app (a few fields, renamed), a smaller payload, with the
//     customer and the products from the parts' cache;
//   - REST web again: the whole document from the cache, no call;
//   - REST with reviews down: the reviews are optional, so a 200 without
//     them, listed in the document's _partial field and the
//     X-Aggregate-Partial header;
//   - eight identical REST requests at once: one aggregation for all,
//     one call per upstream;
//   - REST with customers down: the customer is required, so a 502 whose
//     document names it in _failed (never a bare 500);
//   - the span tree of one aggregation: gateway.aggregation, a
//     gateway.aggregation.part per part with its stage and outcome, and
//     the gateway's client span of its call under each.
//
// The resolvers and the aggregation's parts call the upstreams through
// the gateway serving the request (gateway.UpstreamTransport), so each
// call has the upstream's balancing, health checks, breaker and retries,
// as a proxied request would.
//
// Everything runs on 127.0.0.1 and ends by itself in well under a second.
// Run it from the repository root:
//
//	go run ./examples/bff
//
// The program keeps the spans and metrics in memory for what it prints.
// All of them are written to stderr as JSON, once, at the end, with
// -telemetry=json, and sent to an OpenTelemetry collector over OTLP/HTTP
// when the standard variables say so (see the README's "Try it"):
//
//	go run ./examples/bff -telemetry=json 2>telemetry.json
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/bff
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/retry"
)

// The two clients' queries: the web page shows everything about the
// latest orders, the mobile list only a line per order.
const (
	webQuery = `query WebOrders {
  orders(first: 10) {
    id status placedAt total
    customer { name email tier }
    items { quantity product { name price rating } }
  }
}`
	mobileQuery = `query MobileOrders {
  orders(first: 10) { id status total customer { name } }
}`
)

func main() {
	if err := run(context.Background(), os.Stdout, exampleotel.JSONOut()); err != nil {
		fmt.Fprintln(os.Stderr, "bff example:", err)
		os.Exit(1)
	}
}

// upstreams are the gateway's upstreams, one per service, with the
// protections every call through the gateway gets.
func upstreams(s *services) []gateway.Upstream {
	var us []gateway.Upstream
	for _, svc := range s.all() {
		us = append(us, gateway.Upstream{
			Name:        svc.name,
			Targets:     []gateway.Target{{URL: svc.server.URL}},
			HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: 5 * time.Second},
			Breaker:     &gateway.Breaker{Options: []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(5)}},
			Retry:       &gateway.Retry{Attempts: 2, Backoff: retry.Constant(5 * time.Millisecond), PerTryTimeout: time.Second},
		})
	}
	return us
}

// bff is the running system: the services, and the gateway in front of
// them serving the BFF's routes on a loopback listener.
type bff struct {
	svcs     *services
	products *cache.Cache[product]
	answers  *cache.Cache[aggregate.Entry] // the REST BFF's parts and documents
	rest     *restHandler
	g        *gateway.Gateway
	front    *httptest.Server
	names    map[string]string // the services' names by address
}

// start starts the services and the gateway, with telemetry through tp
// and mp.
func start(tp trace.TracerProvider, mp metric.MeterProvider) (_ *bff, err error) {
	b := &bff{svcs: startServices(), names: map[string]string{}}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	for _, svc := range b.svcs.all() {
		b.names[svc.server.Listener.Addr().String()] = svc.name
	}

	// Products change rarely: the resolvers keep them a minute, in
	// memory (an L2 in Redis would share them between BFF instances).
	b.products, err = cache.New[product](
		cache.WithName("bff.products"), cache.WithTTL(time.Minute),
		cache.WithTracerProvider(tp), cache.WithMeterProvider(mp),
	)
	if err != nil {
		return nil, err
	}

	// Each client's BFF is a set of routes on the same gateway and
	// upstreams; the GraphQL endpoint serves every client. Its resolvers
	// call the upstreams of the gateway serving the request
	// (gateway.UpstreamTransport), so the routes are built before the
	// gateway is.
	var routes []gateway.Route
	gql, err := graphQLRoutes(gateway.UpstreamTransport(), b.products, tp)
	if err != nil {
		return nil, err
	}
	routes = append(routes, gql...)
	// The REST BFF keeps answers in memory too; an L2 store
	// (cache/rediscache) would share them between BFF instances.
	b.answers, err = cache.New[aggregate.Entry](
		cache.WithName("bff.aggregate"), cache.WithTTL(restCacheTTL),
		cache.WithTracerProvider(tp), cache.WithMeterProvider(mp),
	)
	if err != nil {
		return nil, err
	}
	rest, restH, err := restRoute(b.answers, tp, mp)
	if err != nil {
		return nil, err
	}
	b.rest = restH
	routes = append(routes, rest)
	b.g, err = gateway.New(
		gateway.WithTracerProvider(tp), gateway.WithMeterProvider(mp),
		gateway.WithUpstreams(upstreams(b.svcs)...),
		gateway.WithRoutes(routes...),
	)
	if err != nil {
		return nil, err
	}
	b.front = httptest.NewServer(b.g)
	return b, nil
}

// close stops what start started.
func (b *bff) close() {
	if b.front != nil {
		b.front.Close()
	}
	if b.g != nil {
		_ = b.g.Close()
	}
	if b.products != nil {
		_ = b.products.Close()
	}
	if b.answers != nil {
		_ = b.answers.Close()
	}
	b.svcs.close()
}

// query posts a GraphQL query to the gateway and returns the answer and
// the upstream calls it made; it fails on any status but 200 and on
// GraphQL errors unless partial is set.
func (b *bff) query(ctx context.Context, q string, partial bool) (*queryRun, error) {
	before := b.svcs.counts()
	body, _ := json.Marshal(map[string]string{"query": q})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.front.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.front.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST /graphql: %d %s", resp.StatusCode, bytes.TrimSpace(got))
	}
	r := &queryRun{body: got}
	var parsed struct {
		Data struct {
			Orders []json.RawMessage `json:"orders"`
		} `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(got, &parsed); err != nil {
		return nil, fmt.Errorf("POST /graphql: %w", err)
	}
	if len(parsed.Errors) > 0 && !partial {
		return nil, fmt.Errorf("POST /graphql: errors %s", parsed.Errors)
	}
	r.orders, r.errors = parsed.Data.Orders, parsed.Errors
	r.calls = b.svcs.counts().since(before)
	return r, nil
}

// run starts the system, plays the scenes, writing them to out and the
// telemetry to telemetryOut, and stops everything.
func run(ctx context.Context, out, telemetryOut io.Writer) (err error) {
	otelp, err := newProviders(ctx, telemetryOut)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, otelp.shutdown(context.WithoutCancel(ctx))) }()
	// The gateway sends trace context to upstreams with the global
	// propagator.
	otel.SetTextMapPropagator(propagation.TraceContext{})

	b, err := start(otelp.tp, otelp.mp)
	if err != nil {
		return err
	}
	defer b.close()
	// query runs q and collects the spans of its trace.
	query := func(q string) (*queryRun, error) {
		if err := otelp.tp.ForceFlush(ctx); err != nil {
			return nil, err
		}
		seen := len(otelp.spans.Ended())
		r, err := b.query(ctx, q, false)
		if err != nil {
			return nil, err
		}
		r.spans, err = requestSpans(ctx, otelp.spans, seen)
		return r, err
	}

	fmt.Fprintln(out, "== web: POST /graphql, the web client's query")
	fmt.Fprintln(out, indent(webQuery, "  "))
	web, err := query(webQuery)
	if err != nil {
		return err
	}
	var first bytes.Buffer
	if err := json.Indent(&first, web.orders[0], "  ", "  "); err != nil {
		return err
	}
	fmt.Fprintf(out, "  answer: %d bytes, %d orders; the first:\n  %s\n", len(web.body), len(web.orders), first.String())
	fmt.Fprintf(out, "  upstream calls: %d (%s)\n", web.calls.total(), web.calls)
	resolvers := web.loadingResolvers()
	fmt.Fprintf(out, "  without batching, one call per loading resolver: %d (%s)\n", resolvers.total(), resolvers)

	fmt.Fprintln(out, "== the spans of that query (siblings of the same shape folded, with their count and the longest duration)")
	printTree(out, web.spans, b.names)

	fmt.Fprintln(out, "== mobile: POST /graphql, the mobile client's query over the same graph")
	fmt.Fprintln(out, indent(mobileQuery, "  "))
	mobile, err := query(mobileQuery)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  answer: %d bytes (the web's: %d), %d orders:\n", len(mobile.body), len(web.body), len(mobile.orders))
	for _, o := range mobile.orders {
		fmt.Fprintf(out, "    %s\n", o)
	}
	fmt.Fprintf(out, "  upstream calls: %d (%s)\n", mobile.calls.total(), mobile.calls)

	fmt.Fprintln(out, "== web again: the products come from the cache")
	again, err := query(webQuery)
	if err != nil {
		return err
	}
	same := "the same answer"
	if !bytes.Equal(again.body, web.body) {
		same = "a DIFFERENT answer"
	}
	fmt.Fprintf(out, "  answer: %d bytes, %s; upstream calls: %d (%s)\n", len(again.body), same, again.calls.total(), again.calls)

	fmt.Fprintln(out, "== reviews down: the web query again, the reviews service answering 500")
	b.svcs.reviews.failing.Store(true)
	down, err := b.query(ctx, webQuery, true)
	b.svcs.reviews.failing.Store(false)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  answer: %d bytes, %d orders, %d ratings null; upstream calls: %d (%s)\n",
		len(down.body), len(down.orders), bytes.Count(down.body, []byte(`"rating":null`)), down.calls.total(), down.calls)
	msgs := map[string]int{}
	var paths []string
	for _, e := range down.errors {
		var qe struct {
			Message string `json:"message"`
			Path    []any  `json:"path"`
		}
		if err := json.Unmarshal(e, &qe); err != nil {
			return err
		}
		msgs[qe.Message]++
		p := make([]string, len(qe.Path))
		for i, v := range qe.Path {
			p[i] = fmt.Sprint(v)
		}
		paths = append(paths, strings.Join(p, "."))
	}
	slices.Sort(paths)
	for _, m := range slices.Sorted(maps.Keys(msgs)) {
		fmt.Fprintf(out, "  errors: %d × %q\n", msgs[m], m)
	}
	if len(paths) > 2 {
		paths = append(paths[:2], "…")
	}
	fmt.Fprintf(out, "  at %s\n", strings.Join(paths, ", "))

	if err := showREST(ctx, out, b, otelp); err != nil {
		return err
	}

	// Flush the telemetry while the gateway is open: Close unregisters
	// its metrics, which would then be missing from the last export.
	return otelp.shutdown(ctx)
}

// queryRun is what one GraphQL request gave.
type queryRun struct {
	body   []byte
	orders []json.RawMessage // data.orders
	errors []json.RawMessage
	calls  calls                   // the upstream calls it made
	spans  []sdktrace.ReadOnlySpan // its trace's, when collected
}

// loadingResolvers counts the spans of the resolvers that need an
// upstream's data, by field: what a resolver that calls its upstream
// itself would cost.
func (q *queryRun) loadingResolvers() calls {
	c := calls{}
	for _, s := range q.spans {
		switch f := strings.TrimPrefix(s.Name(), "Field: GraphQL field: "); f {
		case "Query.orders", "Order.customer", "OrderItem.product", "Product.rating", "Product.reviews":
			c[f]++
		}
	}
	return c
}

// requestSpans returns the spans of the first trace that started after
// the first seen spans recorded: a request's, once its server span has
// ended, which the server does just after the client has its answer.
func requestSpans(ctx context.Context, rec interface {
	Ended() []sdktrace.ReadOnlySpan
}, seen int) ([]sdktrace.ReadOnlySpan, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ended := rec.Ended()[seen:]
		for _, s := range ended {
			if s.SpanKind() != trace.SpanKindServer {
				continue
			}
			var spans []sdktrace.ReadOnlySpan
			for _, t := range ended {
				if t.SpanContext().TraceID() == s.SpanContext().TraceID() {
					spans = append(spans, t)
				}
			}
			return spans, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the request's server span did not end")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// indent prefixes each line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
