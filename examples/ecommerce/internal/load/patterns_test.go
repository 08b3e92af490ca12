package load

import (
	"context"
	"errors"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// exporterFixture is a process's metrics as the ecommerce example serves
// them: an SDK meter provider read by the OpenTelemetry Prometheus
// exporter with its default options, on a /metrics handler.
type exporterFixture struct {
	mp  *sdkmetric.MeterProvider
	srv *httptest.Server
}

func newExporterFixture(t *testing.T) *exporterFixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg)) // a registry of the test's own; names as by default
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(func() {
		srv.Close()
		if err := mp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return &exporterFixture{mp: mp, srv: srv}
}

// page returns the /metrics page as Run reads it.
func (f *exporterFixture) page(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL, nil)
	req.Header.Set("Accept", acceptText)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// patternsWorkload drives a real breaker, retrier, cache, rate limit and
// saga orchestrator, all on one meter provider, so that each round adds
// known counts: 1 breaker rejection, 1 retry, 1 rate-limited request,
// 3 L1 lookups (1 hit), 2 L2 lookups (1 hit), 1 saga completed and 1
// compensated.
type patternsWorkload struct {
	breaker *circuitbreaker.Breaker
	retrier *retry.Retrier
	cache   *cache.Cache[string]
	store   *cache.MemoryStore
	limited http.Handler
	orch    *saga.Orchestrator
	def     *saga.Definition[bool]
	round   int
}

func newPatternsWorkload(t *testing.T, mp *sdkmetric.MeterProvider) *patternsWorkload {
	t.Helper()
	w := &patternsWorkload{store: &cache.MemoryStore{}}
	w.breaker = circuitbreaker.New("payment", circuitbreaker.WithMeterProvider(mp))
	w.breaker.Trip()
	w.retrier = retry.New(retry.WithName("inventory"), retry.WithBackoff(retry.Constant(time.Millisecond)), retry.WithMeterProvider(mp))
	var err error
	w.cache, err = cache.New(cache.WithName("catalogue"), cache.WithStore(w.store), cache.WithMeterProvider(mp),
		cache.WithLoader(func(ctx context.Context, key string) (string, error) { return "loaded " + key, nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.cache.Close() })
	// A budget of one request an hour, spent at once: every request after
	// the first is limited.
	lim, err := ratelimit.New(ratelimit.Limit{Name: "per-client", Requests: 1, Per: time.Hour, Key: ratelimit.AllClients(), Scope: ratelimit.AcrossRoutes},
		ratelimit.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	w.limited = lim.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	w.limited.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))

	step := func(name string) saga.Step[bool] {
		return saga.Step[bool]{
			Name: name,
			Action: func(ctx context.Context, fail bool) (func(*bool), error) {
				if fail && name == "ship" {
					return nil, retry.Permanent(errors.New("shipping: down"))
				}
				return nil, nil
			},
			Compensate: func(context.Context, bool) error { return nil },
		}
	}
	w.def, err = saga.Define("order", 1, step("reserve"), step("ship"))
	if err != nil {
		t.Fatal(err)
	}
	w.orch, err = saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithDefinitions(w.def), saga.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.orch.Close(context.Background()) })
	return w
}

