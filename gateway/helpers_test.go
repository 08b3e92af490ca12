package gateway_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/gateway"
)

// seen is what an echo backend received, as it answers it.
type seen struct {
	Backend string
	Method  string
	Path    string
	RawPath string
	Query   string
	Host    string
	Header  http.Header
	Body    string
}

// backend is a real local upstream that answers every request with what
// it received (as JSON), unless handler is set.
type backend struct {
	*httptest.Server
	name    string
	hits    atomic.Int64
	handler atomic.Pointer[http.HandlerFunc]
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	if h := b.handler.Load(); h != nil {
		(*h)(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Backend", b.name)
	_ = json.NewEncoder(w).Encode(seen{
		Backend: b.name, Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath,
		Query: r.URL.RawQuery, Host: r.Host, Header: r.Header, Body: string(body),
	})
}

// handle makes the backend answer with h.
func (b *backend) handle(h http.HandlerFunc) { b.handler.Store(&h) }

// target is the backend as a gateway target.
func (b *backend) target() gateway.Target { return gateway.Target{URL: b.URL} }

// start returns a gateway built from opts, served by an httptest server,
// both closed when the test ends.
func start(t testing.TB, opts ...gateway.Option) (*gateway.Gateway, *httptest.Server) {
	t.Helper()
	g, err := gateway.New(opts...)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})
	return g, srv
}

// get sends a request through the gateway and returns the response with
// its body read.
func do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

func get(t testing.TB, srv *httptest.Server, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, srv.Client(), req)
}

// echo decodes what an echo backend saw.
func echo(t testing.TB, body string) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("not an echo: %v: %q", err, body)
	}
	return s
}

// freePort returns a loopback address nothing listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func attrRoute(r string) attribute.KeyValue { return semconv.HTTPRoute(r) }
