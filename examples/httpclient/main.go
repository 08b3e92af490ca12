// Command httpclient shows a resilient HTTP client: retries with backoff
// outside, a circuit breaker inside, and an OpenTelemetry span for every
// attempt that goes out.
//
// It starts a local HTTP server that stands in for a flaky dependency and
// sends it 46 GET requests, one every 50ms, each numbered in an
// X-Request-Number header. The server decides from that number, and from
// how many times it has seen the request, how to answer, so that the run is
// repeatable:
//
//   - healthy (requests 1–5): 200 OK;
//   - flaky (requests 6–15): every other request has its first attempt
//     answered 503 Service Unavailable (two attempts for request 8, and
//     with Retry-After: 0 for requests 6 and 12); the last three go through;
//   - down (requests 16–31): every attempt gets 503;
//   - recovered (requests 32–46): 200 OK again.
//
// The client's transport is built in three layers, outermost first:
//
//	retry.NewTransport(            // attempts, backoff, a shared budget
//	    circuitbreaker.NewTransport(   // one breaker per host, judging each attempt
//	        otelhttp.NewTransport(base, otelhttp.WithClientTrace(retry.ClientTrace))))
//
// with demo-sized settings: at most 4 attempts, waiting 20ms, 40ms, 80ms
// (with equal jitter: between half and all of that), unless the server
// sends Retry-After; a breaker over the last 10 attempts that opens when at
// least 5 are in and half of them failed, and stays open 500ms.
//
// A flaky request succeeds on its second or third attempt. The failures stay
// under half of the breaker's window, so it stays closed. When the server
// goes down, the first request runs out of attempts, and its fourth failure
// makes 5 of the last 10: the breaker opens. From then on requests fail at
// once with an error matching [circuitbreaker.ErrOpen], which the retrier
// does not retry, and never reach the server. After 500ms the breaker lets
// one probe through: during the outage the probe gets a 503, which opens the
// breaker again (so the retry that follows is rejected), and once the server
// has recovered the probe succeeds and closes it.
//
// The program prints every retry and state change as it happens and the
// outcome of each request, then the totals: requests by outcome, attempts
// made by the retrier against attempts seen by the server (the difference is
// the attempts the breaker rejected), what is left of the retry budget, and
// the breaker's final state. Run it from the repository root:
//
//	go run ./examples/httpclient
//
// # Telemetry
//
// Each request runs in a span of its own ("fetch item"). otelhttp, the
// innermost layer, gives every attempt that passes the breaker an HTTP
// client span and the http.client.* metrics; with [retry.ClientTrace], the
// span of a retried attempt carries http.request.resend_count. When the
// first attempt fails, the retrier starts a "retry" span in which the later
// attempts run, and counts retry.attempts, retry.calls and retry.delay. The
// breaker adds circuitbreaker.rejected and circuitbreaker.state_change events
// to the span of the attempt it judges, and counts circuitbreaker.calls,
// circuitbreaker.state.transitions and circuitbreaker.state.
//
// The providers are passed to each layer with its WithTracerProvider and
// WithMeterProvider options. At the end the program prints the spans of
// the first request of each kind (ok at once, retried, rejected, ...) as
// trees, and a summary of the metrics.
//
// The program keeps the spans and metrics in memory for what it prints.
// All of them are written to stderr as JSON, once, at the end, with
// -telemetry=json, and sent to an OpenTelemetry collector over OTLP/HTTP
// when the standard variables say so (see the README's "Try it"):
//
//	go run ./examples/httpclient -telemetry=json 2>telemetry.json
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/httpclient
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/retry"
)

// scopeName is the instrumentation scope of the program's own spans.
const scopeName = "github.com/otelpatterns/patterns/examples/httpclient"

// interval is the pause between two requests.
const interval = 50 * time.Millisecond

// requestHeader carries the request's number, the same on every attempt.
const requestHeader = "X-Request-Number"

// A trouble is how the server treats one request: it answers its first
// fail attempts with 503 Service Unavailable (every attempt when fail is
// negative), with a Retry-After: 0 header when retryAfter is set, and the
// attempts after those with 200 OK.
type trouble struct {
	fail       int
	retryAfter bool
}

// A phase is a stretch of requests during which the server behaves one way.
type phase struct {
	name     string
	about    string // what the server does, for the heading
	requests int
	// troubles says how the server treats each request of the phase, in
	// turn, starting again from the first when there are more requests.
	troubles []trouble
}

var (
	fine = trouble{}
	down = trouble{fail: -1}
)

// script is the whole run. The flaky phase keeps the failures under half of
// any 10 consecutive attempts, so the breaker stays closed, and ends with
// three clean requests, so that the outage trips the breaker exactly on the
// fourth and last attempt of its first request: 1 failure among the 6
// attempts before it, plus 4.
var script = []phase{
	{"healthy", "the server answers 200 OK", 5, []trouble{fine}},
	{"flaky", "every other request's first attempt gets 503 (the first two, for the third), some with Retry-After: 0", 10, []trouble{
		{fail: 1, retryAfter: true}, fine,
		{fail: 2}, fine,
		{fail: 1}, fine,
		{fail: 1, retryAfter: true}, fine,
		fine, fine,
	}},
	{"down", "every attempt gets 503 Service Unavailable", 16, []trouble{down}},
	{"recovered", "the server answers 200 OK again", 15, []trouble{fine}},
}

