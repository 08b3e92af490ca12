package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

func backends(t *testing.T, names ...string) ([]*backend, []gateway.Target) {
	var bs []*backend
	var ts []gateway.Target
	for _, n := range names {
		b := newBackend(t, n)
		bs = append(bs, b)
		ts = append(ts, b.target())
	}
	return bs, ts
}

// sequence sends n requests one after the other and returns which backend
// answered each.
func sequence(t *testing.T, url string, c *http.Client, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		out = append(out, resp.Header.Get("X-Backend"))
	}
	return out
}

func count(xs []string) map[string]int {
	m := map[string]int{}
	for _, x := range xs {
		m[x]++
	}
	return m
}

func TestRoundRobin(t *testing.T) {
	_, ts := backends(t, "a", "b", "c")
	ts[0].Weight = 10 // ignored
	_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: ts}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	got := count(sequence(t, srv.URL+"/", srv.Client(), 300))
	for _, n := range []string{"a", "b", "c"} {
		if got[n] != 100 {
			t.Errorf("round-robin over 300 requests: %v; want 100 each", got)
			break
		}
	}
}

// TestWeightedRoundRobinIsSmooth checks nginx's smooth weighted
// round-robin: weights 5, 1, 1 give a a b a c a a, repeated.
func TestWeightedRoundRobinIsSmooth(t *testing.T) {
	_, ts := backends(t, "a", "b", "c")
	ts[0].Weight, ts[1].Weight = 5, 1 // c's 0 means 1
	_, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: ts, Balance: gateway.WeightedRoundRobin}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	seq := sequence(t, srv.URL+"/", srv.Client(), 700)
	if got, want := strings.Join(seq[:7], " "), "a a b a c a a"; got != want {
		t.Errorf("first 7 picks: %s; want %s", got, want)
	}
	if got := count(seq); got["a"] != 500 || got["b"] != 100 || got["c"] != 100 {
		t.Errorf("700 picks: %v; want a:500 b:100 c:100", got)
	}
}

// TestLeastRequest checks the power of two choices: with equal targets
// the load spreads evenly; a target with more requests in flight gets
// none while the other has fewer; and weights count. The requests in
// flight are held in the backends until the test releases them, so what
// the balancer sees is set by the test, not by how fast the machine is:
// with two targets it compares both on every pick.
func TestLeastRequest(t *testing.T) {
	bs, ts := backends(t, "fast", "slow")
	up := gateway.Upstream{Name: "u", Targets: ts, Balance: gateway.LeastRequest}
	g, srv := start(t, gateway.WithUpstreams(up), gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))

	// Idle targets tie on every pick, which goes to either at random.
	got := count(sequence(t, srv.URL+"/", srv.Client(), 400))
	if got["fast"] < 140 || got["slow"] < 140 {
		t.Errorf("400 sequential requests to idle targets: %v; want an even spread (each at least 140)", got)
	}

	h := newHolds(t, srv, bs)
	// Hold requests until slow has two in flight. Each goes to the
	// target with fewer in flight (either on a tie), so fast has one or
	// two by then; its are let go.
	for h.held["slow"] < 2 {
		h.send()
	}
	h.release("fast")
	h.setHold("fast", false)
	// Slow has two in flight and fast none: every request goes to fast.
	if got := count(sequence(t, srv.URL+"/", srv.Client(), 50)); got["fast"] != 50 {
		t.Errorf("50 requests with 2 in flight on slow and none on fast: %v; want all on fast", got)
	}
	h.release("slow")
	h.setHold("fast", true)

	// Weights 3 to 1: with one request in flight on slow, fast takes the
	// next three (1/3 and 2/3 of its weight are below slow's 1/1; an
	// unweighted balancer would tie at the second).
	ts[0].Weight = 3
	if err := g.Update(gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: ts, Balance: gateway.LeastRequest}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"})); err != nil {
		t.Fatal(err)
	}
	for h.held["slow"] < 1 {
		h.send()
	}
	h.release("fast")
	for i := range 3 {
		if to := h.send(); to != "fast" {
			t.Errorf("weights 3:1, %d on fast and 1 on slow in flight: the next went to %s; want fast", i, to)
		}
	}
	h.release("fast")
	h.release("slow")
}

