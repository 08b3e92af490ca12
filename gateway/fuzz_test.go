package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/otelpatterns/patterns/gateway"
)

// echoTransport answers every request with its escaped path, without the
// network.
type echoTransport struct{}

func (echoTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	return &http.Response{
		StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{},
		Body:    io.NopCloser(strings.NewReader(r.URL.EscapedPath())),
		Request: r,
	}, nil
}

// FuzzRoutePattern builds a gateway from a fuzzed route (pattern, rewrite
// template, prefix to strip) and sends it a fuzzed path: New either
// refuses it with errors that each name the route, or builds a gateway
// that serves the path without panicking, without a 5xx, and sends the
// upstream a path that starts with /.
func FuzzRoutePattern(f *testing.F) {
	f.Add("GET /orders/{id}", "/v2/orders/{id}", "", "/orders/42")
	f.Add("/files/{path...}", "/s/{path}", "", "/files/a/b%2Fc")
	f.Add("api.example.com/a/{x}/{$}", "", "/a", "/a/b/")
	f.Add("/{a}/{b}", "/{b}/{a}", "", "/x/y")
	f.Add("POST /x", "", "/x", "/x")
	f.Add("/a/{x", "/{x}", "", "/a/")
	f.Fuzz(func(t *testing.T, pattern, rewrite, strip, path string) {
		g, err := gateway.New(
			gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: "http://upstream.test"}},
				Transport: echoTransport{}}),
			gateway.WithRoutes(gateway.Route{Pattern: pattern, Upstream: "u", Rewrite: rewrite, StripPrefix: strip}))
		if err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "gateway: routes[0] ") {
					t.Fatalf("New(%q, %q, %q): error line %q does not name the route", pattern, rewrite, strip, line)
				}
			}
			return
		}
		defer g.Close()
		req, err := http.NewRequest(http.MethodGet, "http://api.example.com"+path, nil)
		if err != nil || req.URL.Path == "" || req.URL.Path[0] != '/' {
			return
		}
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("pattern %q rewrite %q strip %q: GET %q answered %d %q", pattern, rewrite, strip, path, rec.Code, rec.Body)
		}
		if rec.Code == 200 && !strings.HasPrefix(rec.Body.String(), "/") {
			t.Fatalf("pattern %q rewrite %q strip %q: GET %q reached the upstream as %q", pattern, rewrite, strip, path, rec.Body)
		}
	})
}
