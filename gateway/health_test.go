package gateway_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// relisten serves h on addr again, once the port is free.
func relisten(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	var (
		l   net.Listener
		err error
	)
	for range 100 {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen on %s again: %v", addr, err)
	}
	s := httptest.NewUnstartedServer(h)
	_ = s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// waitFor sends requests until ok holds for n answers in a row, or fails
// after the deadline.
func waitFor(t *testing.T, srv *httptest.Server, path string, n int, what string, ok func(*http.Response) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	run := 0
	for run < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %d answers in a row where %s within 5s", n, what)
		}
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if ok(resp) {
			run++
		} else {
			run = 0
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestHealthChecksKillAndRestart kills a target, checks that health
// checks take it out of service so every request goes to the other, then
// restarts it on the same address and checks that it gets requests
// again.
func TestHealthChecksKillAndRestart(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	var probes sync.Map
	health := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			probes.Store(r.Header.Get("User-Agent"), true)
			return
		}
		w.Header().Set("X-Backend", "b")
	})
	b.handle(health)
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()},
			HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: 20 * time.Millisecond,
				HealthyThreshold: 2, UnhealthyThreshold: 2}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))

	waitFor(t, srv, "/", 2, "both targets answer", func(r *http.Response) bool { return r.StatusCode == 200 })
	addr := b.Listener.Addr().String()
	b.Close()
	waitFor(t, srv, "/", 20, "a answers (b is dead)", func(r *http.Response) bool {
		return r.StatusCode == 200 && r.Header.Get("X-Backend") == "a"
	})

	relisten(t, addr, health)
	sawB := false
	waitFor(t, srv, "/", 1, "b answers again", func(r *http.Response) bool {
		sawB = r.Header.Get("X-Backend") == "b"
		return sawB
	})
	ua := ""
	probes.Range(func(k, _ any) bool { ua = k.(string); return false })
	if ua == "" {
		t.Errorf("no health check seen")
	}
}

// TestOutlierEjectionKillAndRestart checks passive ejection of a target
// that dies: its refused connections (502s) eject it, the requests that
// follow all go to the other target, and once it is restarted on its
// address and its ejection is over (the test's clock), it gets requests
// again.
func TestOutlierEjectionKillAndRestart(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	var now atomic.Int64
	now.Store(int64(time.Hour))
	const ejection = time.Minute
	_, srv := start(t,
		gateway.WithClock(now.Load),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()},
			Outlier: &gateway.Outlier{ConsecutiveFailures: 2, BaseEjection: ejection}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	backend := func() (int, string) {
		t.Helper()
		resp, _ := get(t, srv, "/")
		return resp.StatusCode, resp.Header.Get("X-Backend")
	}
	seen := map[string]int{}
	for range 4 {
		code, name := backend()
		if code != http.StatusOK {
			t.Fatalf("both targets up: status %d", code)
		}
		seen[name]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Fatalf("both targets up: %v; want 2 each (round robin)", seen)
	}

	addr := b.Listener.Addr().String()
	b.Close()
	failed := 0
	for range 4 { // round robin: b's turn comes every other request
		if code, _ := backend(); code == http.StatusBadGateway {
			failed++
		}
	}
	if failed != 2 {
		t.Fatalf("b dead: %d of 4 requests got 502; want 2 (b's turns, until its second failure ejects it)", failed)
	}
	for i := range 10 {
		if code, name := backend(); code != http.StatusOK || name != "a" {
			t.Fatalf("b ejected, request %d: status %d from %q; want 200 from a", i, code, name)
		}
	}

	relisten(t, addr, b.Server.Config.Handler)
	if code, name := backend(); code != http.StatusOK || name != "a" {
		t.Fatalf("b restarted, still ejected: status %d from %q; want 200 from a", code, name)
	}
	now.Add(int64(ejection))
	seen = map[string]int{}
	for range 4 {
		code, name := backend()
		if code != http.StatusOK {
			t.Fatalf("b restarted, ejection over: status %d", code)
		}
		seen[name]++
	}
	if seen["b"] == 0 {
		t.Errorf("b restarted, ejection over: %v; want b to get requests again", seen)
	}
}

