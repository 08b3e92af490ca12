package strangler_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/strangler"
)

// backend is a real local upstream. By default it answers every request
// with its name and what it received, as JSON.
type backend struct {
	*httptest.Server
	name    string
	hits    atomic.Int64
	handler atomic.Pointer[http.HandlerFunc]
}

// seen is what an echo backend received.
type seen struct {
	Backend string
	Method  string
	Path    string
	Body    string
	Shadow  string
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
	_ = json.NewEncoder(w).Encode(seen{Backend: b.name, Method: r.Method, Path: r.URL.Path, Body: string(body),
		Shadow: r.Header.Get(strangler.ShadowHeader)})
}

// handle makes the backend answer with h.
func (b *backend) handle(h http.HandlerFunc) { b.handler.Store(&h) }

// env is a gateway with a legacy and a new upstream, and a route
// /orders/ served by a facade between them.
type env struct {
	g              *gateway.Gateway
	srv            *httptest.Server
	f              *strangler.Facade
	legacy, modern *backend
}

const routePattern = "/orders/"

// newEnv builds the gateway, then the facade on its proxies, then
// mounts the facade on the route. gwOpts go to gateway.New; mw are the
// route's middleware. The facade is shut down, then the gateway closed,
// when the test ends.
func newEnv(t testing.TB, opts []strangler.Option, gwOpts []gateway.Option, mw ...gateway.Middleware) *env {
	t.Helper()
	e := &env{legacy: newBackend(t, "legacy"), modern: newBackend(t, "new")}
	ups := gateway.WithUpstreams(
		gateway.Upstream{Name: "legacy", Targets: []gateway.Target{{URL: e.legacy.URL}}},
		gateway.Upstream{Name: "new", Targets: []gateway.Target{{URL: e.modern.URL}}},
	)
	g, err := gateway.New(append([]gateway.Option{ups}, gwOpts...)...)
	if err != nil {
		t.Fatalf("gateway.New() = %v", err)
	}
	e.g = g
	f, err := strangler.New(g.Proxy("legacy"), g.Proxy("new"), opts...)
	if err != nil {
		_ = g.Close()
		t.Fatalf("strangler.New() = %v", err)
	}
	e.f = f
	if err := g.Update(ups, gateway.WithRoutes(gateway.Route{Pattern: routePattern, Handler: f, Middleware: mw})); err != nil {
		t.Fatalf("Update() = %v", err)
	}
	e.srv = httptest.NewServer(g)
	t.Cleanup(func() {
		e.srv.Close()
		_ = f.Close()
		_ = g.Close()
	})
	return e
}

// send sends a request through the gateway and returns its status and
// body.
func (e *env) send(t testing.TB, method, path, body string, header ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// side sends a GET and returns the backend that answered it.
func (e *env) side(t testing.TB, path string, header ...string) string {
	t.Helper()
	code, body := e.send(t, http.MethodGet, path, "", header...)
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, code, body)
	}
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("GET %s: not an echo: %q", path, body)
	}
	return s.Backend
}

// drain waits for the shadow copies queued so far to be compared.
func (e *env) drain(t testing.TB) {
	t.Helper()
	if err := e.f.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
}

// withPrincipal is middleware that authenticates every request as the
// subject in the X-Test-User header, with a "plan" claim from X-Test-Plan.
func withPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sub := r.Header.Get("X-Test-User"); sub != "" {
			p := &gateway.Principal{Scheme: "jwt", Subject: sub, Claims: map[string]any{"sub": sub, "plan": r.Header.Get("X-Test-Plan")}}
			r = r.WithContext(gateway.WithPrincipal(r.Context(), p))
		}
		next.ServeHTTP(w, r)
	})
}
