package gateway_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/httpconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/retry"
)

// setGlobalPropagator makes p the global propagator until the test ends.
// The otel package binds its default propagator for good to the first one
// set; setting an empty one first keeps that default a no-op once the
// test restores it. Tests that call it must not run in parallel.
func setGlobalPropagator(t *testing.T, p propagation.TextMapPropagator) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	otel.SetTextMapPropagator(p)
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
}

// scenario runs a gateway through what it records: a routed request, a
// retry, a breaker opening into a fallback, an ejection, a health check.
func scenario(t *testing.T, tel *telemetrytest.Providers) (traceparent chan string) {
	traceparent = make(chan string, 16)
	ok := newBackend(t, "ok")
	ok.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case traceparent <- r.Header.Get("Traceparent"):
		default:
		}
		fmt.Fprint(w, "ok")
	})
	flaky := newBackend(t, "flaky")
	flaky.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	_, srv := start(t,
		gateway.WithTracerProvider(tel.TracerProvider), gateway.WithMeterProvider(tel.MeterProvider),
		gateway.WithUpstreams(
			gateway.Upstream{Name: "orders", Targets: []gateway.Target{flaky.target(), ok.target()},
				HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: time.Hour},
				Outlier:     &gateway.Outlier{ConsecutiveFailures: 1},
				Retry:       &gateway.Retry{Backoff: retry.Constant(0)}},
			gateway.Upstream{Name: "stock", Targets: []gateway.Target{flaky.target()},
				Breaker: &gateway.Breaker{Options: []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(1)}}}),
		gateway.WithRoutes(
			gateway.Route{Pattern: "GET /orders/{id}", Upstream: "orders"},
			gateway.Route{Pattern: "GET /stock/{sku}", Upstream: "stock", Fallback: &gateway.Fallback{Body: []byte("[]")}},
			gateway.Route{Pattern: "GET /raw/stock/{sku}", Upstream: "stock"}))
	for range 3 {
		if resp, body := get(t, srv, "/orders/42"); resp.StatusCode != 200 {
			t.Fatalf("GET /orders/42: %d %q", resp.StatusCode, body)
		}
	}
	for range 2 {
		get(t, srv, "/stock/7") // 502 passed on, then the breaker is open
	}
	if resp, _ := get(t, srv, "/raw/stock/7"); resp.StatusCode != 503 {
		t.Fatalf("GET /raw/stock/7 with the breaker open: %d; want 503", resp.StatusCode)
	}
	return traceparent
}

// documented is the package's own telemetry as doc.go describes it.
var documented = []telemetrytest.Instrument{
	{Name: "gateway.upstream.selections", Kind: telemetrytest.Counter, Unit: "{selection}",
		Required: []attribute.Key{gateway.AttrUpstream, semconv.ServerAddressKey, semconv.ServerPortKey}},
	{Name: "gateway.upstream.ejections", Kind: telemetrytest.Counter, Unit: "{ejection}",
		Required: []attribute.Key{gateway.AttrUpstream, semconv.ServerAddressKey, semconv.ServerPortKey}},
	{Name: "gateway.upstream.health", Kind: telemetrytest.Gauge, Unit: "{target}",
		Required: []attribute.Key{gateway.AttrUpstream, semconv.ServerAddressKey, semconv.ServerPortKey}},
	{Name: "gateway.upstream.unavailable", Kind: telemetrytest.Counter, Unit: "{request}",
		Required: []attribute.Key{gateway.AttrUpstream}},
	{Name: "gateway.fallbacks", Kind: telemetrytest.Counter, Unit: "{response}",
		Required: []attribute.Key{semconv.HTTPRouteKey, gateway.AttrFallbackReason, gateway.AttrFallbackSource}},
}

// httpMetricAttrs are the attributes otelhttp puts on the HTTP metrics:
// never a path or a user, the route pattern instead.
var (
	httpMetricRequired = []attribute.Key{semconv.HTTPRequestMethodKey, semconv.URLSchemeKey, semconv.ServerAddressKey}
	httpMetricOptional = []attribute.Key{semconv.ServerPortKey, semconv.NetworkProtocolNameKey,
		semconv.NetworkProtocolVersionKey, semconv.HTTPResponseStatusCodeKey, semconv.ErrorTypeKey}
)

