package gateway

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// scriptedUpstream is an upstream transport whose answers the test scripts: a
// request to "/hold" reports its host on arrived and waits for release,
// then is answered 502; "/fail" is answered 502 at once; "/healthz" is
// answered by health; anything else 200, naming the target in X-Target.
type scriptedUpstream struct {
	arrived chan string
	release chan struct{}
	health  atomic.Int32 // status of /healthz; 0 means 200
}

func newScriptedUpstream() *scriptedUpstream {
	return &scriptedUpstream{arrived: make(chan string, 16), release: make(chan struct{})}
}

func (f *scriptedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	code := http.StatusOK
	switch r.URL.Path {
	case "/hold":
		f.arrived <- r.URL.Host
		<-f.release
		code = http.StatusBadGateway
	case "/fail":
		code = http.StatusBadGateway
	case "/healthz":
		if c := f.health.Load(); c != 0 {
			code = int(c)
		}
	}
	return &http.Response{StatusCode: code, ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"X-Target": {r.URL.Host}}, Body: http.NoBody, Request: r}, nil
}

func newQuietGateway(t *testing.T, opts ...Option) *Gateway {
	t.Helper()
	opts = append(opts, WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider()))
	g, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func quietGet(g *Gateway, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://gw.test"+path, nil))
	return rec
}

// holdRequest sends GET /hold through g in the background and returns once
// the fake upstream holds it, with the target it reached and a wait for
// the request's end.
func holdRequest(t *testing.T, g *Gateway, f *scriptedUpstream) (string, func() *httptest.ResponseRecorder) {
	t.Helper()
	rec := httptest.NewRecorder()
	var wg sync.WaitGroup
	wg.Go(func() {
		g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://gw.test/hold", nil))
	})
	select {
	case host := <-f.arrived:
		return host, func() *httptest.ResponseRecorder { wg.Wait(); return rec }
	case <-time.After(5 * time.Second):
		t.Fatal("the held request never reached the upstream")
		return "", nil
	}
}

// A request that started on the old table and fails after an Update that
// turned outlier ejection off ejects nothing: the target states are
// shared, and the old table's policy must not eject a target that the
// new table, with no ejection, would never put back.
func TestOldRequestEjectsUnderLivePolicy(t *testing.T) {
	f := newScriptedUpstream()
	routes := WithRoutes(Route{Pattern: "/", Upstream: "u"})
	ejecting := Upstream{Name: "u", Targets: []Target{{URL: "http://a.test"}}, Transport: f,
		Outlier: &Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour}}
	g := newQuietGateway(t, WithUpstreams(ejecting), routes)

	_, wait := holdRequest(t, g, f)
	plain := ejecting
	plain.Outlier = nil
	if err := g.Update(WithUpstreams(plain), routes); err != nil {
		t.Fatal(err)
	}
	close(f.release) // the old table's request fails now: 502
	if rec := wait(); rec.Code != http.StatusBadGateway {
		t.Fatalf("held request: status %d; want 502", rec.Code)
	}
	if rec := quietGet(g, "/ok"); rec.Code != http.StatusOK {
		t.Errorf("after an Update without outlier ejection and an old request's failure: status %d (Retry-After %q); want 200 from the target",
			rec.Code, rec.Header().Get("Retry-After"))
	}
}

// MaxEjectedPercent holds against the live table's targets: two requests
// of an old table of four targets fail after an Update to two of them,
// and only one of the two is ejected.
func TestOldRequestsKeepLiveEjectionCap(t *testing.T) {
	f := newScriptedUpstream()
	routes := WithRoutes(Route{Pattern: "/", Upstream: "u"})
	outlier := &Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour, MaxEjectedPercent: 50}
	four := Upstream{Name: "u", Transport: f, Outlier: outlier, Targets: []Target{
		{URL: "http://a.test"}, {URL: "http://b.test"}, {URL: "http://c.test"}, {URL: "http://d.test"}}}
	g := newQuietGateway(t, WithUpstreams(four), routes)

	h1, wait1 := holdRequest(t, g, f)
	h2, wait2 := holdRequest(t, g, f)
	if h1 != "a.test" || h2 != "b.test" {
		t.Fatalf("round robin sent the held requests to %s and %s; want a.test and b.test", h1, h2)
	}
	two := four
	two.Targets = four.Targets[:2]
	if err := g.Update(WithUpstreams(two), routes); err != nil {
		t.Fatal(err)
	}
	close(f.release)
	wait1()
	wait2()
	ejected := 0
	for _, tg := range g.table.Load().byName["u"].targets {
		if tg.state.ejectedUntil.Load() != 0 {
			ejected++
		}
	}
	if rec := quietGet(g, "/ok"); rec.Code != http.StatusOK || ejected > 1 {
		t.Errorf("new table of 2 targets with MaxEjectedPercent 50: %d ejected, a request got %d; want at most 1 ejected and 200",
			ejected, rec.Code)
	}
}

