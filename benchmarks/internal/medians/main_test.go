package main

import (
	"maps"
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
	if err := write(&out, rows, refs{"": "gobreaker"}); err != nil {
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

const mixed = `goos: linux
BenchmarkBreaker/closed/otelpatterns-2 	 10482566	        20 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreaker/closed/gobreaker-2    	  1303310	       100 ns/op	       0 B/op	       0 allocs/op
BenchmarkRetry/first-success/otelpatterns-2 	 10482566	        12 ns/op	       0 B/op	       0 allocs/op
BenchmarkRetry/first-success/backoff-2      	  1303310	       240 ns/op	     104 B/op	       2 allocs/op
BenchmarkRetry/first-success/gobreaker-2    	  1303310	        24 ns/op	       0 B/op	       0 allocs/op
BenchmarkRetry/two-failures/otelpatterns-2  	 10482566	      1800 ns/op	     768 B/op	      17 allocs/op
BenchmarkRetry/two-failures/backoff-2       	  1303310	      1200 ns/op	     304 B/op	       7 allocs/op
BenchmarkCache/hit-parallel/otelpatterns-2  	 10482566	        30 ns/op	       0 B/op	       0 allocs/op
BenchmarkCache/hit-parallel/ristretto-2     	 10482566	        25 ns/op	       0 B/op	       0 allocs/op
BenchmarkCache/miss-load/otelpatterns-2     	   100000	      4000 ns/op	         1.000 loads/op	    1243 B/op	      21 allocs/op
BenchmarkCache/miss-load/ristretto-2        	   100000	      2000 ns/op	         1.000 loads/op	     378 B/op	       7 allocs/op
BenchmarkSaga/run/otelpatterns-2            	 10482566	        30 ns/op	       0 B/op	       0 allocs/op
PASS
`

// TestMediansPerFamily checks that each family of benchmarks gets its own
// table with ratios to its own reference implementation, and that a family
// with no reference gets no ratios.
func TestMediansPerFamily(t *testing.T) {
	rows, err := parse(strings.NewReader(mixed))
	if err != nil {
		t.Fatalf("parse() error = %v", err)
	}
	r, err := parseRefs(defaultRefs)
	if err != nil {
		t.Fatalf("parseRefs(%q) error = %v", defaultRefs, err)
	}
	var out strings.Builder
	if err := write(&out, rows, r); err != nil {
		t.Fatalf("write() error = %v", err)
	}
	// Each table starts with its header line.
	tables := strings.Split(strings.TrimSpace(out.String()), "\n\nscenario ")
	if len(tables) != 4 {
		t.Fatalf("write() = \n%s\nwant 4 tables (Breaker, Retry, Cache, Saga), each with a header", out.String())
	}
	for _, tc := range []struct {
		table  int
		header string
		ratios map[string]string // by "<scenario> <impl>"
	}{
		{0, "vs gobreaker", map[string]string{
			"Breaker/closed otelpatterns": "0.20x",
			"Breaker/closed gobreaker":    "1.00x",
		}},
		{1, "vs backoff", map[string]string{
			"Retry/first-success otelpatterns": "0.05x",
			"Retry/first-success backoff":      "1.00x",
			"Retry/first-success gobreaker":    "0.10x", // another family's reference is just a row here
			"Retry/two-failures otelpatterns":  "1.50x",
			"Retry/two-failures backoff":       "1.00x",
		}},
		{2, "vs ristretto", map[string]string{
			"Cache/hit-parallel otelpatterns": "1.20x",
			"Cache/hit-parallel ristretto":    "1.00x",
			"Cache/miss-load otelpatterns":    "2.00x",
			"Cache/miss-load ristretto":       "1.00x",
		}},
		{3, "vs -", map[string]string{ // a family with no reference
			"Saga/run otelpatterns": "-",
		}},
	} {
		lines := strings.Split(tables[tc.table], "\n")
		if !strings.HasSuffix(lines[0], tc.header) {
			t.Errorf("table %d header = %q; want it to end with %q", tc.table, lines[0], tc.header)
		}
		got := map[string]string{}
		for _, line := range lines[1:] {
			if f := strings.Fields(line); len(f) > 0 {
				got[f[0]+" "+f[1]] = f[len(f)-1]
			}
		}
		if !maps.Equal(got, tc.ratios) {
			t.Errorf("table %d ratios = %v; want %v\n%s", tc.table, got, tc.ratios, tables[tc.table])
		}
	}
}

func TestParseRefs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    refs
		wantErr bool
	}{
		{"gobreaker", refs{"": "gobreaker"}, false},
		{"Breaker=gobreaker,Retry=backoff", refs{"Breaker": "gobreaker", "Retry": "backoff"}, false},
		{"Breaker=gobreaker, backoff", refs{"Breaker": "gobreaker", "": "backoff"}, false},
		{"Breaker=", nil, true},
		{"=gobreaker", nil, true},
		{"", nil, true},
		{"Retry=backoff,Retry=retrygo", nil, true},
	} {
		got, err := parseRefs(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseRefs(%q) error = %v; want error: %v", tc.in, err, tc.wantErr)
			continue
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("parseRefs(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}
