package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/retry"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newBreakerUpstream returns the upstream "up" of a new gateway: targets
// a.test and b.test, each behind a breaker, answered by transport.
func newBreakerUpstream(t *testing.T, transport http.RoundTripper, retry *Retry) *upstream {
	t.Helper()
	g, err := New(
		WithUpstreams(Upstream{Name: "up", Targets: []Target{{URL: "http://a.test"}, {URL: "http://b.test"}},
			Breaker: &Breaker{}, Retry: retry, Transport: transport}),
		WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g.table.Load().byName["up"]
}

// answerWithHost answers every request 200, saying which target it
// reached in X-Target.
var answerWithHost = roundTripFunc(func(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, ProtoMajor: 1, Header: http.Header{"X-Target": {r.URL.Host}},
		Body: http.NoBody, Request: r}, nil
})

// TestBreakerOpensAfterChoose: choose leaves a closed breaker to admit
// the attempt itself, in sendVia (its Execute). A breaker that opens
// between the two (other requests' failures trip it) must not turn the
// attempt away while another target can take it, as choose itself would
// not have: the attempt went nowhere, and the client got 503.
func TestBreakerOpensAfterChoose(t *testing.T) {
	u := newBreakerUpstream(t, answerWithHost, nil)
	for _, tried := range []bitset{nil, make(bitset, 1)} { // a request's only attempt, and one of a retried request
		req, _ := http.NewRequest(http.MethodGet, "http://up/x", nil)
		i, tgt, done, err := u.choose(req.Context(), tried, false)
		if err != nil || done != nil {
			t.Fatalf("choose = %d, done %v, %v; want a target whose closed breaker admits the attempt itself", i, done != nil, err)
		}
		tgt.breaker.Trip()
		resp, err := u.sendVia(req, i, tgt, done, tried, true)
		if err != nil {
			t.Fatalf("tried %v: the chosen target's breaker opened before the attempt: %v; want the attempt sent to the other target", tried, err)
		}
		_ = resp.Body.Close()
		if other := u.targets[1-i].host; resp.Header.Get("X-Target") != other {
			t.Errorf("tried %v: the attempt reached %q; want %q", tried, resp.Header.Get("X-Target"), other)
		}
		tgt.breaker.Reset()
	}
}

// TestBreakerOpensAfterChooseRejectsOnce: an attempt that a breaker
// opened since choose turns away, with no other target to take it, is
// one rejection in that breaker's telemetry, not one for Execute and
// another for choose asking the same breaker again; and the client is
// told to come back when the breaker may admit a probe.
func TestBreakerOpensAfterChooseRejectsOnce(t *testing.T) {
	g, err := New(
		WithUpstreams(Upstream{Name: "up", Targets: []Target{{URL: "http://a.test"}},
			Breaker: &Breaker{}, Transport: answerWithHost}),
		WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Close() }()
	u := g.table.Load().byName["up"]
	req, _ := http.NewRequest(http.MethodGet, "http://up/x", nil)
	i, tgt, done, err := u.choose(req.Context(), nil, false)
	if err != nil || done != nil {
		t.Fatalf("choose = %d, done %v, %v; want the target, its closed breaker left to admit the attempt", i, done != nil, err)
	}
	tgt.breaker.Trip()
	_, err = u.sendVia(req, i, tgt, done, nil, true)
	var ue *unavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("sendVia through an open breaker = %v; want an *unavailableError", err)
	}
	if ue.retryAfter <= 0 {
		t.Errorf("Retry-After %v; want the open breaker's wait", ue.retryAfter)
	}
	if n := tgt.breaker.Snapshot().Rejections; n != 1 {
		t.Errorf("the breaker counted %d rejections of one attempt; want 1", n)
	}
}

// closeFunc is a response body, empty, that calls f when closed.
type closeFunc func()

func (closeFunc) Read([]byte) (int, error) { return 0, io.EOF }
func (f closeFunc) Close() error           { f(); return nil }

// TestRetryKeepsAnswerWhenBreakersOpen: a retried request's last answer
// is drained only once another attempt is admitted; when no target can
// take one, the client gets that answer. With the next attempt admitted
// by Execute after the drain, breakers opening in between (here as the
// answer is drained) left the client the gateway's 503 instead, the
// upstream's answer gone.
func TestRetryKeepsAnswerWhenBreakersOpen(t *testing.T) {
	var u *upstream
	transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == "a.test" {
			return &http.Response{StatusCode: http.StatusServiceUnavailable, ProtoMajor: 1, Header: http.Header{},
				Body: closeFunc(func() {
					for _, t := range u.targets {
						t.breaker.Trip()
					}
				}), Request: r}, nil
		}
		return answerWithHost(r)
	})
	u = newBreakerUpstream(t, transport, &Retry{Attempts: 2, Backoff: retry.Constant(0)})
	req, _ := http.NewRequest(http.MethodGet, "http://up/x", nil)
	resp, err := u.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v; want an upstream's answer", err)
	}
	_ = resp.Body.Close()
}

