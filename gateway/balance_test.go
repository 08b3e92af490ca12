package gateway_test

import (
	"net/http"
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
// the load spreads evenly; with one slow target, concurrent requests go
// mostly to the fast one; and weights count.
func TestLeastRequest(t *testing.T) {
	bs, ts := backends(t, "fast", "slow")
	up := gateway.Upstream{Name: "u", Targets: ts, Balance: gateway.LeastRequest}
	g, srv := start(t, gateway.WithUpstreams(up), gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))

	got := count(sequence(t, srv.URL+"/", srv.Client(), 400))
	if got["fast"] < 140 || got["slow"] < 140 {
		t.Errorf("400 sequential requests to idle targets: %v; want an even spread (each at least 140)", got)
	}

	bs[1].handle(func(w http.ResponseWriter, r *http.Request) {
		// Slow enough that the fast target stays faster on a loaded
		// machine, where its own answers take milliseconds.
		time.Sleep(60 * time.Millisecond)
		w.Header().Set("X-Backend", "slow")
	})
	var mu sync.Mutex
	under := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 40 {
				resp, err := srv.Client().Get(srv.URL + "/")
				if err != nil {
					t.Error(err)
					return
				}
				_ = resp.Body.Close()
				mu.Lock()
				under[resp.Header.Get("X-Backend")]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if under["fast"] < 3*under["slow"] {
		t.Errorf("320 concurrent requests, one target 60ms slow: %v; want the fast one to take at least 3 times as many", under)
	}

	// Weights: 3 to 1, idle targets, so picks follow the weights only
	// through ties; loaded, in-flight per weight decides.
	bs[1].handle(nil)
	ts[0].Weight = 3
	if err := g.Update(gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: ts, Balance: gateway.LeastRequest}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"})); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(5 * time.Millisecond)
			w.Header().Set("X-Backend", strings.TrimPrefix(b.name, ""))
		})
	}
	clear(under)
	for range 8 {
		wg.Go(func() {
			for range 40 {
				resp, err := srv.Client().Get(srv.URL + "/")
				if err != nil {
					t.Error(err)
					return
				}
				_ = resp.Body.Close()
				mu.Lock()
				under[resp.Header.Get("X-Backend")]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if under["fast"] < 2*under["slow"] {
		t.Errorf("320 concurrent requests, weights 3:1, equal speed: %v; want the heavier one to take at least twice as many", under)
	}
}
