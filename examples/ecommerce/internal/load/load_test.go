package load

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// getter returns a Next that GETs url with the request's number in the
// X-Index header, for handlers that answer by number.
func getter(url string) func(ctx context.Context, i int) (*http.Request, error) {
	return func(ctx context.Context, i int) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Index", strconv.Itoa(i))
		return req, nil
	}
}

func index(r *http.Request) int {
	i, _ := strconv.Atoi(r.Header.Get("X-Index"))
	return i
}

// concurrency counts a handler's calls and the most in progress at once.
type concurrency struct {
	calls, now, peak atomic.Int64
}

func (c *concurrency) enter() {
	c.calls.Add(1)
	n := c.now.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (c *concurrency) leave() { c.now.Add(-1) }

// handlerTransport serves requests with a handler in the calling
// goroutine, so that a run can go in a synctest bubble, in fake time.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// TestRunSendsTheSchedule checks, against a real server, that a run sends
// exactly Rate×Duration requests (the schedule's count, not a timing) and
// counts the answers by status.
func TestRunSendsTheSchedule(t *testing.T) {
	var c concurrency
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.enter()
		defer c.leave()
		if index(r)%4 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write([]byte("a body to read"))
	}))
	defer srv.Close()

	rep, err := Run(t.Context(), Config{Rate: 200, Duration: time.Second, Next: getter(srv.URL)})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if rep.Sent != 200 || rep.Dropped != 0 || rep.Errors != 0 {
		t.Errorf("Run() sent %d, dropped %d, errors %d; want 200, 0, 0", rep.Sent, rep.Dropped, rep.Errors)
	}
	if got := c.calls.Load(); got != int64(rep.Sent) {
		t.Errorf("server got %d requests; Run() says it sent %d", got, rep.Sent)
	}
	if rep.Status[200] != 150 || rep.Status[503] != 50 || len(rep.Status) != 2 {
		t.Errorf("Run().Status = %v; want 200: 150, 503: 50", rep.Status)
	}
	if rep.Elapsed < time.Second || rep.Achieved <= 0 || rep.Achieved > 200 {
		t.Errorf("Run() elapsed %v, achieved %.1f/s; want >= 1s and in (0, 200]", rep.Elapsed, rep.Achieved)
	}
	if rep.P50 <= 0 || rep.P50 > rep.P90 || rep.P90 > rep.P99 || rep.P99 > rep.Max {
		t.Errorf("Run() p50 %v, p90 %v, p99 %v, max %v; want positive and ordered", rep.P50, rep.P90, rep.P99, rep.Max)
	}
	if rep.Patterns.Measured {
		t.Errorf("Run().Patterns.Measured = true with no MetricsURL; want false")
	}
}

// TestRunInFakeTime runs a schedule in a synctest bubble, where the server
// takes exactly the time it sleeps: the rate, percentiles and progress line
// are exact.
func TestRunInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := func(i int) bool { return i%10 == 9 }
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slow(index(r)) {
				time.Sleep(200 * time.Millisecond)
				w.WriteHeader(http.StatusAccepted)
				return
			}
			time.Sleep(10 * time.Millisecond)
		})
		var progress bytes.Buffer
		rep, err := Run(t.Context(), Config{
			Rate: 100, Duration: 2 * time.Second,
			Client:   &http.Client{Transport: handlerTransport{h}},
			Next:     getter("http://shop.test/"),
			Progress: &progress,
		})
		if err != nil {
			t.Fatalf("Run() error = %v", err)
		}
		if rep.Sent != 200 || rep.Status[200] != 180 || rep.Status[202] != 20 {
			t.Errorf("Run() sent %d, status %v; want 200 sent, 200: 180, 202: 20", rep.Sent, rep.Status)
		}
		if rep.Elapsed != 2*time.Second || rep.Achieved != 100 {
			t.Errorf("Run() elapsed %v, achieved %v; want 2s, 100", rep.Elapsed, rep.Achieved)
		}
		within := func(got, want time.Duration) bool { return got >= want && got <= want+want/128 }
		// 180 answers of 10ms, then 20 of 200ms: ranks 100 and 180 are
		// fast, rank 198 slow.
		if !within(rep.P50, 10*time.Millisecond) || !within(rep.P90, 10*time.Millisecond) ||
			!within(rep.P99, 200*time.Millisecond) || rep.Max != 200*time.Millisecond {
			t.Errorf("Run() p50 %v, p90 %v, p99 %v, max %v; want 10ms, 10ms, 200ms, 200ms", rep.P50, rep.P90, rep.P99, rep.Max)
		}
		// The run ends at 2.19s (the last request, slow, went at 1.99s):
		// lines at 1s and 2s. At 1s the request due then may or may not
		// have gone; at 2s nothing is due, and requests 189 and 199,
		// slow, are in flight: 18 slow answers in 198.
		lines := strings.Split(strings.TrimSuffix(progress.String(), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("progress = %q; want 2 lines", progress.String())
		}
		want := "load    2s: sent 200 (100.0/s), in flight 2, p99 200ms, 200: 180, 202: 18, errors 0, dropped 0"
		if lines[1] != want {
			t.Errorf("progress line 2 = %q; want %q", lines[1], want)
		}
		if !strings.HasPrefix(lines[0], "load    1s: sent 10") {
			t.Errorf("progress line 1 = %q; want it to start with %q", lines[0], "load    1s: sent 10")
		}
	})
}

