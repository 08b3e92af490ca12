package load

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is what a [Run] saw. Latencies are those of answers (any status),
// from the send to the last byte of the body, read from a histogram whose
// percentiles are at most 0.8% above the true ones; Max is exact.
type Report struct {
	// Sent counts the requests sent; Errors, those that got no answer (a
	// transport error: refused, reset, timed out...).
	Sent, Errors int
	// Status counts the answers by HTTP status code.
	Status map[int]int
	// P50, P90 and P99 are latency percentiles over all answers, Max the
	// slowest; all 0 with no answer.
	P50, P90, P99, Max time.Duration
	// Achieved is the rate reached: Sent over Elapsed, in requests per
	// second.
	Achieved float64
	// Patterns is what the library's patterns did meanwhile.
	Patterns Patterns

	// Dropped counts the requests whose time came while MaxInFlight
	// requests awaited answers, and which were therefore not sent.
	Dropped int
	// Elapsed is the sending window: Config.Duration when the schedule
	// was kept, longer when the sender fell behind, shorter when the run
	// was canceled.
	Elapsed time.Duration
	// ErrorKinds counts Errors by kind ("connection refused", "timeout",
	// ...), at most 8 kinds and "other".
	ErrorKinds map[string]int
}

// Print writes r for a reader: the requests and rate, the latency
// percentiles, the answers by status, the errors by kind, and, when
// measured, what the patterns did.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "load: %d requests in %v (%.1f/s), %d dropped at the in-flight cap\n",
		r.Sent, r.Elapsed.Round(time.Millisecond), r.Achieved, r.Dropped)
	fmt.Fprintf(w, "  latency: p50 %v, p90 %v, p99 %v, max %v\n", round(r.P50), round(r.P90), round(r.P99), round(r.Max))
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(r.Status)) {
		parts = append(parts, fmt.Sprintf("%d × %d", code, r.Status[code]))
	}
	if len(parts) == 0 {
		parts = append(parts, "none")
	}
	fmt.Fprintf(w, "  answers: %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "  errors: %d", r.Errors)
	if len(r.ErrorKinds) > 0 {
		parts = parts[:0]
		for _, kind := range slices.Sorted(maps.Keys(r.ErrorKinds)) {
			parts = append(parts, fmt.Sprintf("%s × %d", kind, r.ErrorKinds[kind]))
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	p := r.Patterns
	if !p.Measured {
		return
	}
	fmt.Fprintf(w, "  breaker rejections: %.0f%s\n", p.BreakerRejections, byName(p.BreakerRejectionsByName))
	fmt.Fprintf(w, "  retries: %.0f%s\n", p.Retries, byName(p.RetriesByName))
	fmt.Fprintf(w, "  rate-limited (429): %.0f\n", p.RateLimited)
	fmt.Fprintf(w, "  sagas: %.0f completed, %.0f compensated\n", p.SagasCompleted, p.SagasCompensated)
	parts = parts[:0]
	for _, level := range slices.Sorted(maps.Keys(p.CacheHitRatio)) {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", level, 100*p.CacheHitRatio[level]))
	}
	if len(parts) == 0 {
		parts = append(parts, "no lookups")
	}
	fmt.Fprintf(w, "  cache hit ratio: %s\n", strings.Join(parts, ", "))
}

// byName formats counts by name as " (a 1, b 2)", or "" for none.
func byName(m map[string]float64) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", name, m[name]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
