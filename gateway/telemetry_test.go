package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// metricPoints returns the attribute sets and values (count for
// histograms, value for int64 sums and gauges) of every data point of
// the metric called name.
func metricPoints(t *testing.T, tel *telemetrytest.Providers, name string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	rm := tel.Collect(t)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					out[dp.Attributes.Encoded(attribute.DefaultEncoder())] += int64(dp.Count)
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					out[dp.Attributes.Encoded(attribute.DefaultEncoder())] += dp.Value
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					out[dp.Attributes.Encoded(attribute.DefaultEncoder())] = dp.Value
				}
			}
		}
	}
	return out
}

func spanAttr(s sdktrace.ReadOnlySpan, k attribute.Key) (string, bool) {
	v, ok := telemetrytest.Attrs(s)[k]
	return v.AsString(), ok
}

// A CONNECT request whose path lacks the trailing slash of a pattern
// such as "/files/{id}/" is redirected by ServeMux, which reports the
// client's own path as the pattern: it names no span and is no http.route
// value (each path would be a new series).
func TestConnectRedirectPathNotARoute(t *testing.T) {
	t.Parallel()
	tel := telemetrytest.New(t)
	b := newBackend(t, "b")
	g, err := gateway.New(gateway.WithMeterProvider(tel.MeterProvider), gateway.WithTracerProvider(tel.TracerProvider),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/files/{id}/", Upstream: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for i := range 5 {
		r := httptest.NewRequest(http.MethodConnect, fmt.Sprintf("/files/user-%d-secret", i), nil)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
	}
	routes := map[string]bool{}
	for set := range metricPoints(t, tel, "http.server.request.duration") {
		routes[set] = true
	}
	var bad []string
	for set := range routes {
		if strings.Contains(set, "user-") {
			bad = append(bad, set)
		}
	}
	var names []string
	for _, s := range tel.Spans.Ended() {
		if strings.Contains(s.Name(), "user-") {
			names = append(names, s.Name())
		}
	}
	if len(bad) > 0 || len(names) > 0 {
		t.Errorf("client paths became telemetry: %d http.server.request.duration series with the path as http.route, e.g. %q; span names %q; want http.route only from configured patterns (or none)",
			len(bad), first(bad), names)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// When the mux matches a pattern but no route runs (a 404 of matchers
// that all missed, a trailing-slash redirect), the server span has the
// http.route that its name and the duration metric have.
func TestSpanRouteWhenNoRouteRan(t *testing.T) {
	t.Parallel()
	tel := telemetrytest.New(t)
	b := newBackend(t, "b")
	g, err := gateway.New(gateway.WithMeterProvider(tel.MeterProvider), gateway.WithTracerProvider(tel.TracerProvider),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(
			gateway.Route{Pattern: "GET /v2/orders", Upstream: "u", Headers: []gateway.Match{{Name: "X-Version", Value: "2"}}},
			gateway.Route{Pattern: "GET /files/{id}/", Upstream: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, path := range []string{"/v2/orders", "/files/7"} {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusNotFound && w.Code != http.StatusTemporaryRedirect {
			t.Fatalf("GET %s: %d; want 404 or 307", path, w.Code)
		}
	}
	for _, want := range []struct{ name, route string }{{"GET /v2/orders", "/v2/orders"}, {"GET /files/{id}/", "/files/{id}/"}} {
		spans := tel.SpansNamed(want.name)
		if len(spans) != 1 {
			t.Fatalf("%d spans %q; want 1", len(spans), want.name)
		}
		got, ok := spanAttr(spans[0], semconv.HTTPRouteKey)
		if !ok || got != want.route {
			t.Errorf("server span %q (status %d): http.route = %q (present %v); want %q, as its name and its http.server.request.duration point have",
				want.name, telemetrytest.Attrs(spans[0])[semconv.HTTPResponseStatusCodeKey].AsInt64(), got, ok, want.route)
		}
	}
}

// An upstream's own 5xx, passed on, has error.type set to its status on
// the server span and on http.server.request.duration, as the HTTP
// conventions ask.
func TestUpstream5xxErrorType(t *testing.T) {
	t.Parallel()
	tel := telemetrytest.New(t)
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	_, srv := start(t, gateway.WithMeterProvider(tel.MeterProvider), gateway.WithTracerProvider(tel.TracerProvider),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /boom", Upstream: "u"}))
	if resp, _ := get(t, srv, "/boom"); resp.StatusCode != 500 {
		t.Fatalf("status %d; want the upstream's 500", resp.StatusCode)
	}
	spans := tel.SpansNamed("GET /boom")
	if len(spans) != 1 {
		t.Fatalf("%d server spans; want 1", len(spans))
	}
	et, ok := spanAttr(spans[0], semconv.ErrorTypeKey)
	if !ok || et != "500" {
		t.Errorf("server span of an upstream 500: status %v, error.type %q (present %v); want error.type \"500\"", spans[0].Status(), et, ok)
	}
	found := false
	for set := range metricPoints(t, tel, "http.server.request.duration") {
		if strings.Contains(set, "http.response.status_code=500") && strings.Contains(set, "error.type=500") {
			found = true
		}
	}
	if !found {
		t.Errorf("http.server.request.duration of the 500 has no error.type=500:\n%v", metricPoints(t, tel, "http.server.request.duration"))
	}
}

// An Update that keeps an upstream's breaker group (the same Breaker)
// removes the breakers of the targets it drops, with their series: an
// open breaker of a target taken out would otherwise report open for
// good.
func TestUpdateRemovesDroppedTargetsBreakers(t *testing.T) {
	t.Parallel()
	tel := telemetrytest.New(t)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	br := &gateway.Breaker{Options: []circuitbreaker.Option{
		circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour)}}
	table := func(targets ...gateway.Target) []gateway.Option {
		return []gateway.Option{
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: targets, Breaker: br}),
			gateway.WithRoutes(gateway.Route{Pattern: "GET /x", Upstream: "u"}),
		}
	}
	g, srv := start(t, append(table(a.target(), b.target()),
		gateway.WithMeterProvider(tel.MeterProvider), gateway.WithTracerProvider(tel.TracerProvider))...)
	for range 4 {
		get(t, srv, "/x")
	}
	bHost := strings.TrimPrefix(b.URL, "http://")
	openB := func() bool {
		for set, v := range metricPoints(t, tel, "circuitbreaker.state") {
			if strings.Contains(set, "u/"+bHost) && strings.Contains(set, "circuitbreaker.state=open") && v == 1 {
				return true
			}
		}
		return false
	}
	if !openB() {
		t.Fatalf("b's breaker is not open: %v", metricPoints(t, tel, "circuitbreaker.state"))
	}
	if err := g.Update(table(a.target())...); err != nil { // b removed, same Breaker
		t.Fatal(err)
	}
	get(t, srv, "/x")
	if gh := metricPoints(t, tel, "gateway.upstream.health"); len(gh) != 1 {
		t.Fatalf("gateway.upstream.health after Update: %v; want a's series only", gh)
	}
	if openB() {
		t.Errorf("after Update removed target %s, circuitbreaker.state{circuitbreaker.name=u/%s, state=open} is still 1; want the removed target's breaker series gone, as gateway.upstream.health's is", bHost, bHost)
	}
}
