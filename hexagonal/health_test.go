package hexagonal_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

func newHealth(t *testing.T, opts ...hexagonal.HealthOption) *hexagonal.Health {
	t.Helper()
	h, err := hexagonal.NewHealth(append([]hexagonal.HealthOption{quiet()}, opts...)...)
	if err != nil {
		t.Fatalf("NewHealth() = %v", err)
	}
	return h
}

// get serves a GET of target by h and returns the status, content type
// and body.
func get(h http.Handler, target string, header ...string) (int, string, string) {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Header().Get("Content-Type"), w.Body.String()
}

func ok(context.Context) error { return nil }

func TestHandlerKubernetesText(t *testing.T) {
	down := errors.New("connection refused")
	h := newHealth(t,
		hexagonal.WithLivenessCheck("deadlock", ok),
		hexagonal.WithReadinessCheck("postgres", func(context.Context) error { return down }),
		hexagonal.WithReadinessCheck("redis", ok),
	).Handler()
	tests := []struct {
		target     string
		wantStatus int
		wantBody   string
	}{
		{"/livez", 200, "ok"},
		{"/livez?verbose", 200, "[+]deadlock ok\nlivez check passed\n"},
		{"/readyz", 503, "[+]lifecycle ok\n[+]deadlock ok\n[-]postgres failed: reason withheld\n[+]redis ok\nreadyz check failed\n"},
		{"/readyz?exclude=postgres", 200, "ok"},
		{"/readyz?exclude=postgres&verbose", 200, "[+]lifecycle ok\n[+]deadlock ok\n[+]redis ok\n[+]postgres excluded: ok\nreadyz check passed\n"},
		{"/readyz?exclude=redis&exclude=postgres&exclude=redis&exclude=nope&verbose", 200,
			"[+]lifecycle ok\n[+]deadlock ok\n[+]postgres excluded: ok\n[+]redis excluded: ok\n" +
				"warn: some health checks cannot be excluded: no matches for \"nope\"\nreadyz check passed\n"},
		{"/livez?exclude=redis&verbose", 200, "[+]deadlock ok\nwarn: some health checks cannot be excluded: no matches for \"redis\"\nlivez check passed\n"},
		{"/readyz/redis", 200, "ok"},
		{"/readyz/postgres", 503, "[-]postgres failed: reason withheld\nreadyz check failed\n"},
		{"/livez/deadlock", 200, "ok"},
		{"/livez/postgres", 404, "404 page not found\n"}, // not a liveness check
		{"/readyz/nope", 404, "404 page not found\n"},
		{"/metrics", 404, "404 page not found\n"},
	}
	for _, tt := range tests {
		status, ctype, body := get(h, tt.target)
		if status != tt.wantStatus || body != tt.wantBody {
			t.Errorf("GET %s = %d %q; want %d %q", tt.target, status, body, tt.wantStatus, tt.wantBody)
		}
		if status != 404 && ctype != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", tt.target, ctype)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/livez", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /livez = %d; want 405", w.Code)
	}
}