// do runs n rounds.
func (w *patternsWorkload) do(t *testing.T, n int) {
	t.Helper()
	ctx := t.Context()
	for range n {
		w.round++
		r := strconv.Itoa(w.round)
		if err := w.breaker.Execute(ctx, func(context.Context) error { return nil }); !errors.Is(err, circuitbreaker.ErrOpen) {
			t.Fatalf("Execute() on a tripped breaker = %v; want ErrOpen", err)
		}
		failed := false
		if err := w.retrier.Do(ctx, func(context.Context) error {
			if !failed {
				failed = true
				return errors.New("inventory: 503")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		w.limited.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("limited request = %d; want 429", rec.Code)
		}
		// A new key: L1 and L2 miss, then an L1 hit; a key only in L2:
		// an L1 miss and an L2 hit.
		for _, key := range []string{"new-" + r, "new-" + r} {
			if _, err := w.cache.Get(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.store.Set(ctx, "l2-"+r, []byte(`"from L2"`), 0); err != nil {
			t.Fatal(err)
		}
		if v, err := w.cache.Get(ctx, "l2-"+r); err != nil || v != "from L2" {
			t.Fatalf("Get() = %q, %v; want the L2 value", v, err)
		}
		for _, fail := range []bool{false, true} {
			id, err := saga.Start(ctx, w.orch, w.def, fail)
			if err != nil {
				t.Fatal(err)
			}
			want := saga.Completed
			if fail {
				want = saga.Compensated
			}
			if st, err := w.orch.Wait(ctx, id); st != want {
				t.Fatalf("Wait() = %q, %v; want %q", st, err, want)
			}
		}
	}
}

// TestPatternsFromTheExporter reads, from the pages the real exporter
// serves, what real patterns did between two scrapes: the metric and label
// names Run looks for are those the exporter writes.
func TestPatternsFromTheExporter(t *testing.T) {
	f := newExporterFixture(t)
	w := newPatternsWorkload(t, f.mp)
	w.do(t, 2) // before the run: not counted

	before, err := scrape(t.Context(), http.DefaultClient, f.srv.URL)
	if err != nil {
		t.Fatalf("scrape() error = %v", err)
	}
	w.do(t, 3)
	page := f.page(t)
	after, err := parseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parseMetrics() error = %v", err)
	}
	got := patternsBetween(before, after)
	want := Patterns{
		Measured: true, BreakerRejections: 3, Retries: 3, RateLimited: 3,
		BreakerRejectionsByName: map[string]float64{"payment": 3},
		RetriesByName:           map[string]float64{"inventory": 3},
		CacheHitRatio:           map[string]float64{"l1": 1.0 / 3, "l2": 0.5},
		SagasCompleted:          3, SagasCompensated: 3,
	}
	if !equalPatterns(got, want) {
		t.Errorf("patternsBetween() = %+v; want %+v\nthe page after:\n%s", got, want, page)
	}
}

func equalPatterns(a, b Patterns) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return a.Measured == b.Measured && a.BreakerRejections == b.BreakerRejections && a.Retries == b.Retries &&
		a.RateLimited == b.RateLimited && a.SagasCompleted == b.SagasCompleted && a.SagasCompensated == b.SagasCompensated &&
		maps.EqualFunc(a.CacheHitRatio, b.CacheHitRatio, near) &&
		maps.Equal(a.BreakerRejectionsByName, b.BreakerRejectionsByName) && maps.Equal(a.RetriesByName, b.RetriesByName)
}

// TestRunMeasuresPatterns runs a load against a server with a real rate
// limit and cache, whose metrics the real exporter serves, and checks
// what Run says the patterns did. Which requests are limited does not
// depend on their order: even ones each have a budget of their own, odd
// ones share one of a single request, and all requests of a parity do the
// same lookup.
func TestRunMeasuresPatterns(t *testing.T) {
	f := newExporterFixture(t)
	lim, err := ratelimit.New(ratelimit.Limit{Name: "per-client", Requests: 1, Per: time.Hour, Key: ratelimit.ByHeader("X-Client"), Scope: ratelimit.AcrossRoutes},
		ratelimit.WithMeterProvider(f.mp))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.WithName("catalogue"), cache.WithStore(&cache.MemoryStore{}), cache.WithMeterProvider(f.mp),
		cache.WithLoader(func(ctx context.Context, key string) (string, error) { return "loaded " + key, nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(t.Context(), "warm"); err != nil { // before the run: not counted
		t.Fatal(err)
	}
	shop := httptest.NewServer(lim.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := "warm"
		if i := index(r); i%2 == 1 {
			key = "cold-" + strconv.Itoa(i)
		}
		if _, err := c.Get(r.Context(), key); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})))
	defer shop.Close()

	get := getter(shop.URL)
	rep, err := Run(t.Context(), Config{
		Rate: 10, Duration: time.Second,
		Next: func(ctx context.Context, i int) (*http.Request, error) {
			req, err := get(ctx, i)
			if err == nil {
				client := "shared"
				if i%2 == 0 {
					client = "c" + strconv.Itoa(i)
				}
				req.Header.Set("X-Client", client)
			}
			return req, err
		},
		MetricsURL: f.srv.URL + "/metrics",
	})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if rep.Status[200] != 6 || rep.Status[429] != 4 {
		t.Errorf("Run().Status = %v; want 200: 6, 429: 4", rep.Status)
	}
	want := Patterns{Measured: true, RateLimited: 4, BreakerRejectionsByName: map[string]float64{}, RetriesByName: map[string]float64{},
		CacheHitRatio: map[string]float64{"l1": 5.0 / 6, "l2": 0}}
	if !equalPatterns(rep.Patterns, want) {
		t.Errorf("Run().Patterns = %+v; want %+v", rep.Patterns, want)
	}
}

// TestRunNeedsItsFirstScrape checks that a MetricsURL that does not serve
// metrics stops the run before it sends anything.
func TestRunNeedsItsFirstScrape(t *testing.T) {
	var c concurrency
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.enter(); c.leave() }))
	defer shop.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html></html>")
	}))
	defer html.Close()
	tests := []struct{ name, url string }{
		{"not found", notFound.URL + "/metrics"},
		{"not metrics", html.URL + "/metrics"},
		{"nothing listening", "http://127.0.0.1:1/metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(t.Context(), Config{Rate: 10, Duration: time.Second, Next: getter(shop.URL), MetricsURL: tt.url})
			if err == nil || !strings.Contains(err.Error(), "scrape before the run") {
				t.Errorf("Run() error = %v; want a failed scrape before the run", err)
			}
		})
	}
	if n := c.calls.Load(); n != 0 {
		t.Errorf("server got %d requests; want none", n)
	}
}

// TestIncreaseAcrossAReset checks that a counter lower after than before
// (the process restarted) counts its value after, as PromQL's increase()
// does, and that series new after count whole.
func TestIncreaseAcrossAReset(t *testing.T) {
	name := promName(metricSagaExecutions)
	label := promLabel(saga.AttrOutcome)
	before := metricSet{name: {
		{labels: map[string]string{label: "completed"}, value: 100},
		{labels: map[string]string{label: "compensated"}, value: 10},
	}}
	after := metricSet{name: {
		{labels: map[string]string{label: "completed"}, value: 7},    // reset: 7
		{labels: map[string]string{label: "compensated"}, value: 12}, // +2
		{labels: map[string]string{label: "completed", "saga_name": "refund"}, value: 3},
	}}
	got := patternsBetween(before, after)
	if got.SagasCompleted != 10 || got.SagasCompensated != 2 {
		t.Errorf("patternsBetween() completed %v, compensated %v; want 10, 2", got.SagasCompleted, got.SagasCompensated)
	}
}