// TestBodyTooLargeCountsForNoTarget: an attempt that fails because the
// client's body went over the route's MaxBodyBytes is the client's
// doing: it must count against neither the target's breaker nor its
// outlier detection, or a client could open breakers and eject targets
// by sending large bodies.
func TestBodyTooLargeCountsForNoTarget(t *testing.T) {
	u := newBreakerUpstream(t, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if _, err := io.ReadAll(r.Body); err != nil {
			return nil, err // as http.Transport returns a body's read error
		}
		return answerWithHost(r)
	}), nil)
	u.spec.Outlier, u.spec.outlier.ConsecutiveFailures = &Outlier{}, 1
	req, _ := http.NewRequest(http.MethodPost, "http://up/x", nil)
	req.Body = &clientBody{rc: io.NopCloser(strings.NewReader(strings.Repeat("x", 100))), left: 10, limit: 10}
	if _, err := u.RoundTrip(req); err == nil {
		t.Fatal("RoundTrip of a body over the limit succeeded")
	}
	for _, tgt := range u.targets {
		if s := tgt.breaker.Snapshot(); s.Failures != 0 {
			t.Errorf("%s: the breaker counted %d failures; want none", tgt.host, s.Failures)
		}
		if n := tgt.state.consecutive.Load(); n != 0 || tgt.state.ejectedUntil.Load() != 0 {
			t.Errorf("%s: outlier detection counted %d failures (ejected until %d); want none", tgt.host, n, tgt.state.ejectedUntil.Load())
		}
	}
}

// TestTransportPanicEndsTheAttempt: a transport that panics (a custom
// Upstream.Transport's bug) must not leave the attempt in flight, which
// least-request balancing would count against the target for good, nor
// leave its breaker admission open (a half-open breaker's probe slot,
// held until the probe timeout): the panic goes on, and the attempt
// counts as a failure. Both admissions: Execute's (a plain request) and
// Allow's (a gRPC call, whose outcome may come in trailers).
func TestTransportPanicEndsTheAttempt(t *testing.T) {
	for _, grpc := range []bool{false, true} {
		u := newBreakerUpstream(t, roundTripFunc(func(*http.Request) (*http.Response, error) {
			panic("transport bug")
		}), nil)
		req, _ := http.NewRequest(http.MethodPost, "http://up/x", nil)
		if grpc {
			req.Header.Set("Content-Type", "application/grpc")
		}
		func() {
			defer func() {
				if r := recover(); r != "transport bug" {
					t.Errorf("grpc %v: recovered %v; want the transport's panic to go on", grpc, r)
				}
			}()
			_, _ = u.RoundTrip(req)
		}()
		failures := 0
		for _, tgt := range u.targets {
			if n := tgt.state.inflight.Load(); n != 0 {
				t.Errorf("grpc %v: target %s has %d attempts in flight after the panic; want 0", grpc, tgt.host, n)
			}
			failures += tgt.breaker.Snapshot().Failures
		}
		if failures != 1 {
			t.Errorf("grpc %v: the breakers counted %d failures; want the panicked attempt's 1", grpc, failures)
		}
	}
}

// TestGRPCContentTypeAnyCase: media types are case-insensitive, so a gRPC
// call or answer is one whatever the case of its content type: a call
// taken for a plain request would have its breaker told the outcome by
// the HTTP status (200), not by grpc-status.
func TestGRPCContentTypeAnyCase(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc": true, "Application/GRPC": true, "application/GRPC+proto": true,
		"APPLICATION/GRPC;charset=utf-8": true, "application/json": false, "application/grp": false, "": false,
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://up/x", nil)
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if got := grpcCall(req); got != want {
			t.Errorf("grpcCall(Content-Type %q) = %v; want %v", ct, got, want)
		}
		resp := &http.Response{ProtoMajor: 2, StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {ct}}}
		if got := isGRPC(resp); got != want {
			t.Errorf("isGRPC(Content-Type %q) = %v; want %v", ct, got, want)
		}
	}
	for _, ct := range []string{"application/grpc-web", "Application/GRPC-Web+proto"} {
		resp := &http.Response{ProtoMajor: 2, StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {ct}}}
		if isGRPC(resp) {
			t.Errorf("isGRPC(Content-Type %q) = true; want false: gRPC-Web carries its status in the body", ct)
		}
	}
}

// An Update that keeps an upstream's Breaker keeps its breakers, however
// many targets it adds: the group kept was bounded by the first table's
// size (1024 breakers at least), so an Update to more targets evicted
// live breakers from it; their targets went on with breakers that the
// group no longer held, whose series were gone and whose state the next
// Update lost.
func TestKeptBreakersOutgrowFirstTable(t *testing.T) {
	b := &Breaker{}
	up := Upstream{Name: "up", Targets: []Target{{URL: "http://a.test"}, {URL: "http://b.test"}}, Breaker: b, Transport: answerWithHost}
	g, err := New(WithUpstreams(up),
		WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	g.table.Load().byName["up"].targets[0].breaker.Trip()
	for i := range 1100 {
		up.Targets = append(up.Targets, Target{URL: fmt.Sprintf("http://t%d.test", i)})
	}
	if err := g.Update(WithUpstreams(up)); err != nil {
		t.Fatal(err)
	}
	u := g.table.Load().byName["up"]
	if n := u.group.Len(); n != len(up.Targets) {
		t.Errorf("the group holds %d breakers for %d targets", n, len(up.Targets))
	}
	for _, tg := range u.targets {
		if u.group.Get(u.breakerKey(tg)) != tg.breaker {
			t.Fatalf("target %s has a breaker the group no longer holds", tg.host)
		}
	}
	if s := u.targets[0].breaker.State(); s != circuitbreaker.StateOpen {
		t.Errorf("the tripped breaker is %v after the Update; want open", s)
	}
}
