package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// BenchmarkMiddleware measures an allowed request through the in-process
// limiter to a handler that does nothing: the bare handler, then one
// client and many clients with the default (global no-op) providers, and
// one client with the SDK's.
func BenchmarkMiddleware(b *testing.B) {
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	limit := ratelimit.Limit{Name: "bench", Requests: 100_000_000, Per: time.Second, Key: ratelimit.ByClientIP(), Scope: ratelimit.PerRoute}
	run := func(b *testing.B, h http.Handler, clients int) {
		reqs := make([]*http.Request, clients)
		for i := range reqs {
			reqs[i] = request("GET /orders/{id}", "10.0."+strconv.Itoa(i/256%256)+"."+strconv.Itoa(i%256))
		}
		w := httptest.NewRecorder()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			clear(w.Header())
			h.ServeHTTP(w, reqs[i%clients])
			i++
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, noop, 1) })
	b.Run("one client", func(b *testing.B) { run(b, newLimiter(b, limit).Middleware(noop), 1) })
	b.Run("10k clients", func(b *testing.B) { run(b, newLimiter(b, limit).Middleware(noop), 10_000) })
	tel := telemetrytest.New(b)
	b.Run("one client/SDK", func(b *testing.B) {
		run(b, newLimiter(b, limit, ratelimit.WithMeterProvider(tel.MeterProvider)).Middleware(noop), 1)
	})
	b.Run("one client/parallel", func(b *testing.B) {
		h := newLimiter(b, limit).Middleware(noop)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := request("GET /orders/{id}", "10.1.2.3")
			w := httptest.NewRecorder()
			for pb.Next() {
				clear(w.Header())
				h.ServeHTTP(w, r)
			}
		})
	})
}
