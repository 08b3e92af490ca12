// Command circuitbreaker shows a circuit breaker protecting an HTTP client
// from a dependency that goes down and comes back.
//
// It starts a local HTTP server that stands in for a flaky dependency and
// sends it 60 requests, one every 40ms, through an [http.Client] whose
// transport is [circuitbreaker.NewTransport]. The server goes through three
// phases, switched by the program so that the run is repeatable:
//
//   - up (requests 1–15): the server answers 200 OK;
//   - down (requests 16–40): it answers 503 Service Unavailable;
//   - recovered (requests 41–60): it answers 200 OK again.
//
// The transport keeps one breaker per host, here with demo-sized settings:
// a window of the last 10 calls, tripping when at least half of them failed
// (once 5 calls are in), open for 300ms. During the outage the breaker
// opens at the fifth failure; while it is open, requests fail at once with
// an error matching [circuitbreaker.ErrOpen] and never reach the server.
// After 300ms it turns half-open and lets one probe request through: a
// failed probe opens it again, and the first probe after the server has
// recovered closes it.
//
// The program prints each state change as it happens, a line of outcomes
// per phase (. ok, x failed, - rejected while open, ~ rejected while
// half-open), and at the end the totals and the breaker's final state. Run
// it from the repository root:
//
//	go run ./examples/circuitbreaker
//
// # Telemetry
//
// Each request runs in a span of its own, and the breaker adds
// circuitbreaker.rejected and circuitbreaker.state_change events to it. The
// breaker's metrics (circuitbreaker.calls, circuitbreaker.state.transitions,
// circuitbreaker.state) go to a meter provider passed with
// [circuitbreaker.WithMeterProvider]. At the end the program prints the
// spans of the requests where the breaker changed state, with its events,
// and a summary of its metrics. They are kept in memory for that; all of
// them are written to stderr as JSON, once, at the end, with
// -telemetry=json, and sent to an OpenTelemetry collector over OTLP/HTTP
// when the standard variables say so (see the README's "Try it"):
//
//	go run ./examples/circuitbreaker -telemetry=json 2>telemetry.json
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/circuitbreaker
//
// A real service would also wrap the transport with otelhttp, for HTTP
// client spans and metrics; this example keeps to the OpenTelemetry SDK.
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
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
)

// scopeName is the instrumentation scope of the program's own spans.
const scopeName = "github.com/otelpatterns/patterns/examples/circuitbreaker"

// interval is the pause between two requests.
const interval = 40 * time.Millisecond

// A phase is a stretch of requests during which the server answers with
// one status.
type phase struct {
	name     string
	requests int
	status   int
}

var script = []phase{
	{"up", 15, http.StatusOK},
	{"down", 25, http.StatusServiceUnavailable},
	{"recovered", 20, http.StatusOK},
}

// outcome is what became of one request.
type outcome int

const (
	ok             outcome = iota // the server answered with a success
	failed                        // the server answered 5xx, or the request failed
	rejectedOpen                  // the breaker was open: ErrOpen
	rejectedProbes                // the breaker was half-open with its probe out: ErrTooManyRequests
	numOutcomes
)

// marks are the characters of the per-phase lines, by outcome.
var marks = [numOutcomes]byte{ok: '.', failed: 'x', rejectedOpen: '-', rejectedProbes: '~'}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, exampleotel.JSONOut())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "circuitbreaker example:", err)
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

	// The flaky dependency. status is what it answers; the loop below
	// switches it from phase to phase.
	var status atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := int(status.Load())
		w.WriteHeader(code)
		fmt.Fprintln(w, http.StatusText(code))
	}))
	defer srv.Close()

	// n is the number of the request being sent. Requests are sent one at a
	// time, and the breaker calls the state change listener on the
	// goroutine whose call caused the change, so the listener may read n
	// and write to out without locking.
	n := 0
	group := circuitbreaker.NewGroup(
		circuitbreaker.WithCountWindow(10),
		circuitbreaker.WithMinimumCalls(5),
		circuitbreaker.WithFailureRate(50),
		circuitbreaker.WithOpenDuration(300*time.Millisecond),
		circuitbreaker.WithMeterProvider(otelp.mp),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			fmt.Fprintf(out, "  request %2d: breaker %s → %s (%s)\n", n, c.From, c.To, describe(c.Snapshot))
		}),
	)
	// A transport of our own rather than http.DefaultTransport, so that its
	// idle connections can be closed at the end without touching the
	// process-wide one.
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	client := &http.Client{
		Transport: circuitbreaker.NewTransport(base, circuitbreaker.WithGroup(group)),
		Timeout:   2 * time.Second,
	}
	tracer := otelp.tp.Tracer(scopeName)

	u, err := url.Parse(srv.URL)
	if err != nil {
		return err
	}
	host := u.Host // the transport's key: one breaker per host
	total := 0
	for _, ph := range script {
		total += ph.requests
	}
	fmt.Fprintf(out, "sending %d requests to %s, one every %v\n", total, srv.URL, interval)
	fmt.Fprintln(out, "breaker: window of 10 calls, opens at 50% failures (from 5 calls on), stays open 300ms")

	var counts [numOutcomes]int
	for _, ph := range script {
		status.Store(int64(ph.status))
		fmt.Fprintf(out, "\nphase %q: requests %d–%d, the server answers %d %s\n",
			ph.name, n+1, n+ph.requests, ph.status, http.StatusText(ph.status))
		var line []byte
		var phaseCounts [numOutcomes]int
		for range ph.requests {
			n++
			o := send(ctx, tracer, client, srv.URL)
			line = append(line, marks[o])
			phaseCounts[o]++
			counts[o]++
			if err := sleep(ctx, interval); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "  %s  %s\n", line, describeCounts(phaseCounts))
	}

	b := group.Get(host)
	fmt.Fprintf(out, "\ntotal: %s\n", describeCounts(counts))
	fmt.Fprintf(out, "rejected while open: %d, while half-open: %d\n", counts[rejectedOpen], counts[rejectedProbes])
	fmt.Fprintf(out, "final state of breaker %q: %s\n", b.Name(), b.State())
	return otelp.printTelemetry(ctx, out)
}

// send sends one request in a span of its own, so that the breaker's events
// land on it, and reports what became of it.
func send(ctx context.Context, tracer trace.Tracer, client *http.Client, target string) outcome {
	ctx, span := tracer.Start(ctx, "check dependency")
	defer span.End()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return failed
	}
	resp, err := client.Do(req)
	if err != nil {
		// The breaker's errors have an ErrorType method, so error.type
		// reads circuitbreaker.open or circuitbreaker.too_many_requests.
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
		switch {
		case errors.Is(err, circuitbreaker.ErrOpen):
			return rejectedOpen
		case errors.Is(err, circuitbreaker.ErrTooManyRequests):
			return rejectedProbes
		}
		return failed
	}
	// Read the body to the end so that the connection can be reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
		return failed
	}
	return ok
}

// describe summarises the snapshot of a state change: the window that
// tripped the breaker, the probes that closed or reopened it, or how many
// calls it rejected while open.
func describe(s circuitbreaker.Snapshot) string {
	if s.State == circuitbreaker.StateOpen {
		return fmt.Sprintf("rejected %d calls while open", s.Rejections)
	}
	return fmt.Sprintf("failure rate %.0f%%: %d of %d calls failed", s.FailureRate, s.Failures, s.Calls)
}

func describeCounts(c [numOutcomes]int) string {
	return fmt.Sprintf("%d ok, %d failed, %d rejected", c[ok], c[failed], c[rejectedOpen]+c[rejectedProbes])
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
