package gateway_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

// corsMW sets a response header before proxying, as CORS, security-header
// and tracing middleware do.
func corsMW(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://app.example")
		next.ServeHTTP(w, r)
	})
}

// Headers that a route's middleware set on the response before the proxy
// ran are on the final response also when the upstream sent a 103 first,
// after which ReverseProxy clears the response's headers: the response
// is the one the client gets without the 103, the middleware's values
// before the upstream's where both set one.
func TestMiddlewareHeadersAfterEarlyHints(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("hints") {
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
		}
		w.Header().Set("Vary", "Accept-Encoding")
		_, _ = io.WriteString(w, "ok")
	})
	vary := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Origin")
			next.ServeHTTP(w, r)
		})
	}
	_, srv := single(t, b, gateway.Route{Middleware: []gateway.Middleware{corsMW, vary}})
	var got [2]http.Header
	for i, path := range []string{"/", "/?hints"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("X-Request-Id", "page-7")
		resp, body := do(t, srv.Client(), req)
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%s: status %d body %q", path, resp.StatusCode, body)
		}
		got[i] = resp.Header
	}
	for _, h := range []string{"Access-Control-Allow-Origin", "Vary", "X-Request-Id", "Link"} {
		if !slices.Equal(got[0][h], got[1][h]) {
			t.Errorf("%s: %q after a 103; %q without", h, got[1][h], got[0][h])
		}
	}
	if v := got[1]["Vary"]; !slices.Equal(v, []string{"Origin", "Accept-Encoding"}) {
		t.Errorf("Vary after a 103: %q; want the middleware's Origin, then the upstream's Accept-Encoding", v)
	}
}

// The same after a 100 Continue: a request with "Expect: 100-continue"
// (curl sends it for a body over 1 KiB) has a Go upstream answer one,
// which the transport reports as a 1xx, and ReverseProxy relays.
func TestMiddlewareHeadersAfter100Continue(t *testing.T) {
	b := newBackend(t, "b")
	_, srv := single(t, b, gateway.Route{Middleware: []gateway.Middleware{corsMW}})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(strings.Repeat("x", 2048)))
	if resp, _ := do(t, srv.Client(), req); resp.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("control: without Expect the middleware's header is missing too")
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(strings.Repeat("x", 2048)))
	req.Header.Set("Expect", "100-continue")
	resp, body := do(t, srv.Client(), req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("POST with Expect: 100-continue: Access-Control-Allow-Origin = %q; want the middleware's https://app.example", got)
	}
}

// When the upstream sends a 103 and then fails or times out, the gateway's
// own 502 or 504 carries the request ID and the middleware's headers.
func TestErrorAfterEarlyHintsKeepsHeaders(t *testing.T) {
	for _, tt := range []struct {
		name    string
		hold    time.Duration
		timeout time.Duration
		want    int
	}{
		{"upstream closes", 0, 0, http.StatusBadGateway},
		{"upstream times out", 2 * time.Second, 100 * time.Millisecond, http.StatusGatewayTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := gateway.RawUpstream(t, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", tt.hold)
			_, srv := start(t,
				gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: url}}}),
				gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u", Timeout: tt.timeout,
					Middleware: []gateway.Middleware{corsMW}}))
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
			req.Header.Set("X-Request-Id", "order-42")
			resp, _ := do(t, srv.Client(), req)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d; want %d", resp.StatusCode, tt.want)
			}
			if got := resp.Header.Get("X-Request-Id"); got != "order-42" {
				t.Errorf("%d after a 103: X-Request-Id = %q; want order-42", tt.want, got)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
				t.Errorf("%d after a 103: Access-Control-Allow-Origin = %q; want the middleware's", tt.want, got)
			}
		})
	}
}
