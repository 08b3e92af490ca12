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
	// statsRE matches the per-instance lines of the phases and the totals.
	statsRE = regexp.MustCompile(`^  instance (A|B): +(\d+) requests, L1 hits +(?:[\d.]+%|-) \((\d+)/(\d+)\), L2 hits +(?:[\d.]+%|-) \((\d+)/(\d+)\), (\d+) loads`)
	setRE   = regexp.MustCompile(`(?m)^  instance A sets (p-\d+) to (\$\d+\.\d\d): `)
	readRE  = regexp.MustCompile(`(?m)^  instance B reads (p-\d+) "[^"]+": (\$\d+\.\d\d) \(([^)]+)\)$`)
	invRE   = regexp.MustCompile(`(?m)^  instance B: .*; invalidations received: (\d+)$`)
	dbRE    = regexp.MustCompile(`(?m)^database reads: (\d+) for (\d+) requests \(cache\.loads: (\d+)\)$`)
)

// stats is one per-instance line of the output.
type stats struct {
	requests, l1Hits, l1Lookups, l2Hits, l2Lookups, loads int
}

// sections splits the output into its phases and totals, keyed by the
// first word of their heading ("phase 1", ..., "totals"), with the
// per-instance lines of each.
func sections(t *testing.T, out string) map[string]map[string]stats {
	t.Helper()
	secs := map[string]map[string]stats{}
	var cur map[string]stats
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "phase "):
			cur = map[string]stats{}
			secs[line[:len("phase 1")]] = cur
		case strings.HasPrefix(line, "totals"):
			cur = map[string]stats{}
			secs["totals"] = cur
		case cur != nil:
			if m := statsRE.FindStringSubmatch(line); m != nil {
				var n [7]int
				for i := 2; i < len(m); i++ {
					n[i-2], _ = strconv.Atoi(m[i])
				}
				cur[m[1]] = stats{n[0], n[1], n[2], n[3], n[4], n[5]}
			}
		}
	}
	return secs
}

// TestRun plays the four phases and checks what the example claims: a cold
// instance loads each product once; the second instance gets products the
// first loaded from L2, without loads; the price change written on A is
// read on B from L2 after the invalidation; loads are a fraction of the
// requests, and match the database reads; and the telemetry holds the
// caches' spans and metrics.
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
		t.Fatalf("run() = %v; want nil\noutput:\n%s", err, out.String())
	}
	took := time.Since(start)
	t.Logf("run took %v; its output:\n%s", took.Round(time.Millisecond), out.String())
	got := out.String()
	secs := sections(t, got)

	// Phase 1: A starts cold, so every L1 miss goes to L2, misses there
	// too, and loads; and each product loads once, so there are fewer
	// loads than requests.
	a1, ok := secs["phase 1"]["A"]
	if !ok {
		t.Fatalf("phase 1 has no line for instance A; output:\n%s", got)
	}
	if a1.requests != 200 || a1.l1Lookups != 200 {
		t.Errorf("phase 1, A: %d requests, %d L1 lookups; want 200 of each", a1.requests, a1.l1Lookups)
	}
	if a1.l2Hits != 0 || a1.l2Lookups != a1.l1Lookups-a1.l1Hits || a1.loads != a1.l2Lookups {
		t.Errorf("phase 1, A: %+v; want every L1 miss to miss L2 and load", a1)
	}
	if a1.loads == 0 || a1.loads >= a1.requests {
		t.Errorf("phase 1, A: %d loads for %d requests; want some, and fewer than the requests", a1.loads, a1.requests)
	}

	// Phase 2: B finds in L2 what A loaded.
	b2, ok := secs["phase 2"]["B"]
	if !ok {
		t.Fatalf("phase 2 has no line for instance B; output:\n%s", got)
	}
	if b2.l2Hits == 0 {
		t.Errorf("phase 2, B: %+v; want L2 hits on the products A loaded", b2)
	}
	if b2.l2Lookups != b2.l1Lookups-b2.l1Hits || b2.loads != b2.l2Lookups-b2.l2Hits {
		t.Errorf("phase 2, B: %+v; want every L1 miss to look in L2, and every L2 miss to load", b2)
	}
	if _, ok := secs["phase 2"]["A"]; ok {
		t.Errorf("phase 2 has a line for instance A, which served nothing then")
	}

	// Phase 3: B reads the new price, from L2, after A's Set invalidated its
	// L1 copy.
	set := setRE.FindStringSubmatch(got)
	if set == nil {
		t.Fatalf("output has no line matching %v", setRE)
	}
	reads := readRE.FindAllStringSubmatch(got, -1)
	if len(reads) != 2 {
		t.Fatalf("B read the changed product %d times; want 2 (before and after the change)", len(reads))
	}
	before, after := reads[0], reads[1]
	if before[1] != set[1] || after[1] != set[1] {
		t.Errorf("B read %s and %s; want %s, the product A changed", before[1], after[1], set[1])
	}
	if before[3] != "L1 hit" || before[2] == set[2] {
		t.Errorf("B's read before the change = %s (%s); want the old price from L1", before[2], before[3])
	}
	if after[2] != set[2] || after[3] != "L1 miss, L2 hit" {
		t.Errorf("B's read after the change = %s (%s); want %s (L1 miss, L2 hit)", after[2], after[3], set[2])
	}

	// Totals: loads are a fraction of the requests, and every load is a
	// database read.
	var requests, loads int
	for _, name := range []string{"A", "B"} {
		s, ok := secs["totals"][name]
		if !ok {
			t.Fatalf("totals have no line for instance %s; output:\n%s", name, got)
		}
		requests += s.requests
		loads += s.loads
	}
	if loads == 0 || loads*2 >= requests {
		t.Errorf("totals: %d loads for %d requests; want fewer than half as many", loads, requests)
	}
	if secs["totals"]["B"].l2Hits == 0 {
		t.Errorf("totals, B: no L2 hits")
	}
	if m := invRE.FindStringSubmatch(got); m == nil || m[1] != "1" {
		t.Errorf("totals, B: invalidations received = %q; want 1, from A's Set", m)
	}
	db := dbRE.FindStringSubmatch(got)
	if db == nil {
		t.Fatalf("output has no line matching %v", dbRE)
	}
	if db[1] != strconv.Itoa(loads) || db[3] != strconv.Itoa(loads) || db[2] != strconv.Itoa(requests) {
		t.Errorf("database line = %q; want %d reads for %d requests (cache.loads: %d)", db[0], loads, requests, loads)
	}
	// Each load takes 20ms and requests are sent one at a time.
	if minimum := time.Duration(loads) * loadDelay; took < minimum {
		t.Errorf("run took %v; want at least %v for %d loads of %v", took, minimum, loads, loadDelay)
	}

	// The caches' spans and metrics reach the exporters.
	for _, want := range []string{
		`"cache.l2.get"`,
		`"cache.l2.set"`,
		`"cache.load"`,
		`"cache.requests"`,
		`"cache.loads"`,
		`"cache.invalidations"`,
		`"catalogue-a"`,
		`"catalogue-b"`,
	} {
		if !strings.Contains(tel.String(), want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
	if strings.Contains(got, `"Name"`) {
		t.Errorf("stdout contains telemetry JSON; want it on the telemetry writer only")
	}
}
