package gwbench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TimingPath is the path at which a server of [NewTimed] answers what it
// measured since it was last asked, and starts again: a line
// "n p50µs p99µs" (n requests; "0 0 0" for none).
const TimingPath = "/_gwbench/timing"

// maxTimings bounds the samples a timed server keeps between two reads
// of [TimingPath]; requests beyond are served and not measured.
const maxTimings = 1 << 22

// NewTimed builds the proxy variant as [New] does, measuring inside the
// process what the proxy itself adds to each request: the time its
// handler took, less the time its transport waited for the upstream's
// answer (the round trips of the request's attempts, summed). That is
// the proxy's own time, from its handler's start (the request's headers
// read) to its return (the answer written to the server's buffer),
// without the load generator, the network, or the upstream, whose
// scheduling noise on a small machine is larger than what a proxy adds
// at the 99th percentile; the end-to-end latency from outside ([Load])
// still includes them. It leaves out, alike for every variant, what
// happens inside the round trip (taking a pooled connection, writing the
// request, reading the answer's headers) and the server's flush of the
// answer after the handler returns.
//
// The measuring costs every timed variant alike: a context and a copy of
// the request, two clock reads in the handler and two an attempt, a
// mutex. Only the requests that the proxy's handler serves are measured,
// not [TimingPath]'s.
func NewTimed(variant, upstreamURL string) (*Server, error) {
	tm := &timing{}
	s, err := build(variant, upstreamURL, timedTransport{Transport()})
	if err != nil {
		return nil, err
	}
	s.Handler = tm.handler(s.Handler)
	return s, nil
}

// timing holds the own times of the requests served since the last read.
type timing struct {
	mu  sync.Mutex
	own []time.Duration
}

// upstreamKey is the context key of the request's *atomic.Int64 into
// which timedTransport adds its round trips' time, in nanoseconds.
type upstreamKey struct{}

func (tm *timing) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == TimingPath {
			n, p50, p99 := tm.take()
			fmt.Fprintf(w, "%d %.1f %.1f\n", n, us(p50), us(p99))
			return
		}
		var upstream atomic.Int64
		r = r.WithContext(context.WithValue(r.Context(), upstreamKey{}, &upstream))
		start := time.Now()
		h.ServeHTTP(w, r)
		own := time.Since(start) - time.Duration(upstream.Load())
		tm.mu.Lock()
		if len(tm.own) < maxTimings {
			tm.own = append(tm.own, own)
		}
		tm.mu.Unlock()
	})
}

// take returns the number, the median and the 99th percentile of the
// own times kept, and forgets them.
func (tm *timing) take() (n int, p50, p99 time.Duration) {
	tm.mu.Lock()
	own := tm.own
	tm.own = nil
	tm.mu.Unlock()
	if len(own) == 0 {
		return 0, 0, 0
	}
	slices.Sort(own)
	return len(own), percentile(own, 0.50), percentile(own, 0.99)
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// timedTransport adds the time each round trip waits for the upstream's
// answer (to its headers: the benchmark's body arrives with them) to the
// request's counter, if it has one.
type timedTransport struct{ *http.Transport }

func (t timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.Transport.RoundTrip(req)
	if c, ok := req.Context().Value(upstreamKey{}).(*atomic.Int64); ok {
		c.Add(int64(time.Since(start)))
	}
	return resp, err
}
