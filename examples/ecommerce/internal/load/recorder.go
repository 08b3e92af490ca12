package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxErrorKinds bounds Report.ErrorKinds: errors of kinds beyond the first
// ones seen count under "other", so a run against a failing server cannot
// grow the report without end.
const maxErrorKinds = 8

// recorder collects the answers of one run. Counters the progress line
// reads while the run goes are atomic; the rest is under mu, which every
// answer takes once (a few hundred nanoseconds against a request's tens of
// microseconds at best).
type recorder struct {
	start time.Time

	sent, dropped, inFlight atomic.Int64

	mu         sync.Mutex
	hist       histogram
	status     map[int]int
	errors     int
	errorKinds map[string]int
}

func newRecorder() *recorder {
	return &recorder{start: time.Now(), status: map[int]int{}, errorKinds: map[string]int{}}
}

// do sends req and records its answer. The latency runs from the send to
// the last byte of the body, which do reads and discards so that the
// connection goes back to the pool.
func (r *recorder) do(ctx context.Context, client *http.Client, req *http.Request) {
	defer r.inFlight.Add(-1)
	began := time.Now()
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		if cerr := resp.Body.Close(); err == nil {
			err = cerr
		}
	}
	took := time.Since(began)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil && ctx.Err() != nil:
		// Cut short by the end of the run, not the server's doing.
	case err != nil:
		r.errors++
		kind := errorKind(err)
		if _, ok := r.errorKinds[kind]; !ok && len(r.errorKinds) >= maxErrorKinds {
			kind = "other"
		}
		r.errorKinds[kind]++
	default:
		r.status[resp.StatusCode]++
		r.hist.record(took)
	}
}

// errorKind names a transport error briefly and with few distinct values:
// the kinds a load test meets, else the innermost message of a URL error
// (which drops the method and URL).
func errorKind(err error) string {
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.As(err, &certErr):
		return "tls: certificate not trusted"
	case errors.As(err, &recErr):
		return "tls: not a TLS server"
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return err.Error()
}

// report returns what r saw, for a sending window of elapsed.
func (r *recorder) report(elapsed time.Duration) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{
		Sent:       int(r.sent.Load()),
		Dropped:    int(r.dropped.Load()),
		Errors:     r.errors,
		Status:     maps.Clone(r.status),
		ErrorKinds: maps.Clone(r.errorKinds),
		P50:        r.hist.quantile(0.50),
		P90:        r.hist.quantile(0.90),
		P99:        r.hist.quantile(0.99),
		Max:        r.hist.max,
		Elapsed:    elapsed,
	}
	if elapsed > 0 {
		rep.Achieved = float64(rep.Sent) / elapsed.Seconds()
	}
	return rep
}

// progressLine is one line of the live progress: the time since the start,
// the requests sent and the rate that makes, those awaiting an answer, the
// p99 of the answers so far, the answers by status, errors and dropped.
func (r *recorder) progressLine(now time.Time) string {
	elapsed := now.Sub(r.start)
	sent := r.sent.Load()
	var b strings.Builder
	fmt.Fprintf(&b, "load %4.0fs: sent %d (%.1f/s), in flight %d",
		elapsed.Seconds(), sent, float64(sent)/elapsed.Seconds(), r.inFlight.Load())
	r.mu.Lock()
	fmt.Fprintf(&b, ", p99 %v", round(r.hist.quantile(0.99)))
	for _, code := range slices.Sorted(maps.Keys(r.status)) {
		fmt.Fprintf(&b, ", %d: %d", code, r.status[code])
	}
	errs := r.errors
	r.mu.Unlock()
	fmt.Fprintf(&b, ", errors %d, dropped %d", errs, r.dropped.Load())
	return b.String()
}

// startProgress writes r's progress line to w each second until ctx ends
// or the returned stop is called; stop returns once the writer is done, so
// no line comes after it. A nil w writes nothing and starts nothing.
func startProgress(ctx context.Context, w io.Writer, r *recorder) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case now := <-tick.C:
				// A failed write (a closed terminal) must not stop
				// the run: the report still matters.
				_, _ = fmt.Fprintln(w, r.progressLine(now))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// round shortens a latency for reading: three significant digits.
func round(d time.Duration) time.Duration {
	for _, unit := range []time.Duration{time.Second, time.Millisecond, time.Microsecond} {
		if d >= 100*unit {
			return d.Round(unit)
		}
		if d >= 10*unit {
			return d.Round(unit / 10)
		}
		if d >= unit {
			return d.Round(unit / 100)
		}
	}
	return d
}
