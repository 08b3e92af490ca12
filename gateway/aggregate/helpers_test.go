package aggregate_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// upstream is a real local service behind the gateway that counts the
// requests it gets.
type upstream struct {
	*httptest.Server
	name    string
	hits    atomic.Int64
	handler atomic.Pointer[http.HandlerFunc]
}

func newUpstream(t testing.TB, name string, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{name: name}
	u.handle(h)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		(*u.handler.Load())(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) handle(h http.HandlerFunc) { u.handler.Store(&h) }

// jsonAnswer answers every request with v as JSON.
func jsonAnswer(v any) http.HandlerFunc {
	b, _ := json.Marshal(v)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}
}

// status answers every request with code.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, http.StatusText(code), code)
	}
}

// blocked answers only when release is closed or the request ends, so
// that a part times out without any sleep.
func blocked(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			jsonAnswer(map[string]any{"late": true})(w, r)
		case <-r.Context().Done():
		}
	}
}

// setup is a gateway with upstreams and one route, pattern, served by
// the aggregation of parts.
type setup struct {
	gw      *gateway.Gateway
	srv     *httptest.Server
	handler *aggregate.Handler
}

func start(t testing.TB, ups []*upstream, pattern string, parts []aggregate.Part, gwOpts []gateway.Option, opts ...aggregate.Option) *setup {
	t.Helper()
	var list []gateway.Upstream
	for _, u := range ups {
		list = append(list, gateway.Upstream{Name: u.name, Targets: []gateway.Target{{URL: u.URL}}})
	}
	return startWith(t, list, gateway.Route{Pattern: pattern}, parts, gwOpts, opts...)
}

// startWith is start with the gateway's upstreams and the route as
// given (its Handler set here).
func startWith(t testing.TB, ups []gateway.Upstream, route gateway.Route, parts []aggregate.Part, gwOpts []gateway.Option, opts ...aggregate.Option) *setup {
	t.Helper()
	h, err := aggregate.New(parts, opts...)
	if err != nil {
		t.Fatalf("aggregate.New() = %v", err)
	}
	route.Handler = h
	g, err := gateway.New(append(gwOpts, gateway.WithUpstreams(ups...), gateway.WithRoutes(route))...)
	if err != nil {
		t.Fatalf("gateway.New() = %v", err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})
	return &setup{gw: g, srv: srv, handler: h}
}

// get sends a GET through the gateway, with headers as name, value pairs.
func (s *setup) get(t testing.TB, path string, headers ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return s.do(t, req)
}

func (s *setup) do(t testing.TB, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s %s: %d, body not a JSON object: %v: %q", req.Method, req.URL, resp.StatusCode, err, b)
	}
	return resp, doc
}

// field returns the JSON of doc's value at a dotted path, for
// comparisons.
func field(doc map[string]any, path string) string {
	v, ok := aggregate.Results(doc).Lookup(path)
	if !ok {
		return "<missing>"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// roundTripFunc answers the parts' requests itself: it stands for the
// gateway's transport where a test needs control over when an answer
// (or a failure) comes.
type roundTripFunc func(req *http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// jsonResponse is a 200 with body, as an upstream sends it.
func jsonResponse(req *http.Request, body string) *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Request: req, ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body))}
}

// slowToNotice fails only some time after the request's context ended,
// as a transport that notices the cancellation late does (a TLS write,
// a proxy hop).
func slowToNotice(req *http.Request) (*http.Response, error) {
	<-req.Context().Done()
	time.Sleep(30 * time.Millisecond)
	return nil, req.Context().Err()
}