func TestHandlerJSON(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHealth(t,
			hexagonal.WithLivenessCheck("deadlock", ok),
			hexagonal.WithReadinessCheck("postgres", func(context.Context) error {
				time.Sleep(3 * time.Millisecond)
				return errors.New("connection refused")
			}),
		).Handler()
		type check struct {
			Name      string     `json:"name"`
			Kind      string     `json:"kind"`
			Status    string     `json:"status"`
			LatencyMS float64    `json:"latency_ms"`
			Error     string     `json:"error"`
			At        *time.Time `json:"checked_at"`
		}
		var body struct {
			Status string  `json:"status"`
			Phase  string  `json:"phase"`
			Checks []check `json:"checks"`
		}
		status, ctype, raw := get(h, "/health")
		if status != 503 || ctype != "application/json" {
			t.Fatalf("GET /health = %d %s", status, ctype)
		}
		if err := json.Unmarshal([]byte(raw), &body); err != nil {
			t.Fatal(err)
		}
		want := []check{
			{Name: "deadlock", Kind: "liveness", Status: "pass"},
			{Name: "postgres", Kind: "readiness", Status: "fail", LatencyMS: 3},
		}
		if body.Status != "fail" || body.Phase != "running" || len(body.Checks) != 2 || body.Checks[0] != want[0] || body.Checks[1] != want[1] {
			t.Errorf("GET /health = %s; want %+v", raw, want)
		}
		// verbose: the reasons and times.
		time.Sleep(time.Second) // past the cache interval
		_, _, raw = get(h, "/health?verbose")
		body.Checks = nil
		if err := json.Unmarshal([]byte(raw), &body); err != nil {
			t.Fatal(err)
		}
		if c := body.Checks[1]; c.Error != "connection refused" || c.At == nil || !c.At.Equal(time.Now()) {
			t.Errorf("GET /health?verbose: postgres = %+v; want its error and time", c)
		}
		if c := body.Checks[0]; c.Error != "" || c.At == nil {
			t.Errorf("GET /health?verbose: deadlock = %+v", c)
		}
		// /livez answers JSON to a client that asks for it.
		status, ctype, raw = get(h, "/livez", "Accept", "application/json")
		if status != 200 || ctype != "application/json" || !strings.Contains(raw, `"status":"pass"`) || strings.Contains(raw, "postgres") {
			t.Errorf("GET /livez as JSON = %d %s %s", status, ctype, raw)
		}
	})
}

func TestSlowChecksRunConcurrentlyAndTimeOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sleep := func(d time.Duration) func(context.Context) error {
			return func(ctx context.Context) error {
				select {
				case <-time.After(d):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		h := newHealth(t,
			hexagonal.WithReadinessCheck("a", sleep(400*time.Millisecond)),
			hexagonal.WithReadinessCheck("b", sleep(500*time.Millisecond)),
			hexagonal.WithCheck(hexagonal.Check{Name: "stalled", Func: sleep(time.Hour), Timeout: 2 * time.Second}),
		)
		begin := time.Now()
		rep := h.Ready(context.Background())
		if d := time.Since(begin); d != 2*time.Second {
			t.Errorf("Ready() took %v; want 2s, the stalled check's timeout (checks run concurrently)", d)
		}
		if rep.OK {
			t.Error("Ready() is OK with a stalled check")
		}
		for _, c := range rep.Checks {
			switch c.Name {
			case "a", "b":
				if c.Err != nil {
					t.Errorf("check %s = %v", c.Name, c.Err)
				}
			case "stalled":
				if !errors.Is(c.Err, context.DeadlineExceeded) || !strings.Contains(c.Err.Error(), "timed out after 2s") || c.Latency != 2*time.Second {
					t.Errorf("check stalled = %v after %v; want a timeout after 2s", c.Err, c.Latency)
				}
			}
		}
	})
}

func TestChecksAreCachedAndNotHammered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		release := make(chan struct{})
		h := newHealth(t, hexagonal.WithCheckInterval(10*time.Second), hexagonal.WithReadinessCheck("db", func(ctx context.Context) error {
			runs.Add(1)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}))
		// Fifty probes at once: one run.
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() { h.Ready(context.Background()) })
		}
		synctest.Wait()
		close(release)
		wg.Wait()
		if n := runs.Load(); n != 1 {
			t.Errorf("50 concurrent probes ran the check %d times; want 1", n)
		}
		// Within the interval: the cached result.
		time.Sleep(9 * time.Second)
		if !h.Ready(context.Background()).OK || runs.Load() != 1 {
			t.Errorf("a probe within the interval ran the check again (%d runs)", runs.Load())
		}
		time.Sleep(time.Second)
		h.Ready(context.Background())
		if n := runs.Load(); n != 2 {
			t.Errorf("a probe after the interval: %d runs; want 2", n)
		}
	})
}

