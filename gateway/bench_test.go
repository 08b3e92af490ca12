package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
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

// BenchmarkProxyHandler is BenchmarkProxy without the network: both
// proxies hand the request to a transport that answers from memory and
// write to a response writer that discards, so the figures are the
// proxies' own work alone (what the gateway adds: the client's address,
// header scrubbing, a request ID, routing, the Forwarded header). The
// bare proxy borrows its copy buffers from a pool, as the gateway does.
func BenchmarkProxyHandler(b *testing.B) {
	target, _ := url.Parse("http://127.0.0.1:9")
	bare := &httputil.ReverseProxy{
		Transport: memTransport{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		BufferPool: new(benchBufferPool),
	}
	g, err := gateway.New(
		gateway.WithTransport(memTransport{}),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: target.String()}}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /orders/{id}", Upstream: "u"}),
		gateway.WithTracerProvider(tracenoop.NewTracerProvider()),
		gateway.WithMeterProvider(metricnoop.NewMeterProvider()),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodGet, "/orders/42", nil)
			w := discardWriter{http.Header{}}
			h.ServeHTTP(w, req)
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, bare) })
	b.Run("gateway-noop", func(b *testing.B) { run(b, g) })
}

// memTransport answers every request with a small JSON body from memory.
type memTransport struct{}

func (memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	const body = `{"id":42}`
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

// discardWriter is a ResponseWriter that keeps the headers and drops
// the rest.
type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header         { return w.h }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}

// benchBufferPool lends 32 KiB copy buffers, as the gateway's pool does.
type benchBufferPool struct{ p sync.Pool }

func (b *benchBufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[32 << 10]byte); ok {
		return v[:]
	}
	return new([32 << 10]byte)[:]
}

func (b *benchBufferPool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		b.p.Put((*[32 << 10]byte)(buf[:32<<10]))
	}
}
