package gwbench

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// A Sample is one load-generator run against one target.
type Sample struct {
	Round    int
	Target   string
	RPS      float64 // requests per second
	P50, P99 float64 // latency, µs
	// CPU is the CPU time the target's processes spent per request, µs
	// (0: not measured).
	CPU float64
}

// ParseSamples reads samples written one a line as
// "round target rps p50µs p99µs [cpuµs]", separated by white space; lines
// starting with # are skipped.
func ParseSamples(r io.Reader) ([]Sample, error) {
	var out []Sample
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 && len(f) != 6 {
			return nil, fmt.Errorf("line %d: %q: want 5 or 6 fields", n, line)
		}
		var s Sample
		var err error
		if s.Round, err = strconv.Atoi(f[0]); err != nil {
			return nil, fmt.Errorf("line %d: round: %w", n, err)
		}
		s.Target = f[1]
		for i, p := range []*float64{&s.RPS, &s.P50, &s.P99, &s.CPU}[:len(f)-2] {
			if *p, err = strconv.ParseFloat(f[2+i], 64); err != nil {
				return nil, fmt.Errorf("line %d: field %d: %w", n, 3+i, err)
			}
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Report writes a markdown table of the samples' medians per target, in
// the order targets first appear, with throughput and p99 against ref's
// (as the median of per-round ratios and differences, so that a change
// of the machine's load between rounds weighs on both sides alike).
func Report(w io.Writer, samples []Sample, ref string) {
	var order []string
	by := map[string][]Sample{}
	for _, s := range samples {
		if _, ok := by[s.Target]; !ok {
			order = append(order, s.Target)
		}
		by[s.Target] = append(by[s.Target], s)
	}
	refByRound := map[int]Sample{}
	for _, s := range by[ref] {
		refByRound[s.Round] = s
	}
	fmt.Fprintf(w, "| target | requests/s | min–max | p50 | p99 | requests/s / %s | p99 − %s | CPU/request | CPU / %s's |\n", ref, ref, ref)
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, t := range order {
		var rps, p50, p99, cpu, ratio, added, cpuRatio []float64
		for _, s := range by[t] {
			rps, p50, p99 = append(rps, s.RPS), append(p50, s.P50), append(p99, s.P99)
			if s.CPU > 0 {
				cpu = append(cpu, s.CPU)
			}
			if r, ok := refByRound[s.Round]; ok && r.RPS > 0 {
				ratio = append(ratio, s.RPS/r.RPS)
				added = append(added, s.P99-r.P99)
				if r.CPU > 0 && s.CPU > 0 {
					cpuRatio = append(cpuRatio, s.CPU/r.CPU)
				}
			}
		}
		rel, diff, cpuRel, cpuAbs := "", "", "", ""
		if len(ratio) > 0 && t != ref {
			rel = fmt.Sprintf("%.2f×", median(ratio))
			diff = signedMicros(median(added))
		}
		if len(cpuRatio) > 0 && t != ref {
			cpuRel = fmt.Sprintf("%.2f×", median(cpuRatio))
		}
		if len(cpu) > 0 {
			cpuAbs = fmt.Sprintf("%.1f µs", median(cpu))
		}
		fmt.Fprintf(w, "| %s | %s | %s–%s | %s | %s | %s | %s | %s | %s |\n", t,
			thousands(median(rps)), thousands(slices.Min(rps)), thousands(slices.Max(rps)),
			micros(median(p50)), micros(median(p99)), rel, diff, cpuAbs, cpuRel)
	}
	fmt.Fprintf(w, "\n%d rounds; medians per target.\n", len(by[order[0]]))
	// The throughput targets, as medians of per-round ratios.
	ratio := func(t, base string, of func(Sample) float64) (float64, bool) {
		baseByRound := map[int]float64{}
		for _, s := range by[base] {
			baseByRound[s.Round] = of(s)
		}
		var rs []float64
		for _, s := range by[t] {
			if b := baseByRound[s.Round]; b > 0 && of(s) > 0 {
				rs = append(rs, of(s)/b)
			}
		}
		return median(rs), len(rs) > 0
	}
	rpsOf := func(s Sample) float64 { return s.RPS }
	cpuOf := func(s Sample) float64 { return s.CPU }
	var lines []string
	for _, tg := range []struct {
		target, base string
		min          float64
	}{{Routing, ref, 0.95}, {Full, ref, 0.85}, {FullNoCache, ref, 0.85}, {FullRS256, ref, 0.85},
		{Routing, "caddy", 1}, {Full, "caddy", 1}, {FullNoCache, "caddy", 1}, {FullRS256, "caddy", 1}} {
		if r, ok := ratio(tg.target, tg.base, rpsOf); ok && tg.target != ref {
			line := fmt.Sprintf("- %s: %.2f× %s's requests/s (target ≥ %.2f×): %s", tg.target, r, tg.base, tg.min, verdict(r >= tg.min))
			if c, ok := ratio(tg.target, tg.base, cpuOf); ok {
				line += fmt.Sprintf("; CPU/request %.2f× %s's", c, tg.base)
			}
			lines = append(lines, line)
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nTargets (issue 15; on a machine running other work, trust the CPU/request ratios over requests/s):\n\n%s\n", strings.Join(lines, "\n"))
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func micros(us float64) string {
	if us >= 10000 {
		return fmt.Sprintf("%.2f ms", us/1000)
	}
	return thousands(us) + " µs"
}

func signedMicros(us float64) string {
	if us < 0 {
		return "−" + micros(-us)
	}
	return "+" + micros(us)
}

// ReportLatency writes a markdown table of the samples' median p50 and
// p99 per target (their RPS is the fixed rate sent), with what each adds
// to ref's, as the median of per-round differences.
func ReportLatency(w io.Writer, samples []Sample, ref string) {
	var order []string
	by := map[string][]Sample{}
	for _, s := range samples {
		if _, ok := by[s.Target]; !ok {
			order = append(order, s.Target)
		}
		by[s.Target] = append(by[s.Target], s)
	}
	refByRound := map[int]Sample{}
	for _, s := range by[ref] {
		refByRound[s.Round] = s
	}
	var added []string
	fmt.Fprintf(w, "| target | p50 | p99 | p50 − %s | p99 − %s | p99 min–max |\n", ref, ref)
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, t := range order {
		var p50, p99, d50, d99 []float64
		for _, s := range by[t] {
			p50, p99 = append(p50, s.P50), append(p99, s.P99)
			if r, ok := refByRound[s.Round]; ok {
				d50, d99 = append(d50, s.P50-r.P50), append(d99, s.P99-r.P99)
			}
		}
		a50, a99 := "", ""
		if len(d50) > 0 && t != ref {
			a50, a99 = signedMicros(median(d50)), signedMicros(median(d99))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s–%s |\n", t, micros(median(p50)), micros(median(p99)),
			a50, a99, micros(slices.Min(p99)), micros(slices.Max(p99)))
		if (t == Full || t == FullNoCache) && len(d99) > 0 && t != ref {
			added = append(added, fmt.Sprintf("- %s: %s added to %s's p99 (target ≤ +100 µs): %s", t, signedMicros(median(d99)), ref, verdict(median(d99) <= 100)))
		}
	}
	fmt.Fprintf(w, "\n%d rounds; medians per target.\n", len(by[order[0]]))
	if len(added) > 0 {
		fmt.Fprintf(w, "\nTargets (issue 15):\n\n%s\n", strings.Join(added, "\n"))
	}
}
