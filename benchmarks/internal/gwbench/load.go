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

// Load is a fixed-rate (open-loop) run: requests are due at Rate a second
// for Duration, whether or not earlier ones have been answered, and each
// one's latency counts from when it was due, not from when a worker got
// to send it. A closed-loop generator such as wrk waits for an answer
// before it sends the next request, so a slow proxy also slows the load
// it is measured under and hides its queueing (coordinated omission);
// this does not. It also measures each request from when it was sent
// (Sent*): a worker's sleep until a request is due ends late by as much
// as the machine's timer slack, a millisecond or more on a busy VM, which
// lands in the latency from when it was due whatever the target, and
// buries what a proxy adds in that noise.
type Load struct {
	URL      string
	Header   http.Header
	Rate     int           // requests per second
	Duration time.Duration // how long requests are sent
	Workers  int           // concurrent requests at most, each on its own connection
}

// LoadResult is what a [Load] measured.
type LoadResult struct {
	Sent, Failed   int // Failed: transport errors and statuses other than 200
	P50, P99, P999 time.Duration
	// SentP50 and SentP99 count from when each request was sent, not
	// from when it was due.
	SentP50, SentP99 time.Duration
}

// Run sends the load and measures it. It stops early when ctx ends.
func (l Load) Run(ctx context.Context) (LoadResult, error) {
	if l.Rate <= 0 || l.Duration <= 0 || l.Workers <= 0 {
		return LoadResult{}, fmt.Errorf("load: rate (%d), duration (%v) and workers (%d) must be positive", l.Rate, l.Duration, l.Workers)
	}
	t := Transport()
	t.MaxIdleConnsPerHost = l.Workers
	defer t.CloseIdleConnections()
	client := &http.Client{Transport: t, Timeout: 10 * time.Second}

	n := int(float64(l.Rate) * l.Duration.Seconds())
	interval := time.Second / time.Duration(l.Rate)
	lat := make([]time.Duration, n)
	sentLat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now().Add(50 * time.Millisecond)
	for range l.Workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
				if err != nil {
					failed.Add(1)
					lat[i], sentLat[i] = -1, -1
					continue
				}
				req.Header = l.Header.Clone()
				sent := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = Drain(resp)
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				lat[i], sentLat[i] = time.Since(due), time.Since(sent)
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return LoadResult{}, err
	}
	slices.Sort(lat)
	slices.Sort(sentLat)
	return LoadResult{
		Sent: n, Failed: int(failed.Load()),
		P50: percentile(lat, 0.50), P99: percentile(lat, 0.99), P999: percentile(lat, 0.999),
		SentP50: percentile(sentLat, 0.50), SentP99: percentile(sentLat, 0.99),
	}, nil
}

// percentile returns the p quantile (0 < p < 1) of sorted, which must not
// be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
