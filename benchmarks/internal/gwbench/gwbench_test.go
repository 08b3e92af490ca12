package gwbench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
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
	token := gwbench.Token(time.Minute)
	for _, v := range gwbench.Variants {
		t.Run(v, func(t *testing.T) {
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
			if v == gwbench.Full || v == gwbench.FullCached || v == gwbench.FullOTel {
				if code, _ := get(""); code != http.StatusUnauthorized {
					t.Errorf("GET %s without a token = %d; want 401", gwbench.Path, code)
				}
			}
		})
	}
	if _, err := gwbench.New("nope", up.URL); err == nil {
		t.Errorf(`New("nope") = nil error; want one`)
	}
}