// TestOutlierEjectionGrows checks passive ejection: a target that keeps
// failing is ejected after ConsecutiveFailures, re-admitted once the
// ejection time has passed and not before, and ejected again for twice
// as long, then four times. The gateway's clock is the test's, which
// moves only when the test moves it: nothing depends on how fast the
// machine is.
func TestOutlierEjectionGrows(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	var now atomic.Int64
	now.Store(int64(time.Hour)) // any reading: only differences count
	const base = 80 * time.Millisecond
	_, srv := start(t,
		gateway.WithClock(now.Load),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()},
			Outlier: &gateway.Outlier{ConsecutiveFailures: 3, BaseEjection: base, MaxEjection: 8 * base}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	send := func() {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	// failUntilEjected sends requests until b has failed 3 times since it
	// was admitted (round-robin gives it every other one), which ejects
	// it.
	var admitted int64 // b's hits when it was last admitted
	failUntilEjected := func(round int) {
		t.Helper()
		want := admitted + 3
		for i := 0; b.hits.Load() < want; i++ {
			if i == 20 {
				t.Fatalf("round %d: b was hit %d times in 20 requests; want %d", round, b.hits.Load(), want)
			}
			send()
		}
	}
	// ejectedFor checks that b gets no request while the clock is short of
	// d past the ejection, and one again once it has passed.
	ejectedFor := func(round int, d time.Duration) {
		t.Helper()
		ejected := now.Load()
		hits := b.hits.Load()
		for _, at := range []time.Duration{0, d / 2, d - 1} {
			now.Store(ejected + int64(at))
			for range 4 {
				send()
			}
			if n := b.hits.Load(); n != hits {
				t.Fatalf("round %d: b was hit %d times %v into an ejection of %v; want none", round, n-hits, at, d)
			}
		}
		now.Store(ejected + int64(d))
		admitted = hits
		for range 2 { // round-robin: one of two is b's
			send()
		}
		if n := b.hits.Load(); n == hits {
			t.Fatalf("round %d: b was not hit once its ejection of %v was over", round, d)
		}
	}
	for round, d := range []time.Duration{base, 2 * base, 4 * base} {
		failUntilEjected(round + 1)
		ejectedFor(round+1, d)
	}
	if n := a.hits.Load(); n == 0 {
		t.Errorf("a was never hit")
	}
}

// TestAllTargetsOut checks that an upstream whose every target is ejected
// answers 503 with Retry-After, without calling the target, and that the
// upstream's own 503 before that was passed on as it was.
func TestAllTargetsOut(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "b")
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
			Outlier: &gateway.Outlier{ConsecutiveFailures: 1, BaseEjection: 5 * time.Second}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	resp, body := get(t, srv, "/")
	if resp.StatusCode != 503 || resp.Header.Get("X-Backend") != "b" || body != "maintenance\n" {
		t.Errorf("first request: %d from %q: %q; want the upstream's own 503", resp.StatusCode, resp.Header.Get("X-Backend"), body)
	}
	resp, body = get(t, srv, "/")
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 503 || resp.Header.Get("X-Backend") != "" || ra < 4 || ra > 5 {
		t.Errorf("with the target ejected: %d, Retry-After %q, from %q: %q; want the gateway's 503 with Retry-After 5",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("X-Backend"), body)
	}
	if n := b.hits.Load(); n != 1 {
		t.Errorf("target called %d times; want 1", n)
	}
}

// TestRetryWithNoTargetLeftKeepsTheAnswer checks that when a retry finds
// no target in service, the client gets the upstream's last answer
// rather than the gateway's 503.
func TestRetryWithNoTargetLeftKeepsTheAnswer(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
			Outlier: &gateway.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Minute},
			Retry:   &gateway.Retry{Attempts: 3}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	resp, body := get(t, srv, "/")
	if resp.StatusCode != 503 || body != "maintenance\n" || b.hits.Load() != 1 {
		t.Errorf("retry with the only target ejected: %d %q after %d attempts; want the upstream's own 503 after 1", resp.StatusCode, body, b.hits.Load())
	}
}