// TestRunDropsAtTheCap checks in fake time that requests due while
// MaxInFlight are in flight are dropped, not postponed: the counts match a
// model of the schedule.
func TestRunDropsAtTheCap(t *testing.T) {
	const (
		rate     = 100
		cap      = 10
		duration = time.Second
		latency  = 505 * time.Millisecond // never at a multiple of 10ms: no ties
	)
	// The model: request k is due at k×10ms; it goes if fewer than cap
	// sent requests are unanswered then.
	var wantSent, wantDropped int
	var done []time.Duration
	for k := range rate * int(duration/time.Second) {
		at := time.Duration(k) * time.Second / rate
		n := 0
		for _, d := range done {
			if d > at {
				n++
			}
		}
		if n >= cap {
			wantDropped++
			continue
		}
		wantSent++
		done = append(done, at+latency)
	}

	synctest.Test(t, func(t *testing.T) {
		var c concurrency
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.enter()
			defer c.leave()
			time.Sleep(latency)
		})
		rep, err := Run(t.Context(), Config{
			Rate: rate, Duration: duration, MaxInFlight: cap,
			Client: &http.Client{Transport: handlerTransport{h}},
			Next:   getter("http://shop.test/"),
		})
		if err != nil {
			t.Fatalf("Run() error = %v", err)
		}
		if rep.Sent != wantSent || rep.Dropped != wantDropped {
			t.Errorf("Run() sent %d, dropped %d; want %d, %d", rep.Sent, rep.Dropped, wantSent, wantDropped)
		}
		if p := c.peak.Load(); p != cap {
			t.Errorf("at most %d requests in flight; want %d", p, cap)
		}
		// Nothing was postponed: every answer took the server's time.
		if rep.Max != latency {
			t.Errorf("Run().Max = %v; want %v", rep.Max, latency)
		}
	})
}

// TestRunCapsInFlightOnARealServer checks the cap against a real server:
// never more than MaxInFlight at once, and every scheduled request either
// sent or counted as dropped.
func TestRunCapsInFlightOnARealServer(t *testing.T) {
	var c concurrency
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.enter()
		defer c.leave()
		time.Sleep(100 * time.Millisecond)
	}))
	defer srv.Close()

	rep, err := Run(t.Context(), Config{Rate: 200, Duration: time.Second, MaxInFlight: 5, Next: getter(srv.URL)})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if p := c.peak.Load(); p > 5 {
		t.Errorf("server saw %d requests at once; want at most 5", p)
	}
	// Five at a time of 100ms each allow at most 50/s of the 200/s asked.
	if rep.Sent+rep.Dropped != 200 || rep.Dropped == 0 || int64(rep.Sent) != c.calls.Load() {
		t.Errorf("Run() sent %d, dropped %d, server got %d; want sent + dropped = 200, some dropped, all sent received",
			rep.Sent, rep.Dropped, c.calls.Load())
	}
}

