package aggregate_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// BenchmarkFanOut compares three ways of getting three upstreams'
// answers into one document, over the same gateway transport (so the
// same balancing and connections) to the same local upstreams:
//
//   - aggregate: the Handler, called directly with a recorder;
//   - sequential: three calls one after the other, as a naive handler
//     makes them;
//   - concurrent: three calls at once with errgroup, hand-written.
//
// The hand-written rows decode each answer and encode the merged
// document, as the Handler does. Upstreams answer at once (latency=0)
// or after 1ms (latency=1ms, where fan-out pays).
func BenchmarkFanOut(b *testing.B) {
	for _, latency := range []time.Duration{0, time.Millisecond} {
		b.Run("latency="+latency.String(), func(b *testing.B) {
			benchFanOut(b, latency)
		})
	}
}

func benchFanOut(b *testing.B, latency time.Duration) {
	body := []byte(`{"id":"7","customer_id":"c-7","total":42.5,"lines":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}`)
	var names []string
	var ups []gateway.Upstream
	for i := range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if latency > 0 {
				time.Sleep(latency) // a service's own work
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}))
		b.Cleanup(srv.Close)
		name := "u" + strconv.Itoa(i)
		names = append(names, name)
		ups = append(ups, gateway.Upstream{Name: name, Targets: []gateway.Target{{URL: srv.URL}}})
	}
	g, err := gateway.New(gateway.WithUpstreams(ups...),
		gateway.WithTracerProvider(tracenoop.NewTracerProvider()), gateway.WithMeterProvider(metricnoop.NewMeterProvider()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Close() })
	var parts []aggregate.Part
	for _, n := range names {
		parts = append(parts, aggregate.Part{Name: n, Upstream: n, Path: "/orders/{id}"})
	}
	h, err := aggregate.New(parts, aggregate.WithTransport(g.Transport()),
		aggregate.WithTracerProvider(tracenoop.NewTracerProvider()), aggregate.WithMeterProvider(metricnoop.NewMeterProvider()))
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: g.Transport()}
	fetch := func(req *http.Request, name string) (any, error) {
		out, _ := http.NewRequestWithContext(req.Context(), http.MethodGet, "http://"+name+"/orders/"+req.PathValue("id"), nil)
		resp, err := client.Do(out)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		var v any
		return v, json.Unmarshal(raw, &v)
	}
	newRequest := func() *http.Request {
		req := httptest.NewRequest(http.MethodGet, "/pages/orders/7", nil)
		req.SetPathValue("id", "7")
		return req
	}

	b.Run("aggregate", func(b *testing.B) {
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, newRequest())
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			req := newRequest()
			doc := map[string]any{}
			for _, n := range names {
				v, err := fetch(req, n)
				if err != nil {
					b.Fatal(err)
				}
				doc[n] = v
			}
			if _, err := json.Marshal(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("concurrent", func(b *testing.B) {
		for b.Loop() {
			req := newRequest()
			vals := make([]any, len(names))
			var eg errgroup.Group
			for i, n := range names {
				eg.Go(func() (err error) {
					vals[i], err = fetch(req, n)
					return err
				})
			}
			if err := eg.Wait(); err != nil {
				b.Fatal(err)
			}
			doc := map[string]any{}
			for i, n := range names {
				doc[n] = vals[i]
			}
			if _, err := json.Marshal(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
