package gateway_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// An attempt that fails in the transport has the same error.type on
// http.client.request.duration as on the server span: no wrapper of the
// gateway's own names every failure alike.
func TestClientMetricErrorType(t *testing.T) {
	t.Parallel()
	tel := telemetrytest.New(t)
	_, srv := start(t, gateway.WithMeterProvider(tel.MeterProvider), gateway.WithTracerProvider(tel.TracerProvider),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: "http://" + freeAddr(t)}}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /x", Upstream: "u"}))
	if resp, _ := get(t, srv, "/x"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d; want 502", resp.StatusCode)
	}
	servers := tel.SpansNamed("GET /x")
	if len(servers) != 1 {
		t.Fatalf("%d server spans; want 1", len(servers))
	}
	se, _ := spanAttr(servers[0], semconv.ErrorTypeKey)
	var got []string
	for _, set := range telemetrytest.AttributeSets(tel.Metric(t, "http.client.request.duration")) {
		if v, ok := set.Value(semconv.ErrorTypeKey); ok {
			got = append(got, v.AsString())
		}
	}
	if len(got) != 1 {
		t.Fatalf("http.client.request.duration error.type values %q; want one", got)
	}
	if got[0] != se {
		t.Errorf("connection refused: http.client.request.duration{error.type=%q}, server span error.type %q; want the same value", got[0], se)
	}
}

// An Update that keeps a target keeps its breaker, also when the kept
// group had to evict while the new table took its breakers (the old
// table's target then holds another breaker of the same key): an open
// breaker's target is not sent requests again after a later Update.
func TestUpdateKeepsLiveBreakerAfterEviction(t *testing.T) {
	t.Parallel()
	good, bad := newBackend(t, "good"), newBackend(t, "bad")
	bad.handle(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	br := &gateway.Breaker{Options: []circuitbreaker.Option{
		circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour)}}
	table := func(ts ...gateway.Target) []gateway.Option {
		return []gateway.Option{
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: ts, Breaker: br}),
			gateway.WithRoutes(gateway.Route{Pattern: "GET /x", Upstream: "u"}),
		}
	}
	// One target: the group holds at most 1024 breakers.
	g, srv := start(t, table(bad.target())...)
	// 1024 targets: the group is full. None is ever sent a request.
	full := []gateway.Target{bad.target()}
	for i := range 1023 {
		full = append(full, gateway.Target{URL: fmt.Sprintf("http://127.0.0.2:%d", i+1)})
	}
	if err := g.Update(table(full...)...); err != nil {
		t.Fatal(err)
	}
	// Two targets, bad kept: good's new breaker evicts bad's, and bad's
	// own Get makes it a new one.
	two := table(good.target(), bad.target())
	if err := g.Update(two...); err != nil {
		t.Fatal(err)
	}
	for range 4 { // round robin: bad answers 500 once, and its breaker opens
		get(t, srv, "/x")
	}
	if n := bad.hits.Load(); n != 1 {
		t.Fatalf("bad was sent %d requests; want 1, then its breaker open", n)
	}
	// The same table again.
	if err := g.Update(two...); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		get(t, srv, "/x")
	}
	if n := bad.hits.Load(); n != 1 {
		t.Errorf("after an Update that changed nothing, bad (breaker open for an hour) was sent %d more requests: its breaker was reset", n-1)
	}
}

// errShed is what a user's own transport returns when it sheds load: not
// the target's fault.
var errShed = errors.New("shed")

type shedTransport struct{ calls int }

func (s *shedTransport) RoundTrip(*http.Request) (*http.Response, error) {
	s.calls++
	return nil, errShed
}

// A breaker classifier (Breaker.Options) sees the transport's error as
// it is, whether or not the gateway has telemetry: a classifier comparing
// it (err == errShed, or a type assertion) must not count it a failure
// because tracing is on.
func TestBreakerClassifierSeesTransportError(t *testing.T) {
	t.Parallel()
	for _, traced := range []bool{false, true} {
		t.Run(fmt.Sprint("traced=", traced), func(t *testing.T) {
			rt := &shedTransport{}
			var seen []string
			br := &gateway.Breaker{Options: []circuitbreaker.Option{
				circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour),
				circuitbreaker.WithClassifier(func(err error) circuitbreaker.Outcome {
					if err == errShed {
						return circuitbreaker.Ignored
					}
					if err != nil {
						seen = append(seen, fmt.Sprintf("%T", err))
					}
					return circuitbreaker.DefaultClassifier(err)
				})}}
			opts := []gateway.Option{
				gateway.WithUpstreams(gateway.Upstream{Name: "u", Transport: rt,
					Targets: []gateway.Target{{URL: "http://127.0.0.2:1"}}, Breaker: br}),
				gateway.WithRoutes(gateway.Route{Pattern: "GET /x", Upstream: "u"}),
			}
			if traced {
				tel := telemetrytest.New(t)
				opts = append(opts, gateway.WithMeterProvider(tel.MeterProvider), gateway.WithTracerProvider(tel.TracerProvider))
			} else {
				opts = append(opts, gateway.WithMeterProvider(metricnoop.NewMeterProvider()), gateway.WithTracerProvider(tracenoop.NewTracerProvider()))
			}
			_, srv := start(t, opts...)
			for range 3 {
				get(t, srv, "/x")
			}
			if rt.calls != 3 {
				t.Errorf("the transport was called %d times, not 3: the classifier saw %v, not errShed, and the breaker opened", rt.calls, seen)
			}
		})
	}
}

// Targets of one upstream must differ in host and port: an IPv6 target
// written without its default port has the host and port of the same
// address written with it, as "http://a" has those of "http://a:80".
func TestTargetsSameHostPortIPv6(t *testing.T) {
	t.Parallel()
	for _, pair := range [][2]string{
		{"http://10.0.0.1", "http://10.0.0.1:80"}, // refused, as it should be
		{"http://[fd00::1]", "http://[fd00::1]:80"},
	} {
		_, err := gateway.New(
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: pair[0]}, {URL: pair[1]}}}),
			gateway.WithRoutes(gateway.Route{Pattern: "GET /x", Upstream: "u"}))
		if err == nil {
			t.Errorf("New accepted targets %q and %q, of one host and port", pair[0], pair[1])
		}
	}
}
