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
	"time"

	"github.com/golang-jwt/jwt/v5"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
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

// BenchmarkChain is BenchmarkProxyHandler's gateway with the full chain of
// the benchmark (benchmarks/gateway.sh's "full") built up one layer at a
// time, no-op telemetry: routing only, then a breaker per target, retries,
// the rate limit, and JWT (HS256, the token cache on as by default, then
// off), after a bare ReverseProxy (the script's "bare") for reference.
// What each row adds to the one before is that layer's cost per request,
// without a network or a load generator in the figures.
func BenchmarkChain(b *testing.B) {
	target := "http://127.0.0.1:9"
	secret := []byte("gwbench HS256 secret, 32 bytes!!")
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "bench", "iss": "https://login.test/", "aud": "items-api", "roles": []string{"reader"},
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "bench"
	token, err := tok.SignedString(secret)
	if err != nil {
		b.Fatal(err)
	}
	mp := metricnoop.NewMeterProvider()
	type layers struct{ breaker, retry, limit, auth, noCache bool }
	build := func(b *testing.B, l layers) http.Handler {
		up := gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: target}}}
		if l.breaker {
			up.Breaker = &gateway.Breaker{}
		}
		if l.retry {
			up.Retry = &gateway.Retry{}
		}
		route := gateway.Route{Pattern: "GET /orders/{id}", Upstream: "u"}
		if l.auth {
			opts := []auth.Option{
				auth.WithKeys(auth.Key{ID: "bench", Algorithm: "HS256", Key: secret}),
				auth.WithIssuer("https://login.test/"), auth.WithAudience("items-api"),
				auth.WithMeterProvider(mp),
			}
			if l.noCache {
				opts = append(opts, auth.WithTokenCache(0, 0))
			}
			a, err := auth.New(opts...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(a.Close)
			route.Middleware = append(route.Middleware, a.Middleware(auth.RequireAnyRole("reader")))
		}
		if l.limit {
			lim, err := ratelimit.New(ratelimit.Limit{
				Name: "per-client", Requests: 10_000_000, Per: time.Second,
				Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes,
			}, ratelimit.WithMeterProvider(mp))
			if err != nil {
				b.Fatal(err)
			}
			route.Middleware = append(route.Middleware, lim.Middleware)
		}
		g, err := gateway.New(
			gateway.WithTransport(memTransport{}),
			gateway.WithUpstreams(up),
			gateway.WithRoutes(route),
			gateway.WithTracerProvider(tracenoop.NewTracerProvider()),
			gateway.WithMeterProvider(mp),
		)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { g.Close() })
		return g
	}
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		start, ok := testenv.ProcessCPU()
		defer func() {
			if end, _ := testenv.ProcessCPU(); ok {
				b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
			}
		}()
		b.RunParallel(func(pb *testing.PB) {
			bearer := []string{"Bearer " + token}
			for pb.Next() {
				// As the server would make it, without parsing it, which
				// would cost more than some of the layers measured.
				req := &http.Request{
					Method: http.MethodGet, URL: &url.URL{Path: "/orders/42"}, RequestURI: "/orders/42",
					Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com",
					Header: http.Header{"Authorization": bearer, "User-Agent": {"bench"}, "Accept": {"*/*"}},
					Body:   http.NoBody, RemoteAddr: "192.0.2.1:1234",
				}
				w := discardWriter{http.Header{}}
				h.ServeHTTP(w, req)
			}
		})
	}
	bareTarget, _ := url.Parse(target)
	b.Run("bare", func(b *testing.B) {
		run(b, &httputil.ReverseProxy{
			Transport: memTransport{},
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(bareTarget)
				pr.SetXForwarded()
			},
			BufferPool: new(benchBufferPool),
		})
	})
	for _, c := range []struct {
		name string
		l    layers
	}{
		{"routing", layers{}},
		{"+breaker", layers{breaker: true}},
		{"+retry", layers{breaker: true, retry: true}},
		{"+ratelimit", layers{breaker: true, retry: true, limit: true}},
		{"+jwt", layers{breaker: true, retry: true, limit: true, auth: true}},
		{"+jwt-nocache", layers{breaker: true, retry: true, limit: true, auth: true, noCache: true}},
	} {
		b.Run(c.name, func(b *testing.B) { run(b, build(b, c.l)) })
	}
}
