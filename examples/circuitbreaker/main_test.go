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
	transitionRE = regexp.MustCompile(`(?m)^  request +(\d+): breaker (\S+) → (\S+) `)
	totalRE      = regexp.MustCompile(`(?m)^total: (\d+) ok, (\d+) failed, (\d+) rejected$`)
	finalRE      = regexp.MustCompile(`(?m)^final state of breaker "127\.0\.0\.1:\d+": (\S+)$`)
)

type transition struct {
	request  int
	from, to string
}

// TestRun plays the whole script and checks that the breaker opened during
// the outage, rejected requests, probed while half-open and closed again
// once the server recovered; and that the telemetry shows the same.
func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	// Keep the telemetry on the stdout exporters, whatever the environment.
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(v, "")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, tel bytes.Buffer
	start := time.Now()
	if err := run(ctx, &out, &tel); err != nil {
		t.Fatalf("run() = %v; want nil", err)
	}
	t.Logf("run took %v; its output:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	got := out.String()

	var ts []transition
	for _, m := range transitionRE.FindAllStringSubmatch(got, -1) {
		n, _ := strconv.Atoi(m[1])
		ts = append(ts, transition{n, m[2], m[3]})
	}
	if len(ts) < 3 {
		t.Fatalf("state changes = %v; want at least closed → open → half-open → closed", ts)
	}
	// The window is counted, not timed, so the trip is exact: the fifth
	// 503 (request 20) makes 5 failures in the last 10 calls.
	if want := (transition{20, "closed", "open"}); ts[0] != want {
		t.Errorf("first state change = %v; want %v", ts[0], want)
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
		if tr.to == "closed" && tr.request <= 40 {
			t.Errorf("state change %v: breaker closed before the server recovered (request 41)", tr)
		}
	}
	if !halfOpened {
		t.Errorf("state changes = %v; want one from open to half-open", ts)
	}
	if last := ts[len(ts)-1]; last.from != "half-open" || last.to != "closed" {
		t.Errorf("last state change = %v; want half-open → closed", last)
	}

	m := totalRE.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("output has no line matching %v", totalRE)
	}
	okN, _ := strconv.Atoi(m[1])
	failedN, _ := strconv.Atoi(m[2])
	rejectedN, _ := strconv.Atoi(m[3])
	if sum := okN + failedN + rejectedN; sum != 60 {
		t.Errorf("total: %d ok + %d failed + %d rejected = %d; want 60", okN, failedN, rejectedN, sum)
	}
	// At least the 5 failures that tripped the breaker plus one failed
	// probe, and far fewer than the 25 requests of the outage.
	if failedN < 6 || failedN > 15 {
		t.Errorf("failed = %d; want 6..15", failedN)
	}
	if rejectedN == 0 {
		t.Errorf("rejected = 0; want the open breaker to reject requests")
	}
	if okN < 15+10 {
		t.Errorf("ok = %d; want at least the 15 before the outage and 10 after it", okN)
	}

	if m := finalRE.FindStringSubmatch(got); m == nil || m[1] != "closed" {
		t.Errorf("final state line = %q; want the breaker closed", m)
	}

	// The breaker annotates the request spans and counts in metrics.
	for _, want := range []string{
		`"circuitbreaker.rejected"`,
		`"circuitbreaker.state_change"`,
		`"circuitbreaker.open"`, // error.type of rejected requests
		`"circuitbreaker.calls"`,
		`"circuitbreaker.state.transitions"`,
	} {
		if !strings.Contains(tel.String(), want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
	if strings.Contains(got, `"Name"`) {
		t.Errorf("stdout contains telemetry JSON; want it on the telemetry writer only")
	}
}
