// Command medians reads `go test -bench` output on standard input and prints
// one line per benchmark with the median ns/op, B/op and allocs/op over its
// runs, and its ns/op as a multiple of the reference implementation's row in
// the same scenario.
//
// Benchmarks are named <Benchmark>/<scenario>/<impl>; the last element is
// the implementation, everything before it the scenario. compare.sh runs it
// as
//
//	go run ./internal/medians -ref gobreaker < bench.txt
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

func main() {
	ref := flag.String("ref", "gobreaker", "implementation that ratios are relative to")
	flag.Parse()
	rows, err := parse(os.Stdin)
	if err != nil {
		log.Fatal(err)
	}
	if len(rows) == 0 {
		log.Fatal("medians: no benchmark results on standard input")
	}
	if err := write(os.Stdout, rows, *ref); err != nil {
		log.Fatal(err)
	}
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

func write(w io.Writer, rows []*row, ref string) error {
	refNs := map[string]float64{}
	for _, rw := range rows {
		if s, impl := split(rw.name); impl == ref {
			refNs[s] = median(rw.samples["ns/op"])
		}
	}
	table := [][]string{append([]string{"scenario", "impl", "runs"}, append(units, "vs "+ref)...)}
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
	bw := bufio.NewWriter(w)
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
	return bw.Flush()
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