// A target ejected for an hour and failing its health checks (every
// minute) is back no sooner than its ejection ends: the 503's Retry-After
// says an hour, not a minute.
func TestRetryAfterUnhealthyAndEjected(t *testing.T) {
	f := newScriptedUpstream()
	now := int64(time.Hour)
	routes := WithRoutes(Route{Pattern: "/", Upstream: "u"})
	up := Upstream{Name: "u", Targets: []Target{{URL: "http://a.test"}}, Transport: f,
		Outlier: &Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour}}
	g := newQuietGateway(t, WithUpstreams(up), routes, withClock(func() int64 { return now }))
	if rec := quietGet(g, "/fail"); rec.Code != http.StatusBadGateway {
		t.Fatalf("failing request: status %d; want 502", rec.Code)
	}
	f.health.Store(http.StatusInternalServerError)
	up.HealthCheck = &HealthCheck{Path: "/healthz", Interval: time.Minute, UnhealthyThreshold: 1, HealthyThreshold: 1}
	if err := g.Update(WithUpstreams(up), routes); err != nil {
		t.Fatal(err)
	}
	st := g.table.Load().byName["u"].targets[0].state
	for deadline := time.Now().Add(5 * time.Second); st.healthy.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the health check never took the target out")
		}
	}
	rec := quietGet(g, "/ok")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d; want 503", rec.Code)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "3600" {
		t.Errorf("Retry-After %q; want 3600 (the target is ejected for another hour)", ra)
	}
}

// Each BaseEjection a target spends back in service takes one doubling
// off its next ejection, also when an Update without outlier ejection
// put it back: ejected twice, a day in service, its next ejection lasts
// one BaseEjection, not four.
func TestEjectionLevelDecaysWhileOutlierOff(t *testing.T) {
	f := newScriptedUpstream()
	var now atomic.Int64
	now.Store(int64(time.Hour))
	routes := WithRoutes(Route{Pattern: "/", Upstream: "u"})
	outlier := &Outlier{ConsecutiveFailures: 1, BaseEjection: time.Minute, MaxEjection: time.Hour}
	up := Upstream{Name: "u", Targets: []Target{{URL: "http://a.test"}}, Transport: f, Outlier: outlier}
	g := newQuietGateway(t, WithUpstreams(up), routes, withClock(now.Load))

	quietGet(g, "/fail") // ejected for 1m
	now.Add(int64(time.Minute))
	quietGet(g, "/fail") // back, and at once ejected again: 2m
	if rec := quietGet(g, "/ok"); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "120" {
		t.Fatalf("after the second ejection: status %d, Retry-After %q; want 503, 120", rec.Code, rec.Header().Get("Retry-After"))
	}
	plain := up
	plain.Outlier = nil
	if err := g.Update(WithUpstreams(plain), routes); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(24 * time.Hour)) // a day in service
	if err := g.Update(WithUpstreams(up), routes); err != nil {
		t.Fatal(err)
	}
	quietGet(g, "/fail")
	rec := quietGet(g, "/ok")
	if ra := rec.Header().Get("Retry-After"); rec.Code != http.StatusServiceUnavailable || ra != "60" {
		t.Errorf("first ejection after a day in service: status %d, Retry-After %q; want 503, 60 (BaseEjection)", rec.Code, ra)
	}
}
