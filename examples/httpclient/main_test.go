package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	resultRE     = regexp.MustCompile(`(?m)^  request +(\d+): (ok after|failed after|rejected by the breaker at attempt) (\d+)(?: attempts?)?(?: \((\d+) sent\))?`)
	transitionRE = regexp.MustCompile(`(?m)^  request +(\d+): breaker (\S+) → (\S+) `)
	retryRE      = regexp.MustCompile(`(?m)^  request +(\d+): attempt (\d+) failed \(503 Service Unavailable\), (retrying in \d+ms|retrying at once)`)
	requestsRE   = regexp.MustCompile(`(?m)^requests: (\d+), (\d+) ok, (\d+) failed, (\d+) rejected by the breaker$`)
	attemptsRE   = regexp.MustCompile(`(?m)^attempts: (\d+) made by the retrier, (\d+) seen by the server$`)
	finalRE      = regexp.MustCompile(`(?m)^final state of breaker "127\.0\.0\.1:\d+": (\S+)$`)
)

type transition struct {
	request  int
	from, to string
}

// requestResult is one request's outcome line.
type requestResult struct {
	outcome        string // "ok", "failed" or "rejected"
	attempts, sent int
}

// TestRun plays the whole script and checks what the client printed against
// the script and against the attempts the server saw: flaky requests
// succeed after retries, the outage exhausts the retries and opens the
// breaker, which then rejects requests without sending them and without
// retrying, and closes once the server has recovered; and the telemetry
// shows the attempts and the retries.
func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	// Keep the telemetry on the stdout exporters, whatever the environment.
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(v, "")
	}

	// The phases' first requests, from the script.
	first := map[string]int{}
	total := 0
	for _, ph := range script {
		first[ph.name] = total + 1
		total += ph.requests
	}
	firstDown, firstRecovered := first["down"], first["recovered"]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, tel bytes.Buffer
	start := time.Now()
	if err := run(ctx, &out, &tel); err != nil {
		t.Fatalf("run() = %v; want nil", err)
	}
	elapsed := time.Since(start)
	t.Logf("run took %v; its output:\n%s", elapsed.Round(time.Millisecond), out.String())
	got := out.String()
	if elapsed > 6*time.Second {
		t.Errorf("run took %v; want less than 6s", elapsed)
	}

	// One outcome line per request.
	results := map[int]requestResult{}
	for _, m := range resultRE.FindAllStringSubmatch(got, -1) {
		n, _ := strconv.Atoi(m[1])
		r := requestResult{outcome: strings.Fields(m[2])[0]}
		r.attempts, _ = strconv.Atoi(m[3])
		r.sent = r.attempts
		if r.outcome == "rejected" {
			r.sent, _ = strconv.Atoi(m[4])
			if r.sent != r.attempts-1 {
				t.Errorf("request %d: rejected at attempt %d with %d sent; want %d sent", n, r.attempts, r.sent, r.attempts-1)
			}
		}
		if _, dup := results[n]; dup {
			t.Errorf("request %d has two outcome lines", n)
		}
		results[n] = r
	}
	if len(results) != total {
		t.Fatalf("output has outcome lines for %d requests; want %d", len(results), total)
	}

	var ts []transition
	for _, m := range transitionRE.FindAllStringSubmatch(got, -1) {
		n, _ := strconv.Atoi(m[1])
		ts = append(ts, transition{n, m[2], m[3]})
	}
	if len(ts) < 3 {
		t.Fatalf("state changes = %v; want at least closed → open → half-open → closed", ts)
	}
	// The window is counted, not timed, so the trip is exact: the first
	// request of the outage fails 4 times, which with the 1 failure among
	// the 6 attempts before it makes 5 of the last 10.
	if want := (transition{firstDown, "closed", "open"}); ts[0] != want {
		t.Errorf("first state change = %v; want %v", ts[0], want)
	}
	if r := results[firstDown]; r != (requestResult{"failed", 4, 4}) {
		t.Errorf("request %d (first of the outage) = %+v; want failed after 4 attempts, all sent", firstDown, r)
	}
	for i := 1; i < len(ts); i++ {
		if ts[i].from != ts[i-1].to {
			t.Errorf("state change %d = %v follows %v; want it to start from %q", i, ts[i], ts[i-1], ts[i-1].to)
		}
		if ts[i].request < ts[i-1].request {
			t.Errorf("state change %d = %v comes after %v", i, ts[i], ts[i-1])
		}
	}
	halfOpened := false
	for _, tr := range ts {
		if tr.from == "open" && tr.to == "half-open" {
			halfOpened = true
		}
		if tr.to == "closed" && tr.request < firstRecovered {
			t.Errorf("state change %v: breaker closed before the server recovered (request %d)", tr, firstRecovered)
		}
	}
	if !halfOpened {
		t.Errorf("state changes = %v; want one from open to half-open", ts)
	}
	if last := ts[len(ts)-1]; last.from != "half-open" || last.to != "closed" {
		t.Errorf("last state change = %v; want half-open → closed", last)
	}

	// Retries: flaky requests succeed after more than one attempt, and
	// Retry-After: 0 is honoured (equal jitter never waits 0 otherwise).
	var okAfterRetries []int
	var totals struct{ ok, failed, rejected, attempts, sent, rejectedUnsent int }
	for n := 1; n <= total; n++ {
		r := results[n]
		totals.attempts += r.attempts
		totals.sent += r.sent
		switch r.outcome {
		case "ok":
			totals.ok++
			if r.attempts > 1 {
				okAfterRetries = append(okAfterRetries, n)
			}
		case "failed":
			totals.failed++
		case "rejected":
			totals.rejected++
			if r.sent == 0 {
				totals.rejectedUnsent++
			}
			if n < firstDown {
				t.Errorf("request %d rejected before the outage", n)
			}
		}
		if n < firstDown && r.outcome != "ok" {
			t.Errorf("request %d = %+v; want ok before the outage", n, r)
		}
	}
	if len(okAfterRetries) == 0 {
		t.Errorf("no request succeeded after more than one attempt")
	}
	atOnce := 0
	for _, m := range retryRE.FindAllStringSubmatch(got, -1) {
		if m[3] == "retrying at once" {
			atOnce++
		}
	}
	if atOnce == 0 {
		t.Errorf("no retry at once; want the flaky server's Retry-After: 0 honoured")
	}
	if totals.rejectedUnsent == 0 {
		t.Errorf("no request rejected at its first attempt; want the open breaker to fail requests fast, without retries")
	}

	// The totals, and the attempts the server saw: every attempt that was
	// not rejected, and none that was.
	m := requestsRE.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("output has no line matching %v", requestsRE)
	}
	if want := []string{strconv.Itoa(total), strconv.Itoa(totals.ok), strconv.Itoa(totals.failed), strconv.Itoa(totals.rejected)}; strings.Join(m[1:], " ") != strings.Join(want, " ") {
		t.Errorf("totals line %q; want %v requests, ok, failed, rejected from the request lines", m[0], want)
	}
	m = attemptsRE.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("output has no line matching %v", attemptsRE)
	}
	made, _ := strconv.Atoi(m[1])
	seen, _ := strconv.Atoi(m[2])
	if made != totals.attempts {
		t.Errorf("attempts made by the retrier = %d; want %d, the sum of the request lines", made, totals.attempts)
	}
	if seen != totals.sent {
		t.Errorf("attempts seen by the server = %d; want %d, the attempts not rejected by the breaker", seen, totals.sent)
	}
	if made-seen != totals.rejected || totals.rejected == 0 {
		t.Errorf("attempts: %d made, %d seen by the server; want %d more made, one per rejected request", made, seen, totals.rejected)
	}

	if m := finalRE.FindStringSubmatch(got); m == nil || m[1] != "closed" {
		t.Errorf("final state line = %q; want the breaker closed", m)
	}

	// otelhttp's span per attempt, the retry span and metrics, the
	// breaker's events.
	for _, want := range []string{
		`"http.request.resend_count"`,
		`"Name":"retry"`,
		`"Name":"retry.attempts"`,
		`"Name":"retry.calls"`,
		`"Name":"http.client.request.duration"`,
		`"circuitbreaker.rejected"`,
		`"circuitbreaker.open"`, // error.type of rejected requests
	} {
		if !strings.Contains(tel.String(), want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
	if strings.Contains(got, `"Name"`) {
		t.Errorf("stdout contains telemetry JSON; want it on the telemetry writer only")
	}
}
