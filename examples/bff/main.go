// Command bff runs a backend for frontend (BFF): an API gateway (package
// gateway) in front of four local services (orders, customers, products
// and reviews) that serves a GraphQL endpoint over them, and shows, in
// short lines:
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
//     (package cache) and not fetched.
//
// The resolvers call the upstreams through the gateway's Transport, so
// each call has the upstream's balancing, health checks, breaker and
// retries, as a proxied request would.
//
// Everything runs on 127.0.0.1 and ends by itself in well under a second.
// Run it from the repository root:
//
//	go run ./examples/bff
//
// The spans and metrics are also written to stderr as JSON at the end
// (add 2>/dev/null to hide them), or sent over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set, as in the other examples.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
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
	if err := run(context.Background(), os.Stdout, os.Stderr); err != nil {
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

// run starts the services and the gateway, plays the scenes, writing
// them to out and the telemetry to telemetryOut, and stops everything.
func run(ctx context.Context, out, telemetryOut io.Writer) (err error) {
	otelp, err := newProviders(ctx, telemetryOut)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, otelp.shutdown(context.WithoutCancel(ctx))) }()
	// The gateway sends trace context to upstreams with the global
	// propagator.
	otel.SetTextMapPropagator(propagation.TraceContext{})

	svcs := startServices()
	defer svcs.close()

	// Products change rarely: the resolvers keep them a minute, in
	// memory (an L2 in Redis would share them between BFF instances).
	products, err := cache.New[product](
		cache.WithName("bff.products"), cache.WithTTL(time.Minute),
		cache.WithTracerProvider(otelp.tp), cache.WithMeterProvider(otelp.mp),
	)
	if err != nil {
		return err
	}
	defer products.Close()

	// The resolvers call upstreams through the gateway's Transport, which
	// exists once the gateway does: the gateway starts with its upstreams
	// only, and gets its routes by Update.
	ups := upstreams(svcs)
	g, err := gateway.New(
		gateway.WithTracerProvider(otelp.tp), gateway.WithMeterProvider(otelp.mp),
		gateway.WithUpstreams(ups...),
	)
	if err != nil {
		return err
	}
	defer g.Close()
	var routes []gateway.Route
	gql, err := graphQLRoutes(g.Transport(), products, otelp.tp)
	if err != nil {
		return err
	}
	routes = append(routes, gql...)
	if err := g.Update(gateway.WithUpstreams(ups...), gateway.WithRoutes(routes...)); err != nil {
		return err
	}
	front := httptest.NewServer(g)
	defer front.Close()
	client := front.Client()

	names := map[string]string{}
	for _, svc := range svcs.all() {
		names[svc.server.Listener.Addr().String()] = svc.name
	}
	query := func(q string) (*queryRun, error) {
		before := svcs.counts()
		if err := otelp.tp.ForceFlush(ctx); err != nil {
			return nil, err
		}
		seen := len(otelp.spans.Ended())
		body, _ := json.Marshal(map[string]string{"query": q})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, front.URL+"/graphql", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
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
		var parsed struct {
			Data struct {
				Orders []json.RawMessage `json:"orders"`
			} `json:"data"`
			Errors []json.RawMessage `json:"errors"`
		}
		if err := json.Unmarshal(got, &parsed); err != nil {
			return nil, fmt.Errorf("POST /graphql: %w", err)
		}
		if len(parsed.Errors) > 0 {
			return nil, fmt.Errorf("POST /graphql: errors %s", parsed.Errors)
		}
		spans, err := otelp.requestSpans(ctx, seen)
		if err != nil {
			return nil, err
		}
		return &queryRun{body: got, orders: parsed.Data.Orders, calls: svcs.counts().since(before), spans: spans}, nil
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
	printTree(out, web.spans, names)

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

	// Flush the telemetry while the gateway is open: Close unregisters
	// its metrics, which would then be missing from the last export.
	return otelp.shutdown(ctx)
}

// queryRun is what one GraphQL request gave.
type queryRun struct {
	body   []byte
	orders []json.RawMessage
	calls  calls // the upstream calls it made
	spans  []sdktrace.ReadOnlySpan
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
func (p *providers) requestSpans(ctx context.Context, seen int) ([]sdktrace.ReadOnlySpan, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ended := p.spans.Ended()[seen:]
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
