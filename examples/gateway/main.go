// Command gateway runs an API gateway (package gateway) in front of two
// local services and shows, in short lines, what it does:
//
//   - load balancing: ten requests spread round-robin over the two
//     instances of the catalog service;
//   - a JWT-protected route: 401 without a token, 200 with a token signed
//     by a key the program generates, 403 for a caller without the role;
//   - a rate limit (gateway/ratelimit): the fourth request within a minute
//     gets 429 with Retry-After and the RateLimit headers;
//   - a circuit breaker opening into a fallback: the recommendations
//     service starts failing, the gateway passes its 500s on until the
//     breaker opens, then answers a static fallback marked by the
//     Gateway-Fallback header, and counts it (gateway.fallbacks);
//   - the spans of one request whose first attempt fails and is retried
//     on the other instance: the server span, the client span of each
//     attempt and the retry span between them.
//
// Everything runs on 127.0.0.1 and ends by itself in about a second. Run
// it from the repository root:
//
//	go run ./examples/gateway
//
// The program keeps the spans and metrics in memory for what it prints.
// All of them are written to stderr as JSON, once, at the end, with
// -telemetry=json, and sent to an OpenTelemetry collector over OTLP/HTTP
// when the standard variables say so (see the README's "Try it"):
//
//	go run ./examples/gateway -telemetry=json 2>telemetry.json
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/gateway
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/retry"
)

const (
	issuer   = "https://login.example.test/"
	audience = "shop-api"
)

func main() {
	if err := run(context.Background(), os.Stdout, exampleotel.JSONOut()); err != nil {
		fmt.Fprintln(os.Stderr, "gateway example:", err)
		os.Exit(1)
	}
}

