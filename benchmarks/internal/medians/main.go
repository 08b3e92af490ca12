// Command medians reads `go test -bench` output on standard input and prints
// one line per benchmark with the median ns/op, B/op and allocs/op over its
// runs, and its ns/op as a multiple of the reference implementation's row in
// the same scenario.
//
// Benchmarks are named <Family>/<scenario>/<impl> (BenchmarkBreaker/closed/gobreaker);
// the last element is the implementation, everything before it the scenario,
// and the first element the family. Each family has its own reference
// implementation and its own table. compare.sh runs it as
//
//	go run ./internal/medians -ref Breaker=gobreaker,Retry=backoff,Cache=ristretto < bench.txt
//
// A -ref without a family (-ref gobreaker) applies to every family that is
// not named.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// units are the columns printed, in order.
var units = []string{"ns/op", "B/op", "allocs/op"}

// procSuffix is the -GOMAXPROCS suffix go test appends to benchmark names.
var procSuffix = regexp.MustCompile(`-\d+$`)

// row is one benchmark's samples, by unit.
type row struct {
	name    string
	samples map[string][]float64
}

// defaultRefs is the reference implementation of each family of
// benchmarks/: the peer a team most often picks for that pattern.
const defaultRefs = "Breaker=gobreaker,Retry=backoff,Cache=ristretto,GRPC=bare,GRPCInterceptors=bare"

func main() {
	refFlag := flag.String("ref", defaultRefs, "implementation that ratios are relative to, per family: Family=impl,... (an impl without Family= applies to the others)")
	flag.Parse()
	refs, err := parseRefs(*refFlag)
	if err != nil {
		log.Fatal(err)
	}
	rows, err := parse(os.Stdin)
	if err != nil {
		log.Fatal(err)
	}
	if len(rows) == 0 {
		log.Fatal("medians: no benchmark results on standard input")
	}
	if err := write(os.Stdout, rows, refs); err != nil {
		log.Fatal(err)
	}
}

// refs maps a benchmark family (Breaker, Retry, Cache) to the implementation its
// ratios are relative to; the "" key holds the one for families not listed.
type refs map[string]string

// parseRefs parses a -ref value: comma-separated Family=impl pairs, and at
// most one impl with no family, the fallback.
func parseRefs(s string) (refs, error) {
	r := refs{}
	for _, part := range strings.Split(s, ",") {
		family, impl, named := strings.Cut(strings.TrimSpace(part), "=")
		if !named {
			family, impl = "", family
		}
		if impl == "" || (named && family == "") {
			return nil, fmt.Errorf("medians: -ref %q: %q is not Family=impl or impl", s, part)
		}
		if _, dup := r[family]; dup {
			return nil, fmt.Errorf("medians: -ref %q: two references for %q", s, family)
		}
		r[family] = impl
	}
	return r, nil
}

// of returns the reference implementation of family, "" if there is none.
func (r refs) of(family string) string {
	if impl, ok := r[family]; ok {
		return impl
	}
	return r[""]
}

// parse collects the samples of every benchmark line, keeping the order in
// which benchmarks first appear.
func parse(r io.Reader) ([]*row, error) {
	var rows []*row
	byName := map[string]*row{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Benchmark<Name> <iterations> <value> <unit> [<value> <unit>]...
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		rw := byName[name]
		if rw == nil {
			rw = &row{name: name, samples: map[string][]float64{}}
			byName[name] = rw
			rows = append(rows, rw)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("medians: %q: %v", sc.Text(), err)
			}
			rw.samples[f[i+1]] = append(rw.samples[f[i+1]], v)
		}
	}
	return rows, sc.Err()
}

// median returns the median of xs, NaN when xs is empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// split cuts a benchmark name into scenario and implementation.
func split(name string) (scenario, impl string) {
	name = strings.TrimPrefix(name, "Benchmark")
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return name, ""
	}
	return name[:i], name[i+1:]
}

// family returns the first element of a benchmark name: Breaker for
// BenchmarkBreaker/closed/gobreaker.
func family(name string) string {
	name = strings.TrimPrefix(name, "Benchmark")
	f, _, _ := strings.Cut(name, "/")
	return f
}

// write prints one table per family, in the order the families first
// appear, each with ratios to the family's reference implementation.
func write(w io.Writer, rows []*row, refs refs) error {
	var families []string
	byFamily := map[string][]*row{}
	for _, rw := range rows {
		f := family(rw.name)
		if byFamily[f] == nil {
			families = append(families, f)
		}
		byFamily[f] = append(byFamily[f], rw)
	}
	bw := bufio.NewWriter(w)
	for i, f := range families {
		if i > 0 {
			bw.WriteString("\n")
		}
		writeTable(bw, byFamily[f], refs.of(f))
	}
	return bw.Flush()
}

// writeTable prints the rows of one family, with ns/op as a multiple of the
// ref row of the same scenario ("-" when there is none).
func writeTable(bw *bufio.Writer, rows []*row, ref string) {
	refNs := map[string]float64{}
	for _, rw := range rows {
		if s, impl := split(rw.name); ref != "" && impl == ref {
			refNs[s] = median(rw.samples["ns/op"])
		}
	}
	refCol := "vs " + ref
	if ref == "" {
		refCol = "vs -"
	}
	table := [][]string{append([]string{"scenario", "impl", "runs"}, append(units, refCol)...)}
	for _, rw := range rows {
		s, impl := split(rw.name)
		line := []string{s, impl, strconv.Itoa(len(rw.samples["ns/op"]))}
		for _, u := range units {
			line = append(line, format(median(rw.samples[u])))
		}
		ratio := "-"
		if r, ok := refNs[s]; ok && r > 0 {
			ratio = fmt.Sprintf("%.2fx", median(rw.samples["ns/op"])/r)
		}
		table = append(table, append(line, ratio))
	}
	width := make([]int, len(table[0]))
	for _, line := range table {
		for i, cell := range line {
			width[i] = max(width[i], len(cell))
		}
	}
	for n, line := range table {
		if n > 1 && line[0] != table[n-1][0] {
			bw.WriteString("\n") // a blank line between scenarios
		}
		for i, cell := range line {
			switch {
			case i < 2: // text, left-aligned
				fmt.Fprintf(bw, "%-*s  ", width[i], cell)
			case i < len(line)-1:
				fmt.Fprintf(bw, "%*s  ", width[i], cell)
			default:
				fmt.Fprintf(bw, "%*s\n", width[i], cell)
			}
		}
	}
}

// format prints v with three significant digits, as go test does for small
// values, and "-" for a missing unit.
func format(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
