package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// BenchmarkProxy compares a request through a bare httputil.ReverseProxy
// with the same request through the gateway (routing only), with the
// default (global, unset) providers, explicit no-op providers (no
// otelhttp at all) and SDK providers. The handler is
// called directly with a recorder, so the numbers are the proxies' own
// work plus one loopback round trip to the upstream.
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	defer transport.CloseIdleConnections()

	bare := &httputil.ReverseProxy{Transport: transport, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}}
	routes := []gateway.Option{
		gateway.WithTransport(transport),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: up.URL}}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /orders/{id}", Upstream: "u"}),
	}
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := httptest.NewRequest(http.MethodGet, "/orders/42", nil)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
	b.Run("bare", func(b *testing.B) { run(b, bare) })
	b.Run("gateway", func(b *testing.B) {
		g, err := gateway.New(routes...)
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		run(b, g)
	})
	b.Run("gateway-noop", func(b *testing.B) {
		g, err := gateway.New(append(routes, gateway.WithTracerProvider(tracenoop.NewTracerProvider()),
			gateway.WithMeterProvider(metricnoop.NewMeterProvider()))...)
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		run(b, g)
	})
	b.Run("gateway-sdk", func(b *testing.B) {
		tel := telemetrytest.New(b)
		g, err := gateway.New(append(routes, gateway.WithTracerProvider(tel.TracerProvider), gateway.WithMeterProvider(tel.MeterProvider))...)
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		run(b, g)
	})
}