// TestCheckIgnoringItsContext: a check that does not honour its deadline
// fails at the timeout, and is not started again while it still runs.
func TestCheckIgnoringItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		release := make(chan struct{})
		h := newHealth(t, hexagonal.WithCheckTimeout(time.Second), hexagonal.WithCheckInterval(5*time.Second),
			hexagonal.WithReadinessCheck("legacy", func(context.Context) error {
				if runs.Add(1) == 1 {
					<-release
				}
				return nil
			}))
		begin := time.Now()
		rep := h.Ready(context.Background())
		if rep.OK || time.Since(begin) != 1100*time.Millisecond || !strings.Contains(rep.Checks[0].Err.Error(), "did not return within 1s") {
			t.Fatalf("Ready() = %+v after %v; want a failure at 1.1s (the timeout and a tenth)", rep, time.Since(begin))
		}
		time.Sleep(10 * time.Second)
		begin = time.Now()
		if rep := h.Ready(context.Background()); rep.OK || time.Since(begin) != 0 {
			t.Errorf("Ready() while the run hangs = %+v after %v; want a failure at once", rep, time.Since(begin))
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("%d runs; want 1 while the first hangs", n)
		}
		close(release)
		synctest.Wait()
		time.Sleep(5 * time.Second)
		if rep := h.Ready(context.Background()); !rep.OK {
			t.Errorf("Ready() after the hung run returned = %+v; want OK", rep)
		}
	})
}

func TestPanickingCheckFails(t *testing.T) {
	h := newHealth(t, hexagonal.WithReadinessCheck("bug", func(context.Context) error {
		panic("unexpected state")
	}))
	rep := h.Ready(context.Background())
	var p *hexagonal.PanicError
	if rep.OK || !errors.As(rep.Checks[0].Err, &p) || p.Phase != "check" || p.Component != "bug" {
		t.Fatalf("Ready() = %+v; want the panic as the check's failure", rep)
	}
	status, _, body := get(h.Handler(), "/readyz")
	if status != 503 || !strings.Contains(body, "[-]bug failed") {
		t.Errorf("GET /readyz = %d %q", status, body)
	}
}

func TestClientGoneDoesNotCancelTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var finished atomic.Bool
		h := newHealth(t, hexagonal.WithCheckInterval(time.Minute), hexagonal.WithReadinessCheck("db", func(ctx context.Context) error {
			select {
			case <-time.After(100 * time.Millisecond):
				finished.Store(true)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}))
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
		if rep := h.Ready(ctx); rep.OK {
			t.Error("Ready() with its context canceled is OK")
		}
		time.Sleep(time.Second)
		if !finished.Load() {
			t.Error("the run was canceled with the first caller's context")
		}
		if !h.Ready(context.Background()).OK {
			t.Error("the next caller did not get the run's result")
		}
	})
}

func TestNewHealthReportsEveryBadOption(t *testing.T) {
	_, err := hexagonal.NewHealth(
		hexagonal.WithCheckTimeout(0),
		hexagonal.WithCheckInterval(-1),
		nil,
		hexagonal.WithReadinessCheck("", ok),
		hexagonal.WithReadinessCheck("db", ok),
		hexagonal.WithLivenessCheck("db", ok),
		hexagonal.WithReadinessCheck("nil", nil),
		hexagonal.WithReadinessCheck("a b", ok),
		hexagonal.WithCheck(hexagonal.Check{Name: "k", Kind: 7, Func: ok, Timeout: -1, Interval: -1}),
	)
	if err == nil {
		t.Fatal("NewHealth() = nil error")
	}
	for _, want := range []string{"WithCheckTimeout(0s)", "WithCheckInterval(-1ns)", "opts[2] is nil", "check 0 has no name",
		`("db"): the name is taken`, `("nil"): Func is nil`, `("a b"): a name is`, `("k"): unknown Kind 7`,
		`("k"): Timeout`, `("k"): Interval`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("NewHealth() = %v; want it to mention %s", err, want)
		}
	}
}