// TestBreakerPerTarget checks that each target has its own breaker: one
// that fails is cut off while the other serves, and when every breaker is
// open the upstream answers 503 with the breakers' Retry-After.
func TestBreakerPerTarget(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	fail := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }
	b.handle(fail)
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()},
			Breaker: &gateway.Breaker{Options: []circuitbreaker.Option{
				circuitbreaker.WithConsecutiveFailures(2), circuitbreaker.WithOpenDuration(7 * time.Second)}}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	seq := count(sequence(t, srv.URL+"/", srv.Client(), 20))
	if seq["a"] != 18 || b.hits.Load() != 2 {
		t.Errorf("20 requests with b failing: %v, b called %d times; want b cut off after 2 failures", seq, b.hits.Load())
	}
	a.handle(fail)
	for range 2 {
		get(t, srv, "/")
	}
	resp, _ := get(t, srv, "/")
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 503 || ra < 6 || ra > 7 {
		t.Errorf("every breaker open: %d with Retry-After %q; want 503 with about 7", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestUpdateKeepsTargetState checks that a swap does not forget what the
// gateway knows: an ejected target stays ejected in the new table, a
// breaker stays open when the upstream's Breaker is the same pointer, and
// starts closed with a new one.
func TestUpdateKeepsTargetState(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	breaker := &gateway.Breaker{Options: []circuitbreaker.Option{
		circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Minute)}}
	table := func(br *gateway.Breaker, outlier *gateway.Outlier) []gateway.Option {
		return []gateway.Option{
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()},
				Breaker: br, Outlier: outlier}),
			gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}),
		}
	}
	g, srv := start(t, table(nil, &gateway.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Minute})...)
	sequence(t, srv.URL+"/", srv.Client(), 2) // b fails once: ejected
	if err := g.Update(table(nil, &gateway.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Minute})...); err != nil {
		t.Fatal(err)
	}
	before := b.hits.Load()
	if got := count(sequence(t, srv.URL+"/", srv.Client(), 10)); got["a"] != 10 || b.hits.Load() != before {
		t.Errorf("after Update, an ejected target got requests: %v", got)
	}

	// Breakers: the same pointer keeps b's open breaker.
	b2 := newBackend(t, "b2")
	b2.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	b = b2
	if err := g.Update(table(breaker, nil)...); err != nil {
		t.Fatal(err)
	}
	sequence(t, srv.URL+"/", srv.Client(), 2) // b2 fails once: its breaker opens
	if err := g.Update(table(breaker, nil)...); err != nil {
		t.Fatal(err)
	}
	before = b2.hits.Load()
	sequence(t, srv.URL+"/", srv.Client(), 10)
	if b2.hits.Load() != before {
		t.Errorf("after Update with the same Breaker, b2's open breaker let %d requests through", b2.hits.Load()-before)
	}
	fresh := *breaker
	if err := g.Update(table(&fresh, nil)...); err != nil {
		t.Fatal(err)
	}
	sequence(t, srv.URL+"/", srv.Client(), 2)
	if b2.hits.Load() == before {
		t.Errorf("after Update with a new Breaker, b2 got no request; want its breaker closed again")
	}
}

// TestEjectionCap checks MaxEjectedPercent: with every target failing,
// no more than the cap are ejected, so the upstream keeps answering (the
// upstream's own errors) rather than turning everything away.
func TestEjectionCap(t *testing.T) {
	var bs []*backend
	var ts []gateway.Target
	for i := range 4 {
		b := newBackend(t, strconv.Itoa(i))
		b.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
		bs = append(bs, b)
		ts = append(ts, b.target())
	}
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: ts,
			Outlier: &gateway.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Minute, MaxEjectedPercent: 50}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	sequence(t, srv.URL+"/", srv.Client(), 20)
	served := 0
	for _, b := range bs {
		if b.hits.Load() > 1 {
			served++
		}
	}
	if served != 2 {
		t.Errorf("%d targets kept getting requests; want 2 (half ejected, half kept by the cap)", served)
	}
}