// troubleOf returns how the server treats request n (from 1), and false
// when the script has no request n.
func troubleOf(n int) (trouble, bool) {
	for _, ph := range script {
		if n <= ph.requests {
			return ph.troubles[(n-1)%len(ph.troubles)], true
		}
		n -= ph.requests
	}
	return trouble{}, false
}

// flakyServer is the dependency. It counts the attempts it sees of each
// request, to follow the script and so that the program can compare them
// with the attempts the client made.
type flakyServer struct {
	mu       sync.Mutex
	attempts map[int]int // by request number
	total    int
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.Header.Get(requestHeader))
	tr, ok := troubleOf(n)
	if err != nil || !ok {
		http.Error(w, "no such request in the script", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.attempts[n]++
	a := s.attempts[n]
	s.total++
	s.mu.Unlock()

	code := http.StatusOK
	if tr.fail < 0 || a <= tr.fail {
		code = http.StatusServiceUnavailable
		if tr.retryAfter {
			w.Header().Set("Retry-After", "0")
		}
	}
	w.WriteHeader(code)
	fmt.Fprintln(w, http.StatusText(code))
}

// seen returns how many attempts the server has answered in all.
func (s *flakyServer) seen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// outcome is what became of one request.
type outcome int

const (
	ok       outcome = iota // the server answered 200, after one attempt or more
	failed                  // the server still answered 5xx at the last attempt, or it failed
	rejected                // the breaker rejected an attempt, which ended the retries
	numOutcomes
)

// result is what became of one request, as the client saw it.
type result struct {
	outcome outcome
	// attempts is how many attempts the retrier made, the rejected one
	// included; sent is how many of them passed the breaker.
	attempts, sent int
	detail         string // the last status or error, for failures
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, exampleotel.JSONOut())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpclient example:", err)
		os.Exit(1)
	}
}

// run plays the script, writing what happens to out and the telemetry (as JSON,
// all of it) to telemetryOut, if not nil. It returns once the server is
// closed and the telemetry flushed, leaving no goroutine behind.
func run(ctx context.Context, out, telemetryOut io.Writer) (err error) {
	otelp, err := newProviders(ctx, telemetryOut)
	if err != nil {
		return err
	}
	defer func() {
		// Flush even when ctx was cancelled (Ctrl-C), with a deadline of
		// its own.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := otelp.shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutting down telemetry: %w", serr))
		}
	}()

	server := &flakyServer{attempts: make(map[int]int)}
	srv := httptest.NewServer(server)
	defer srv.Close()

	// n is the number of the request being sent and retries how many of its
	// attempts have failed and been retried. Requests are sent one at a
	// time, and both the retrier's and the breaker's listeners run on the
	// goroutine that sends the request, so they may use n, retries and out
	// without locking.
	n, retries := 0, 0

	group := circuitbreaker.NewGroup(
		circuitbreaker.WithCountWindow(10),
		circuitbreaker.WithMinimumCalls(5),
		circuitbreaker.WithFailureRate(50),
		circuitbreaker.WithOpenDuration(500*time.Millisecond),
		circuitbreaker.WithMeterProvider(otelp.mp),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			fmt.Fprintf(out, "  request %2d: breaker %s → %s (%s)\n", n, c.From, c.To, describeSnapshot(c.Snapshot))
		}),
	)
	// One budget for every retrier that calls this dependency: retries stay
	// a bounded fraction of the first attempts however many clients retry.
	budget := retry.NewBudget()

	// A transport of our own rather than http.DefaultTransport, so that its
	// idle connections can be closed at the end without touching the
	// process-wide one. It is closed directly: client.CloseIdleConnections
	// would not reach it through the breaker and otelhttp layers.
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	client := &http.Client{
		Transport: retry.NewTransport(
			circuitbreaker.NewTransport(
				otelhttp.NewTransport(base,
					otelhttp.WithClientTrace(retry.ClientTrace),
					otelhttp.WithTracerProvider(otelp.tp),
					otelhttp.WithMeterProvider(otelp.mp)),
				circuitbreaker.WithGroup(group)),
			retry.WithName("items"),
			retry.WithMaxAttempts(4),
			retry.WithBackoff(retry.Exponential(20*time.Millisecond, 2, 200*time.Millisecond)),
			// Equal jitter waits at least half the backoff, never 0, so a
			// wait of 0 below can only be the server's Retry-After: 0.
			retry.WithJitter(retry.EqualJitter),
			retry.WithBudget(budget),
			retry.WithTracerProvider(otelp.tp),
			retry.WithMeterProvider(otelp.mp),
			retry.WithOnRetry(func(_ context.Context, attempt int, err error, delay time.Duration) {
				retries = attempt
				wait := "retrying in " + delay.Round(time.Millisecond).String()
				if delay == 0 {
					wait = "retrying at once, as Retry-After: 0 asks"
				}
				fmt.Fprintf(out, "  request %2d: attempt %d failed (%s), %s\n", n, attempt, describeError(err), wait)
			}),
		),
		Timeout: 2 * time.Second,
	}
	tracer := otelp.tp.Tracer(scopeName)

	u, err := url.Parse(srv.URL)
	if err != nil {
		return err
	}
	host := u.Host // the breaker transport's key: one breaker per host
	total := 0
	for _, ph := range script {
		total += ph.requests
	}
	fmt.Fprintf(out, "sending %d requests to %s, one every %v\n", total, srv.URL, interval)
	fmt.Fprintln(out, "retries: at most 4 attempts, waiting 20ms, 40ms, 80ms (equal jitter) or as Retry-After says")
	fmt.Fprintln(out, "breaker: window of 10 attempts, opens at 50% failures (from 5 attempts on), stays open 500ms")

	var counts [numOutcomes]int
	attempts := 0
	for _, ph := range script {
		fmt.Fprintf(out, "\nphase %q: requests %d–%d, %s\n", ph.name, n+1, n+ph.requests, ph.about)
		for range ph.requests {
			n++
			retries = 0
			res := send(ctx, tracer, client, srv.URL+"/item", n, &retries)
			fmt.Fprintf(out, "  request %2d: %s\n", n, describeResult(res))
			counts[res.outcome]++
			attempts += res.attempts
			if err := sleep(ctx, interval); err != nil {
				return err
			}
		}
	}

	b := group.Get(host)
	fmt.Fprintf(out, "\nrequests: %d, %d ok, %d failed, %d rejected by the breaker\n",
		total, counts[ok], counts[failed], counts[rejected])
	fmt.Fprintf(out, "attempts: %d made by the retrier, %d seen by the server\n", attempts, server.seen())
	fmt.Fprintf(out, "retry budget: %.1f retries left\n", budget.Available())
	fmt.Fprintf(out, "final state of breaker %q: %s\n", b.Name(), b.State())
	return otelp.printTelemetry(ctx, out)
}

