package gwbench_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/benchmarks/internal/gwbench"
)

// TestVariants starts each proxy variant in process, in front of the
// upstream, and checks that a request passes through, and for the full
// chain that a request without a token does not.
func TestVariants(t *testing.T) {
	up := httptest.NewServer(gwbench.Upstream())
	defer up.Close()
	for _, v := range gwbench.Variants {
		t.Run(v, func(t *testing.T) {
			token := gwbench.TokenFor(v, time.Minute)
			s, err := gwbench.New(v, up.URL)
			if err != nil {
				t.Fatalf("New(%q) = %v", v, err)
			}
			srv := httptest.NewServer(s)
			defer func() {
				srv.Close()
				if err := s.Close(context.Background()); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			get := func(auth string) (int, string) {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+gwbench.Path, nil)
				if auth != "" {
					req.Header.Set("Authorization", "Bearer "+auth)
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatalf("GET %s: %v", gwbench.Path, err)
				}
				body, err := gwbench.Drain(resp)
				if err != nil {
					t.Fatalf("reading the body: %v", err)
				}
				return resp.StatusCode, string(body)
			}
			for range 3 { // the connections are reused
				if code, body := get(token); code != http.StatusOK || body != gwbench.Body {
					t.Fatalf("GET %s = %d %q; want 200 %q", gwbench.Path, code, body, gwbench.Body)
				}
			}
			if gwbench.Authenticated(v) {
				if code, _ := get(""); code != http.StatusUnauthorized {
					t.Errorf("GET %s without a token = %d; want 401", gwbench.Path, code)
				}
				// Each token is the one its variants alone accept.
				other := gwbench.Token(time.Minute)
				if other == token {
					other = gwbench.TokenRS256(time.Minute)
				}
				if code, _ := get(other); code != http.StatusUnauthorized {
					t.Errorf("GET %s with another variant's token = %d; want 401", gwbench.Path, code)
				}
			}
		})
	}
	if _, err := gwbench.New("nope", up.URL); err == nil {
		t.Errorf(`New("nope") = nil error; want one`)
	}
}

// TestLoad sends a short fixed-rate load to the upstream: every request
// is sent and answered, and the percentiles are ordered.
func TestLoad(t *testing.T) {
	up := httptest.NewServer(gwbench.Upstream())
	defer up.Close()
	res, err := gwbench.Load{URL: up.URL + gwbench.Path, Rate: 200, Duration: 250 * time.Millisecond, Workers: 4}.Run(context.Background())
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if res.Sent != 50 || res.Failed != 0 {
		t.Errorf("sent %d, failed %d; want 50 sent, none failed", res.Sent, res.Failed)
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.P999 {
		t.Errorf("p50 %v, p99 %v, p99.9 %v; want 0 < p50 <= p99 <= p99.9", res.P50, res.P99, res.P999)
	}
	// A request is sent when it is due or later, so each one's latency
	// from when it was sent is at most its latency from when it was due.
	if res.SentP50 <= 0 || res.SentP50 > res.SentP99 || res.SentP50 > res.P50 || res.SentP99 > res.P99 {
		t.Errorf("from sent: p50 %v, p99 %v; want 0 < p50 <= p99, and each at most the one from due (%v, %v)", res.SentP50, res.SentP99, res.P50, res.P99)
	}
}

// TestReport checks the table's medians and per-round ratios.
func TestReport(t *testing.T) {
	samples, err := gwbench.ParseSamples(strings.NewReader(`# round target rps p50 p99 cpu
1 bare 1000 100 900 50
1 routing 900 110 1000 55
2 bare 2000 100 900 50
2 routing 1900 120 950 60
3 bare 3000 100 900 50
3 routing 2400 130 1200
`))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	gwbench.Report(&b, samples, gwbench.Bare)
	want := "| routing | 1,900 | 900–2,400 | 120 µs | 1,000 µs | 0.90× | +100 µs | 57.5 µs | 1.15× |"
	if !strings.Contains(b.String(), want) {
		t.Errorf("report:\n%s\nwant a line %q", b.String(), want)
	}
	if _, err := gwbench.ParseSamples(strings.NewReader("1 bare x 1 2\n")); err == nil {
		t.Errorf("ParseSamples of a bad number = nil error")
	}
}

// TestNewTimed checks that a timed variant counts every request it
// proxies, and that the time it reports is its own: without the
// upstream's, which here takes 20ms a request.
func TestNewTimed(t *testing.T) {
	const slow = 20 * time.Millisecond
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(slow)
		gwbench.Upstream().ServeHTTP(w, r)
	}))
	defer up.Close()
	for _, v := range []string{gwbench.Bare, gwbench.Full} {
		t.Run(v, func(t *testing.T) {
			s, err := gwbench.NewTimed(v, up.URL)
			if err != nil {
				t.Fatalf("NewTimed(%q) = %v", v, err)
			}
			srv := httptest.NewServer(s)
			defer func() {
				srv.Close()
				if err := s.Close(context.Background()); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			get := func(path string) string {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+gwbench.TokenFor(v, time.Minute))
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				body, err := gwbench.Drain(resp)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s = %d, %v", path, resp.StatusCode, err)
				}
				return string(body)
			}
			const n = 5
			start := time.Now()
			for range n {
				get(gwbench.Path)
			}
			took := time.Since(start)
			var got int
			var p50, p99 float64
			if _, err := fmt.Sscanf(get(gwbench.TimingPath), "%d %g %g", &got, &p50, &p99); err != nil {
				t.Fatalf("reading %s: %v", gwbench.TimingPath, err)
			}
			if got != n {
				t.Errorf("%s counted %d requests; want %d", gwbench.TimingPath, got, n)
			}
			// The own time cannot be below 0, nor hold the upstream's 20ms:
			// then the upstream's time was not taken off.
			if own := time.Duration(p99 * 1e3); p50 <= 0 || p50 > p99 || own >= slow || took < n*slow {
				t.Errorf("own time p50 %.1fµs, p99 %.1fµs, in %v for %d requests of %v upstream; want 0 < p50 ≤ p99 < %v", p50, p99, took, n, slow, slow)
			}
			if body := get(gwbench.TimingPath); body != "0 0.0 0.0\n" {
				t.Errorf("second read of %s = %q; want none counted since the first", gwbench.TimingPath, body)
			}
		})
	}
}