// TestRefusedUpdateLeavesLiveTargets: building a table put the targets
// that nothing checks back in service, and gave the targets of a kept
// breaker group their breakers, before the table could still be
// refused (a middleware returning nil); a refused Update then re-admitted
// an ejected target of the live table, and left a breaker, with its
// metric series, for a target that only the refused table named.
func TestRefusedUpdateLeavesLiveTargets(t *testing.T) {
	tel := telemetrytest.New(t)
	a, c := newBackend(t, "a"), newBackend(t, "c")
	a.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	var now atomic.Int64
	now.Store(int64(time.Hour))
	breaker := &gateway.Breaker{}
	up := gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target()}, Breaker: breaker,
		Outlier: &gateway.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Minute}}
	route := gateway.Route{Pattern: "/", Upstream: "u"}
	g, srv := start(t, gateway.WithClock(now.Load),
		gateway.WithTracerProvider(tel.TracerProvider), gateway.WithMeterProvider(tel.MeterProvider),
		gateway.WithUpstreams(up), gateway.WithRoutes(route))
	if resp, _ := get(t, srv, "/"); resp.StatusCode != http.StatusServiceUnavailable || a.hits.Load() != 1 {
		t.Fatalf("first request: status %d, a hit %d times; want a's 503, once", resp.StatusCode, a.hits.Load())
	}
	ejected := func(when string) {
		t.Helper()
		resp, _ := get(t, srv, "/")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || a.hits.Load() != 1 {
			t.Fatalf("%s: status %d, Retry-After %q, a hit %d times; want the gateway's 503 with Retry-After, a not hit again (ejected)",
				when, resp.StatusCode, resp.Header.Get("Retry-After"), a.hits.Load())
		}
	}
	ejected("after a's failure")

	// No outlier detection, one more target, the same Breaker: all of it
	// would touch the live table's targets, had the table been taken.
	refused := gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), c.target()}, Breaker: breaker}
	broken := route
	broken.Middleware = []gateway.Middleware{func(http.Handler) http.Handler { return nil }}
	if err := g.Update(gateway.WithUpstreams(refused), gateway.WithRoutes(broken)); err == nil {
		t.Fatal("Update() with a middleware returning nil = nil; want an error")
	}
	ejected("after the refused Update")
	aHost, cHost := strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(c.URL, "http://")
	names := map[string]bool{}
	for _, set := range telemetrytest.AttributeSets(tel.Metric(t, "circuitbreaker.state")) {
		name, _ := set.Value(circuitbreaker.AttrName)
		names[name.AsString()] = true
	}
	if !names["u/"+aHost] {
		t.Errorf("circuitbreaker.state names %v; want u/%s, the live target's breaker", names, aHost)
	}
	if names["u/"+cHost] {
		t.Errorf("circuitbreaker.state names u/%s, a target of the refused table only", cHost)
	}
}

// A health endpoint that sends its headers at once and then stalls the
// body past Timeout takes longer than Timeout: HealthCheck's doc says
// such a check fails. The probe reads the body under the timeout but
// ignores the read's error, and passes on the status alone.
func TestHealthCheckBodyPastTimeoutFails(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	release := make(chan struct{})
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("checking"))
			w.(http.Flusher).Flush()
			select { // the verdict never comes within Timeout
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Header().Set("X-Backend", "b")
	})
	t.Cleanup(func() { close(release) })
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()},
			HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: 20 * time.Millisecond,
				Timeout: 50 * time.Millisecond, UnhealthyThreshold: 1}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	waitFor(t, srv, "/", 20, "a answers (b's checks take longer than Timeout)", func(r *http.Response) bool {
		return r.StatusCode == 200 && r.Header.Get("X-Backend") == "a"
	})
}

// probedPaths serves a backend whose health checks record the escaped
// path they were sent to.
func probedPaths(t *testing.T, b *backend) func() []string {
	var mu sync.Mutex
	var paths []string
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("User-Agent"), "otelpatterns-gateway-health-check/") {
			mu.Lock()
			paths = append(paths, r.URL.EscapedPath())
			mu.Unlock()
		}
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), paths...)
	}
}

func firstProbe(t *testing.T, got func() []string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if p := got(); len(p) > 0 {
			return p[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no health check within 5s")
		}
	}
}

// HealthCheck.Path is "the path (and query) probed": its escaping is
// part of it. healthURL keeps the decoded path only, so "%2F" is sent as
// "/", a different resource for the target.
func TestHealthCheckPathKeepsEscaping(t *testing.T) {
	b := newBackend(t, "b")
	got := probedPaths(t, b)
	start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
			HealthCheck: &gateway.HealthCheck{Path: "/status%2Fhealth", Interval: time.Hour}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	if p := firstProbe(t, got); p != "/status%2Fhealth" {
		t.Errorf("health check sent to %q; want %q (HealthCheck.Path as written)", p, "/status%2Fhealth")
	}
}

// A target URL's path is put in front of every request's path with its
// escaping (the proxy uses its raw path); the health check drops it.
func TestHealthCheckTargetPathKeepsEscaping(t *testing.T) {
	b := newBackend(t, "b")
	got := probedPaths(t, b)
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: b.URL + "/tenant%2Fa"}},
			HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: time.Hour}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	p := firstProbe(t, got)
	// What a proxied request to /healthz reaches, for comparison.
	b.handle(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Path", r.URL.EscapedPath()) })
	resp, _ := get(t, srv, "/healthz")
	if proxied := resp.Header.Get("X-Path"); p != proxied {
		t.Errorf("health check sent to %q; a proxied request for /healthz goes to %q: the target's path must be the same", p, proxied)
	}
}