// send sends request n in a span of its own and reports what became of it.
// *retries is how many attempts the retrier's listener has seen fail.
func send(ctx context.Context, tracer trace.Tracer, client *http.Client, target string, n int, retries *int) result {
	ctx, span := tracer.Start(ctx, "fetch item")
	defer span.End()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return result{outcome: failed, detail: err.Error()}
	}
	req.Header.Set(requestHeader, strconv.Itoa(n))
	resp, err := client.Do(req)
	if err != nil {
		// The retrier's and the breaker's errors have an ErrorType method,
		// so error.type reads circuitbreaker.open, retry.exhausted...
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
		res := result{outcome: failed, attempts: *retries + 1, detail: err.Error()}
		var rerr *retry.Error
		if errors.As(err, &rerr) {
			res.attempts = rerr.Attempts
		}
		res.sent = res.attempts
		// A rejection ends the retries, so only the last attempt can have
		// been rejected.
		if errors.Is(err, circuitbreaker.ErrOpen) || errors.Is(err, circuitbreaker.ErrTooManyRequests) {
			res.outcome = rejected
			res.sent--
		}
		return res
	}
	// Read the body to the end so that the connection can be reused, and so
	// that otelhttp ends the attempt's span.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	// The retrier hands back the last response when it gives up on a
	// status, so the attempts are the failed ones it reported plus this one.
	res := result{outcome: ok, attempts: *retries + 1, sent: *retries + 1}
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
		res.outcome, res.detail = failed, resp.Status
	}
	return res
}

func describeResult(r result) string {
	switch r.outcome {
	case ok:
		return "ok after " + plural(r.attempts, "attempt")
	case rejected:
		return fmt.Sprintf("rejected by the breaker at attempt %d (%d sent)", r.attempts, r.sent)
	}
	return fmt.Sprintf("failed after %s (%s)", plural(r.attempts, "attempt"), r.detail)
}

// describeError names a failed attempt's error: for a response that the
// retry transport retries, a [retry.StatusError] holding the response.
func describeError(err error) string {
	var se *retry.StatusError
	if errors.As(err, &se) {
		return se.Response.Status
	}
	return err.Error()
}

// describeSnapshot summarises the snapshot of a state change: the window
// that tripped the breaker, the probe that closed or reopened it, or how
// many attempts it rejected while open.
func describeSnapshot(s circuitbreaker.Snapshot) string {
	if s.State == circuitbreaker.StateOpen {
		return fmt.Sprintf("rejected %d attempts while open", s.Rejections)
	}
	return fmt.Sprintf("failure rate %.0f%%: %d of %d attempts failed", s.FailureRate, s.Failures, s.Calls)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