// TestRunPercentilesOfASleepingServer checks the percentiles against a real
// server that sleeps known times, with loose bounds: a latency is never
// less than the sleep.
func TestRunPercentilesOfASleepingServer(t *testing.T) {
	const fast, slow = 20 * time.Millisecond, 150 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if index(r)%10 == 9 {
			time.Sleep(slow)
		} else {
			time.Sleep(fast)
		}
	}))
	defer srv.Close()

	rep, err := Run(t.Context(), Config{Rate: 50, Duration: time.Second, Next: getter(srv.URL)})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if rep.P50 < fast || rep.P50 >= slow || rep.P99 < slow || rep.Max < slow {
		t.Errorf("Run() p50 %v, p99 %v, max %v; want p50 in [%v, %v), p99 and max >= %v", rep.P50, rep.P99, rep.Max, fast, slow, slow)
	}
}

// TestRunCountsTransportErrors checks that requests with no answer count
// as errors, by kind, and not as answers.
func TestRunCountsTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused

	rep, err := Run(t.Context(), Config{Rate: 20, Duration: 500 * time.Millisecond, Next: getter(url)})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if rep.Sent != 10 || rep.Errors != 10 || rep.ErrorKinds["connection refused"] != 10 || len(rep.Status) != 0 {
		t.Errorf("Run() sent %d, errors %d %v, status %v; want 10 sent, 10 refused, no answer",
			rep.Sent, rep.Errors, rep.ErrorKinds, rep.Status)
	}
	if rep.P99 != 0 || rep.Max != 0 {
		t.Errorf("Run() p99 %v, max %v with no answer; want 0", rep.P99, rep.Max)
	}
}

// TestRunStopsOnCancel checks that canceling the context stops the run
// early, cancels the requests in flight and leaves no goroutine behind.
func TestRunStopsOnCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	var once sync.Once
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		<-r.Context().Done() // answers only when the client gives up
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	next := getter(srv.URL)
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{
		Rate: 100, Duration: time.Hour,
		Next: func(ctx context.Context, i int) (*http.Request, error) {
			if i == 20 {
				<-arrived // at least one request is in flight
				cancel()
			}
			return next(ctx, i)
		},
		Progress: &progress,
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run() error = %v; want context.Canceled", err)
	}
	// The 21st request was built as the run was canceled; it counts as
	// sent, and no request counts as an error or an answer.
	if rep.Sent != 21 || rep.Errors != 0 || len(rep.Status) != 0 {
		t.Errorf("Run() sent %d, errors %d, status %v; want 21, 0, none", rep.Sent, rep.Errors, rep.Status)
	}
	if rep.Elapsed >= time.Hour {
		t.Errorf("Run().Elapsed = %v; want the time until the cancellation", rep.Elapsed)
	}
	srv.Close() // before goleak: its handlers must have returned
}

func TestRunReturnsNextsError(t *testing.T) {
	errBuild := errors.New("no more products")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	next := getter(srv.URL)
	rep, err := Run(t.Context(), Config{
		Rate: 100, Duration: time.Second,
		Next: func(ctx context.Context, i int) (*http.Request, error) {
			if i == 3 {
				return nil, errBuild
			}
			return next(ctx, i)
		},
	})
	if !errors.Is(err, errBuild) {
		t.Errorf("Run() error = %v; want %v", err, errBuild)
	}
	if rep.Sent != 3 || rep.Status[200] != 3 {
		t.Errorf("Run() sent %d, status %v; want 3 sent and answered", rep.Sent, rep.Status)
	}
}