func TestHandlerOverHTTP(t *testing.T) {
	h := newHealth(t, hexagonal.WithReadinessCheck("db", ok))
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "[+]lifecycle ok\n[+]db ok\nreadyz check passed\n" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET /readyz?verbose = %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

// A check that returns just as its waiters give up on it (at its
// timeout and a tenth) leaves its status, as the metric reports it, that
// of the result the health caches: the waiters' failure, recorded after
// the run's success, made the gauge say 0 while every probe passed.
func TestCheckReturningAtTheWaitersDeadline(t *testing.T) {
	for i := range 300 {
		synctest.Test(t, func(t *testing.T) {
			p := telemetrytest.New(t)
			h := newHealth(t, hexagonal.WithMeterProvider(p.MeterProvider),
				hexagonal.WithCheckTimeout(time.Second), hexagonal.WithCheckInterval(time.Hour),
				hexagonal.WithReadinessCheck("late", func(context.Context) error {
					time.Sleep(1100 * time.Millisecond) // ignores its context
					return nil
				}))
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() { h.Ready(context.Background()) })
			}
			wg.Wait()
			synctest.Wait()
			cached := h.Ready(context.Background()).OK
			attrs := []attribute.KeyValue{hexagonal.AttrCheck.String("late"), hexagonal.AttrCheckKind.String("readiness")}
			if gauge := p.Int64(t, "hexagonal.check.status", attrs...); (gauge == 1) != cached {
				t.Fatalf("iteration %d: hexagonal.check.status = %d, but the cached result is OK = %v", i, gauge, cached)
			}
			// The gauge's callback holds h weakly: a collection after h
			// is garbage-collected reports nothing.
			runtime.KeepAlive(h)
		})
	}
}

// TestReadyTurnsFalseWhenShutdownBeginsDuringChecks: readiness turns
// false at once when the app shuts down, even for a Ready call whose
// checks were still running then: it reports the phase of its end, not
// of its start.
func TestReadyTurnsFalseWhenShutdownBeginsDuringChecks(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := newHealth(t, hexagonal.WithCheck(hexagonal.Check{
		Name: "db", Timeout: time.Minute,
		Func: func(context.Context) error {
			close(entered)
			<-release
			return nil
		},
	}))
	running, stopping := make(chan struct{}), make(chan struct{})
	logger := slog.New(probeOn{msg: "hexagonal: started; ready", f: sync.OnceFunc(func() { close(running) })})
	app, _ := newApp(t, hexagonal.WithHealth(h), hexagonal.WithLogger(logger), hexagonal.WithComponent(hexagonal.Component{
		Name: "pool",
		Stop: func(context.Context) error { close(stopping); return nil },
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	<-running
	reports := make(chan hexagonal.Report, 1)
	go func() { reports <- h.Ready(context.Background()) }()
	<-entered
	cancel()
	<-stopping // the shutdown has begun: readiness is off
	close(release)
	rep := <-reports
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if rep.OK || rep.Phase != "stopping" {
		t.Errorf("Ready() returned after the shutdown began = OK %v, phase %q; want not OK, phase stopping", rep.OK, rep.Phase)
	}
}

// TestCheckWithLargestTimeout: a check given the largest Duration as its
// timeout (no bound, in effect) passes when it returns: the wait for it,
// its timeout and a grace past it, does not overflow to a negative
// duration, which would time it out at once.
func TestCheckWithLargestTimeout(t *testing.T) {
	returned := make(chan struct{})
	h := newHealth(t, hexagonal.WithCheck(hexagonal.Check{
		Name: "db", Timeout: time.Duration(math.MaxInt64),
		Func: func(context.Context) error {
			defer close(returned)
			time.Sleep(20 * time.Millisecond)
			return nil
		},
	}))
	rep := h.Ready(context.Background())
	<-returned // a Ready that did not wait leaves no run behind
	if !rep.OK {
		t.Errorf("Ready() = %+v; want OK: the check passed 20ms into its timeout", rep.Checks)
	}
}