// documentedHTTP is the HTTP telemetry the gateway makes through otelhttp,
// as doc.go describes it.
var documentedHTTP = []telemetrytest.Instrument{
	{Name: httpconv.ServerRequestDuration{}.Name(), Kind: telemetrytest.Histogram, Unit: httpconv.ServerRequestDuration{}.Unit(),
		Required: append(httpMetricRequired, semconv.HTTPRouteKey), Optional: httpMetricOptional},
	{Name: httpconv.ServerRequestBodySize{}.Name(), Kind: telemetrytest.Histogram, Unit: httpconv.ServerRequestBodySize{}.Unit(),
		Required: append(httpMetricRequired, semconv.HTTPRouteKey), Optional: httpMetricOptional},
	{Name: httpconv.ServerResponseBodySize{}.Name(), Kind: telemetrytest.Histogram, Unit: httpconv.ServerResponseBodySize{}.Unit(),
		Required: append(httpMetricRequired, semconv.HTTPRouteKey), Optional: httpMetricOptional},
	{Name: httpconv.ClientRequestDuration{}.Name(), Kind: telemetrytest.Histogram, Unit: httpconv.ClientRequestDuration{}.Unit(),
		Required: append(httpMetricRequired, semconv.ServerPortKey), Optional: httpMetricOptional},
	{Name: httpconv.ClientRequestBodySize{}.Name(), Kind: telemetrytest.Histogram, Unit: httpconv.ClientRequestBodySize{}.Unit(),
		Required: append(httpMetricRequired, semconv.ServerPortKey), Optional: httpMetricOptional},
}

var documentedSpans = []telemetrytest.Span{
	{Name: "{method} {route}", Kind: trace.SpanKindServer,
		Required: []attribute.Key{semconv.HTTPRequestMethodKey, semconv.URLSchemeKey, semconv.ServerAddressKey,
			semconv.URLPathKey, semconv.HTTPRouteKey, semconv.ClientAddressKey, semconv.NetworkPeerAddressKey,
			semconv.HTTPResponseStatusCodeKey},
		Optional: []attribute.Key{semconv.ServerPortKey, semconv.NetworkPeerPortKey, semconv.UserAgentOriginalKey,
			semconv.NetworkProtocolNameKey, semconv.NetworkProtocolVersionKey, semconv.HTTPRequestMethodOriginalKey,
			semconv.HTTPRequestBodySizeKey, semconv.HTTPResponseBodySizeKey, semconv.ErrorTypeKey}},
	{Name: "{method}", Kind: trace.SpanKindClient, Parented: true,
		Required: []attribute.Key{semconv.HTTPRequestMethodKey, semconv.URLFullKey, semconv.ServerAddressKey, semconv.ServerPortKey},
		Optional: []attribute.Key{semconv.NetworkProtocolVersionKey, semconv.HTTPResponseStatusCodeKey,
			semconv.HTTPRequestMethodOriginalKey, semconv.ErrorTypeKey, semconv.HTTPRequestResendCountKey,
			semconv.UserAgentOriginalKey}},
}

// TestTelemetryConforms runs the scenario and checks every span and data
// point against what doc.go documents, and doc.go against them.
func TestTelemetryConforms(t *testing.T) { // not parallel: sets the global propagator
	setGlobalPropagator(t, propagation.TraceContext{})
	tel := telemetrytest.New(t)
	scenario(t, tel)
	tel.CheckMetrics(t, gateway.ScopeName, documented,
		"gateway.upstream.selections", "gateway.upstream.ejections", "gateway.upstream.health",
		"gateway.upstream.unavailable", "gateway.fallbacks")
	tel.CheckMetrics(t, otelhttp.ScopeName, documentedHTTP,
		httpconv.ServerRequestDuration{}.Name(), httpconv.ClientRequestDuration{}.Name())
	tel.CheckSpans(t, otelhttp.ScopeName, documentedSpans, "{method} {route}", "{method}")
	telemetrytest.CheckDoc(t, "doc.go", append(documented, documentedHTTP...), documentedSpans)
	for _, word := range []string{"gateway.fallback", "gateway.response_aborted", "retry", "circuitbreaker",
		"gateway.upstream_unavailable", "gateway.attempt_timeout"} {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: word}}, nil)
	}
}

