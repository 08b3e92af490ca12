package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkBreaker/closed/bare-2         	100000000	         3.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreaker/closed/gobreaker-2    	  1303310	       200 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreaker/closed/gobreaker-2    	  1303310	       100 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreaker/closed/gobreaker-2    	  1303310	       900 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreaker/closed/otelpatterns-2 	 10482566	        20 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreaker/closed/otelpatterns-2 	 10482566	        30 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreaker/open/otelpatterns-2   	 10482566	        10 ns/op	       0 B/op	       0 allocs/op
PASS
`

func TestMedians(t *testing.T) {
	rows, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatalf("parse() error = %v", err)
	}
	if len(rows) != 4 {
		t.Fatalf("parse() = %d rows; want 4", len(rows))
	}
	for _, tc := range []struct {
		row  int
		want float64
	}{{0, 3}, {1, 200}, {2, 25}, {3, 10}} {
		if got := median(rows[tc.row].samples["ns/op"]); got != tc.want {
			t.Errorf("median(%s) = %v; want %v", rows[tc.row].name, got, tc.want)
		}
	}
	var out strings.Builder
	if err := write(&out, rows, "gobreaker"); err != nil {
		t.Fatalf("write() error = %v", err)
	}
	for _, want := range []string{"0.01x", "1.00x", "0.12x"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("write() = \n%s\nwant it to contain %q", out.String(), want)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "Breaker/open") || !strings.HasSuffix(last, " -") {
		t.Errorf("write() last line = %q; want the open row, with no ratio as it has no gobreaker row", last)
	}
}