// Outlier ejection's MaxEjectedPercent is there so that a fault shared
// by the targets does not take all of them out. With one of two targets
// out of service by its health checks, the other is still ejected
// (the cap counts ejected targets only), and the upstream has none left.
func TestEjectionCapCountsUnhealthyTargets(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("X-Backend", "a")
	})
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.Header().Set("X-Backend", "b")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Backend", "b")
	})
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()},
			HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: 20 * time.Millisecond, UnhealthyThreshold: 1},
			Outlier:     &gateway.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour, MaxEjectedPercent: 50}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	waitFor(t, srv, "/", 10, "b answers (a is unhealthy)", func(r *http.Response) bool {
		return r.StatusCode == 200 && r.Header.Get("X-Backend") == "b"
	})
	get(t, srv, "/slow") // b's 503: one failure
	resp, _ := get(t, srv, "/")
	if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "b" {
		t.Errorf("after one 503 of the last target in service: status %d from %q (Retry-After %q); want 200 from b (MaxEjectedPercent 50 of 2 targets, one already out)",
			resp.StatusCode, resp.Header.Get("X-Backend"), resp.Header.Get("Retry-After"))
	}
}

// gateway.upstream.health reports 0 for a target its checks took out, 1
// once they put it back.
func TestHealthGaugeFollowsChecks(t *testing.T) {
	tel := telemetrytest.New(t)
	b := newBackend(t, "b")
	var fail sync.Mutex
	failing := true
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		fail.Lock()
		f := failing
		fail.Unlock()
		if r.URL.Path == "/healthz" && f {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	start(t, gateway.WithMeterProvider(tel.MeterProvider), gateway.WithTracerProvider(tel.TracerProvider),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
			HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: 10 * time.Millisecond,
				UnhealthyThreshold: 1, HealthyThreshold: 1}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	gauge := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			pts := metricPoints(t, tel, "gateway.upstream.health")
			if len(pts) == 1 {
				for _, v := range pts {
					if v == want {
						return
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway.upstream.health = %v; want one series at %d", pts, want)
			}
		}
	}
	gauge(0)
	fail.Lock()
	failing = false
	fail.Unlock()
	gauge(1)
}

// A fragment is never sent, so a HealthCheck.Path with one probes
// another path than written; target URLs with one are refused.
func TestHealthCheckPathFragmentRefused(t *testing.T) {
	b := newBackend(t, "b")
	for _, p := range []string{"/healthz#ready", "#ready"} {
		g, err := gateway.New(
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
				HealthCheck: &gateway.HealthCheck{Path: p, Interval: time.Hour}}),
			gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
		if err == nil {
			_ = g.Close()
			t.Errorf("New with HealthCheck.Path %q = nil error; want health_check.path refused (a fragment is never sent)", p)
		}
	}
}

// After Close no connection to an upstream is left open, health checks'
// included.
func TestCloseLeavesNoHealthCheckConnection(t *testing.T) {
	var mu sync.Mutex
	open := map[string]bool{}
	b := &backend{name: "b"}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	b.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open[c.RemoteAddr().String()] = true
		case http.StateClosed, http.StateHijacked:
			delete(open, c.RemoteAddr().String())
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	got := probedPaths(t, b)
	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
			HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: 5 * time.Millisecond}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(got()) < 5; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 5 checks in 5s")
		}
	}
	_ = g.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(open)
		mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 5s after Close", n)
		}
	}
}

// An H2C upstream's health checks go over HTTP/2 without TLS, as its
// requests do.
func TestHealthCheckH2C(t *testing.T) {
	protos := make(chan string, 16)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			select {
			case protos <- r.Proto:
			default:
			}
		}
	}))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Start()
	t.Cleanup(s.Close)
	start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "grpc", H2C: true, Targets: []gateway.Target{{URL: s.URL}},
			HealthCheck: &gateway.HealthCheck{Path: "/healthz", Interval: time.Hour}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "grpc"}))
	select {
	case p := <-protos:
		if p != "HTTP/2.0" {
			t.Errorf("health check over %s; want HTTP/2.0", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no health check reached the h2c target in 5s")
	}
}