// TestTelemetryRequest checks one request's telemetry in detail: the
// server span named by the route with the derived client address, one
// client span per attempt with the chosen target and the resend count,
// the trace context the upstream received, and error.type on a 503 (on
// the span and the duration metric) but not on a fallback.
func TestTelemetryRequest(t *testing.T) { // not parallel: sets the global propagator
	setGlobalPropagator(t, propagation.TraceContext{})
	tel := telemetrytest.New(t)
	traceparents := scenario(t, tel)

	servers := tel.SpansNamed("GET /orders/{id}")
	if len(servers) != 3 {
		t.Fatalf("%d server spans GET /orders/{id}; want 3", len(servers))
	}
	first := servers[0]
	if a := telemetrytest.Attrs(first); a[semconv.HTTPRouteKey].AsString() != "/orders/{id}" || a[semconv.ClientAddressKey].AsString() != "127.0.0.1" {
		t.Errorf("server span attributes %v; want http.route /orders/{id} and client.address 127.0.0.1", a)
	}
	var clients int
	var resent bool
	for _, s := range tel.SpansNamed("GET") {
		if s.SpanContext().TraceID() != first.SpanContext().TraceID() {
			continue
		}
		clients++
		a := telemetrytest.Attrs(s)
		if a[semconv.ServerPortKey].AsInt64() == 0 || a[semconv.ServerAddressKey].AsString() != "127.0.0.1" {
			t.Errorf("client span without the target: %v", a)
		}
		if n, ok := a[semconv.HTTPRequestResendCountKey]; ok && n.AsInt64() == 1 {
			resent = true
		}
	}
	if clients != 2 || !resent {
		t.Errorf("first request: %d client spans, resend count seen %v; want 2 attempts, the second with http.request.resend_count 1", clients, resent)
	}
	// The upstream got the trace context of its attempt's span.
	var tp string
	for s := range traceparents {
		if s != "" {
			tp = s
			break
		}
	}
	found := false
	for _, s := range tel.SpansNamed("GET") {
		if tp == fmt.Sprintf("00-%s-%s-01", s.SpanContext().TraceID(), s.SpanContext().SpanID()) {
			found = true
		}
	}
	if !found {
		t.Errorf("upstream got traceparent %q; want that of a client span", tp)
	}

	for _, s := range tel.SpansNamed("GET /raw/stock/{sku}") {
		if got := telemetrytest.Attrs(s)[semconv.ErrorTypeKey].AsString(); got != "gateway.upstream_unavailable" {
			t.Errorf("503 span error.type = %q; want gateway.upstream_unavailable", got)
		}
	}
	fallbackSeen := false
	for _, s := range tel.SpansNamed("GET /stock/{sku}") {
		a := telemetrytest.Attrs(s)
		if a[semconv.HTTPResponseStatusCodeKey].AsInt64() != 200 {
			continue
		}
		if _, ok := a[semconv.ErrorTypeKey]; ok {
			t.Errorf("fallback span has error.type %v; want it on the gateway.fallback event only", a[semconv.ErrorTypeKey])
		}
		for _, e := range s.Events() {
			if e.Name == "gateway.fallback" {
				fallbackSeen = true
			}
		}
	}
	if !fallbackSeen {
		t.Errorf("no gateway.fallback event on the fallback's span")
	}
	name := httpconv.ServerRequestDuration{}.Name()
	if n := tel.HistogramCount(t, name, semconv.HTTPRequestMethodGet, semconv.URLScheme("http"),
		semconv.ServerAddress("127.0.0.1"), semconv.ServerPort(serverPort(t, first)),
		semconv.NetworkProtocolName("http"), semconv.NetworkProtocolVersion("1.1"),
		semconv.HTTPResponseStatusCode(503), semconv.HTTPRoute("/raw/stock/{sku}"),
		semconv.ErrorTypeKey.String("gateway.upstream_unavailable")); n != 1 {
		t.Errorf("%s for the 503: %d data; want 1 with error.type\n%s", name, n, tel.Describe(t, name))
	}
}

func serverPort(t *testing.T, s interface{ Attributes() []attribute.KeyValue }) int {
	for _, kv := range s.Attributes() {
		if kv.Key == semconv.ServerPortKey {
			return int(kv.Value.AsInt64())
		}
	}
	t.Fatal("no server.port")
	return 0
}