// service is a local upstream that answers "{name} {path}". While
// failing is set it answers 500; while *failNext (shared by the catalog's
// instances) is above 0, it answers one request 503 and counts it down.
type service struct {
	name        string
	failing     atomic.Bool
	failNext    *atomic.Int32
	traceparent atomic.Value // of the last request, a string
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.traceparent.Store(r.Header.Get("Traceparent"))
	w.Header().Set("X-Served-By", s.name)
	switch {
	case s.failing.Load():
		http.Error(w, s.name+": database down", http.StatusInternalServerError)
	case s.failNext != nil && s.failNext.Add(-1) >= 0:
		http.Error(w, s.name+": overloaded", http.StatusServiceUnavailable)
	default:
		fmt.Fprintf(w, "%s %s", s.name, r.URL.Path)
	}
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

	failNext := new(atomic.Int32)
	catalogA := &service{name: "catalog-a", failNext: failNext}
	catalogB := &service{name: "catalog-b", failNext: failNext}
	recs := &service{name: "recommendations"}
	var servers []*httptest.Server
	for _, s := range []http.Handler{catalogA, catalogB, recs} {
		servers = append(servers, httptest.NewServer(s))
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()

	// The identity provider's signing key, made for this run; the gateway
	// knows its public half and accepts ES256 only, with this issuer and
	// audience.
	idpKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	authn, err := auth.New(
		auth.WithKeys(auth.Key{ID: "idp-1", Algorithm: "ES256", Key: &idpKey.PublicKey}),
		auth.WithIssuer(issuer), auth.WithAudience(audience),
		auth.WithClaimHeaders(map[string]string{"sub": "X-User-Id"}),
		auth.WithMeterProvider(otelp.mp),
	)
	if err != nil {
		return err
	}
	defer authn.Close()
	// 3 requests a minute per client address, on the routes that list it.
	limit, err := ratelimit.New(ratelimit.Limit{
		Name: "per-client", Requests: 3, Per: time.Minute,
		Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes,
	}, ratelimit.WithMeterProvider(otelp.mp))
	if err != nil {
		return err
	}

	g, err := gateway.New(
		gateway.WithTracerProvider(otelp.tp), gateway.WithMeterProvider(otelp.mp),
		gateway.WithUpstreams(
			gateway.Upstream{
				Name:    "catalog",
				Targets: []gateway.Target{{URL: servers[0].URL}, {URL: servers[1].URL}},
				Balance: gateway.RoundRobin,
				// A 503 is retried once, on the other instance.
				Retry: &gateway.Retry{Attempts: 2, Backoff: retry.Constant(5 * time.Millisecond)},
			},
			gateway.Upstream{
				Name:    "recommendations",
				Targets: []gateway.Target{{URL: servers[2].URL}},
				Breaker: &gateway.Breaker{Options: []circuitbreaker.Option{
					circuitbreaker.WithConsecutiveFailures(3),
					circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
						fmt.Fprintf(out, "  breaker %s: %s → %s\n", c.Breaker, c.From, c.To)
					}),
				}},
			},
		),
		gateway.WithRoutes(
			gateway.Route{Pattern: "GET /api/items/{id}", Upstream: "catalog", Rewrite: "/items/{id}", Timeout: 5 * time.Second},
			gateway.Route{Pattern: "GET /api/orders/{id}", Upstream: "catalog", StripPrefix: "/api",
				Middleware: []gateway.Middleware{authn.Middleware(auth.RequireAnyRole("customer"))}},
			gateway.Route{Pattern: "GET /api/search", Upstream: "catalog", StripPrefix: "/api",
				Middleware: []gateway.Middleware{limit.Middleware}},
			gateway.Route{Pattern: "GET /api/recommendations", Upstream: "recommendations", StripPrefix: "/api",
				Fallback: &gateway.Fallback{
					Header: http.Header{"Content-Type": {"application/json"}},
					Body:   []byte(`{"items":[]}`),
				}},
		),
	)
	if err != nil {
		return err
	}
	defer g.Close()
	front := httptest.NewServer(g)
	defer front.Close()
	client := front.Client()
	get := func(path string, header ...string) *response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return &response{err: err}
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return &response{code: resp.StatusCode, header: resp.Header, body: strings.TrimSpace(string(body))}
	}

	fmt.Fprintln(out, "== load balancing: 10 × GET /api/items/{id}, round-robin over two instances")
	served := map[string]int{}
	for i := range 10 {
		r := get(fmt.Sprintf("/api/items/%d", i+1))
		served[r.header.Get("X-Served-By")+", "+r.status()]++
	}
	for _, k := range []string{"catalog-a, 200", "catalog-b, 200"} {
		fmt.Fprintf(out, "  %s: %d requests\n", k, served[k])
	}

	fmt.Fprintln(out, "== JWT: GET /api/orders/{id} needs a token (ES256) with the role customer")
	token := func(sub string, roles ...string) string {
		t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"sub": sub, "roles": roles, "iss": issuer, "aud": audience,
			"exp": time.Now().Add(time.Minute).Unix(),
		})
		t.Header["kid"] = "idp-1"
		s, _ := t.SignedString(idpKey)
		return "Bearer " + s
	}
	r := get("/api/orders/7")
	fmt.Fprintf(out, "  no token:               %s, WWW-Authenticate: %s\n", r.status(), r.header.Get("WWW-Authenticate"))
	r = get("/api/orders/7", "Authorization", token("alice", "customer"))
	fmt.Fprintf(out, "  alice (customer):       %s %q\n", r.status(), r.body)
	r = get("/api/orders/7", "Authorization", token("mallory", "guest"))
	fmt.Fprintf(out, "  mallory (guest):        %s %s\n", r.status(), r.body)
	r = get("/api/orders/7", "Authorization", token("alice", "customer")+"x")
	fmt.Fprintf(out, "  tampered signature:     %s, WWW-Authenticate: %s\n", r.status(), r.header.Get("WWW-Authenticate"))

	fmt.Fprintln(out, "== rate limit: 3 requests a minute per client on GET /api/search")
	for i := range 4 {
		r := get("/api/search?q=lamp")
		fmt.Fprintf(out, "  request %d: %s  RateLimit: %s", i+1, r.status(), r.header.Get("RateLimit"))
		if r.code == http.StatusTooManyRequests {
			fmt.Fprintf(out, "  Retry-After: %s  RateLimit-Policy: %s", r.header.Get("Retry-After"), r.header.Get("RateLimit-Policy"))
		}
		fmt.Fprintln(out)
	}

	fmt.Fprintln(out, "== breaker and fallback: GET /api/recommendations, the breaker opens after 3 failures in a row")
	fallbacks := 0
	for i := range 8 {
		if i == 2 {
			fmt.Fprintln(out, "  (the recommendations service starts failing)")
			recs.failing.Store(true)
		}
		r := get("/api/recommendations")
		line := fmt.Sprintf("  request %d: %s %s", i+1, r.status(), r.body)
		if f := r.header.Get(gateway.FallbackHeader); f != "" {
			fallbacks++
			line += fmt.Sprintf("  (%s: %s)", gateway.FallbackHeader, f)
		}
		fmt.Fprintln(out, line)
	}
	counted, err := otelp.fallbacks(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  fallbacks: %d seen by the client, %d counted by gateway.fallbacks\n", fallbacks, counted)

	fmt.Fprintln(out, "== spans of one request: GET /api/items/42, its first attempt answered 503 and retried")
	if err := otelp.tp.ForceFlush(ctx); err != nil {
		return err
	}
	before := len(otelp.spans.Ended())
	failNext.Store(1)
	r = get("/api/items/42")
	fmt.Fprintf(out, "  answer: %s %q\n", r.status(), r.body)
	names := map[string]string{}
	for i, s := range []*service{catalogA, catalogB, recs} {
		names[servers[i].Listener.Addr().String()] = s.name
	}
	spans := otelp.spans.Ended()[before:]
	printTree(out, spans, names)
	// The instance that answered got the trace context of its attempt:
	// the trace's ID, and the ID of the client span as its parent.
	last := spans[0]
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindClient && s.StartTime().After(last.StartTime()) {
			last = s
		}
	}
	who := map[string]*service{"catalog-a": catalogA, "catalog-b": catalogB}[r.header.Get("X-Served-By")]
	if who == nil {
		return fmt.Errorf("the answer came from %q, not a catalog instance", r.header.Get("X-Served-By"))
	}
	got, _ := who.traceparent.Load().(string)
	match := "the trace above, parent: the last client span"
	if got != fmt.Sprintf("00-%s-%s-01", last.SpanContext().TraceID(), last.SpanContext().SpanID()) {
		match = "NOT the last client span's context"
	}
	fmt.Fprintf(out, "  %s received traceparent %s (%s)\n", who.name, got, match)

	// Flush the telemetry while the gateway is open: Close unregisters
	// its metrics (gateway.fallbacks, gateway.upstream.*), which would
	// then be missing from the last export.
	return otelp.shutdown(ctx)
}

// response is what the client got.
type response struct {
	code   int
	header http.Header
	body   string
	err    error
}

func (r *response) status() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprint(r.code)
}