// TestLeastRequestCountsRequestsFromBeforeUpdate checks that requests
// in flight when an Update turns an upstream to least-request balancing
// count against their targets: long-lived ones (WebSockets, streams) are
// what the policy is often chosen for.
func TestLeastRequestCountsRequestsFromBeforeUpdate(t *testing.T) {
	bs, ts := backends(t, "fast", "slow")
	route := gateway.Route{Pattern: "/", Upstream: "u"}
	g, srv := start(t, gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: ts}), gateway.WithRoutes(route))
	h := newHolds(t, srv, bs)
	h.setHold("fast", false)
	for h.held["slow"] < 2 { // round robin: every other request
		h.send()
	}
	h.setHold("slow", false) // the two stay held; a request that still goes to slow is answered
	if err := g.Update(gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: ts, Balance: gateway.LeastRequest}),
		gateway.WithRoutes(route)); err != nil {
		t.Fatal(err)
	}
	if got := count(sequence(t, srv.URL+"/", srv.Client(), 50)); got["fast"] != 50 {
		t.Errorf("50 requests after the switch to least request, with 2 sent before it in flight on slow: %v; want all on fast", got)
	}
	h.release("slow")
}

// holds makes backends hold the requests they get until the test lets
// them go, so that a test sets how many each has in flight.
type holds struct {
	t       *testing.T
	srv     *httptest.Server
	hold    map[string]bool // whether the backend holds what it gets
	held    map[string]int  // requests held now, by backend
	arrived chan string     // the backend a request reached
	gate    map[string]chan struct{}
	done    map[string][]chan string // per backend, where each held request's answer comes
	wg      sync.WaitGroup
	mu      sync.Mutex // guards hold and gate, which the handlers read
}

func newHolds(t *testing.T, srv *httptest.Server, bs []*backend) *holds {
	h := &holds{t: t, srv: srv, hold: map[string]bool{}, held: map[string]int{},
		arrived: make(chan string), gate: map[string]chan struct{}{}, done: map[string][]chan string{}}
	for _, b := range bs {
		name := b.name
		h.hold[name] = true
		h.gate[name] = make(chan struct{})
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			h.mu.Lock()
			hold, gate := h.hold[name], h.gate[name]
			h.mu.Unlock()
			if !hold {
				return
			}
			h.arrived <- name
			<-gate
		})
	}
	t.Cleanup(func() {
		for name := range h.gate {
			h.release(name)
		}
		h.wg.Wait()
	})
	return h
}

// setHold sets whether backend name holds the requests it gets.
func (h *holds) setHold(name string, hold bool) {
	h.mu.Lock()
	h.hold[name] = hold
	h.mu.Unlock()
}

// send sends a request that a holding backend holds, and returns which
// one did; one that reaches a backend that does not hold is answered,
// and send returns its name.
func (h *holds) send() string {
	h.t.Helper()
	answered := make(chan string, 1)
	h.wg.Go(func() {
		resp, err := h.srv.Client().Get(h.srv.URL + "/")
		if err != nil {
			h.t.Error(err)
			answered <- ""
			return
		}
		_ = resp.Body.Close()
		answered <- resp.Header.Get("X-Backend")
	})
	select {
	case name := <-h.arrived:
		h.held[name]++
		h.done[name] = append(h.done[name], answered)
		return name
	case name := <-answered:
		return name
	case <-time.After(time.Minute):
		h.t.Fatal("a request neither arrived nor was answered in a minute")
		return ""
	}
}

// release lets the requests that backend name holds go, and returns once
// their responses are in (so that the gateway no longer counts them in
// flight).
func (h *holds) release(name string) {
	h.mu.Lock()
	close(h.gate[name])
	h.gate[name] = make(chan struct{})
	h.mu.Unlock()
	for _, c := range h.done[name] {
		<-c
	}
	h.done[name] = nil
	h.held[name] = 0
}