// TestRunGivesContextToPlainRequests checks that a request built without
// a context gets the run's, so that a cancellation reaches it.
func TestRunGivesContextToPlainRequests(t *testing.T) {
	var got context.Context
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Context() })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := Run(ctx, Config{
		Rate: 1, Duration: time.Second,
		Client: &http.Client{Transport: handlerTransport{h}},
		Next: func(context.Context, int) (*http.Request, error) {
			return http.NewRequest(http.MethodGet, "http://shop.test/", nil)
		},
	})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	cancel()
	if got == nil || got.Err() == nil {
		t.Errorf("the request's context was not canceled with Run's; want Run's context")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	next := getter("http://shop.test/")
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"zero", Config{}, []string{"Rate", "Duration", "Next"}},
		{"negative", Config{Rate: -1, Duration: -time.Second, MaxInFlight: -1, Next: next}, []string{"Rate", "Duration", "MaxInFlight"}},
		{"no next", Config{Rate: 1, Duration: time.Second}, []string{"Next"}},
		{"no request", Config{Rate: 1, Duration: 999 * time.Millisecond, Next: next}, []string{"Rate 1 for Duration 999ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(t.Context(), tt.cfg)
			if err == nil {
				t.Fatalf("Run() error = nil; want one naming %v", tt.want)
			}
			for _, field := range tt.want {
				if !strings.Contains(err.Error(), field) {
					t.Errorf("Run() error = %q; want it to name %s", err, field)
				}
			}
		})
	}
}

// TestRunCountsTimeouts checks that a request the client gave up on counts
// as an error of kind timeout.
func TestRunCountsTimeouts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers in time
	}))
	defer srv.Close()
	client := &http.Client{Timeout: 50 * time.Millisecond}
	defer client.CloseIdleConnections()

	rep, err := Run(t.Context(), Config{Rate: 10, Duration: 500 * time.Millisecond, Client: client, Next: getter(srv.URL)})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if rep.Sent != 5 || rep.Errors != 5 || rep.ErrorKinds["timeout"] != 5 {
		t.Errorf("Run() sent %d, errors %d %v; want 5 sent, 5 timeouts", rep.Sent, rep.Errors, rep.ErrorKinds)
	}
}

// errTransport fails every request with an error of its own.
type errTransport struct{}

func (errTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, errors.New("failure " + r.Header.Get("X-Index"))
}

// TestRunBoundsErrorKinds checks that errors of many kinds keep the
// report small: the first eight kinds, then "other".
func TestRunBoundsErrorKinds(t *testing.T) {
	rep, err := Run(t.Context(), Config{Rate: 100, Duration: 120 * time.Millisecond,
		Client: &http.Client{Transport: errTransport{}}, Next: getter("http://shop.test/")})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if rep.Errors != 12 || len(rep.ErrorKinds) != maxErrorKinds+1 || rep.ErrorKinds["other"] != 4 {
		t.Errorf("Run() errors %d, kinds %v; want 12 errors in %d kinds and other × 4", rep.Errors, rep.ErrorKinds, maxErrorKinds)
	}
	for kind, n := range rep.ErrorKinds {
		if kind != "other" && (n != 1 || !strings.HasPrefix(kind, "failure ")) {
			t.Errorf("ErrorKinds[%q] = %d; want a failure's message, once", kind, n)
		}
	}
}

// TestSchedule checks the schedule's count and times, at the edges where
// a product would overflow.
func TestSchedule(t *testing.T) {
	tests := []struct {
		rate      int
		duration  time.Duration
		wantTotal int
		k         int
		wantDue   time.Duration
	}{
		{rate: 200, duration: time.Second, wantTotal: 200, k: 199, wantDue: 995 * time.Millisecond},
		{rate: 3, duration: 2500 * time.Millisecond, wantTotal: 7, k: 4, wantDue: 1333333333},
		{rate: 1_000_000, duration: 24 * time.Hour, wantTotal: 86_400_000_000, k: 86_399_999_999, wantDue: 24*time.Hour - time.Microsecond},
	}
	for _, tt := range tests {
		c := Config{Rate: tt.rate, Duration: tt.duration}
		if got := c.total(); got != tt.wantTotal {
			t.Errorf("Rate %d for %v: total() = %d; want %d", tt.rate, tt.duration, got, tt.wantTotal)
		}
		if got := c.due(tt.k); got != tt.wantDue {
			t.Errorf("Rate %d: due(%d) = %v; want %v", tt.rate, tt.k, got, tt.wantDue)
		}
	}
}
