package strangler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/strangler"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

var (
	route        = semconv.HTTPRoute(routePattern)
	toNew        = strangler.AttrTarget.String("new")
	resultOf     = func(r string) attribute.KeyValue { return strangler.AttrShadowResult.String(r) }
	dropped      = resultOf("dropped")
	reasonOf     = strangler.AttrShadowReason.String
	shadowMetric = "gateway.strangler.shadow"
)

// TestShadowOverloadNeverBlocksPrimary blocks the shadow side on a
// channel with one worker and a queue of one: the first copy holds the
// worker, the second waits in the queue, and every later one is dropped
// and counted, while every primary request is answered. Were the primary
// waiting for its shadow, the first request would never return.
func TestShadowOverloadNeverBlocksPrimary(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{Workers: 1, Queue: 1}),
		strangler.WithMeterProvider(tel.MeterProvider),
	}, nil)
	entered, release := make(chan struct{}, 16), make(chan struct{})
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"Backend":"legacy","Method":"GET","Path":%q,"Body":"","Shadow":""}`+"\n", r.URL.Path)
	})

	const n = 20
	if side := e.side(t, "/orders/0"); side != "legacy" {
		t.Fatalf("primary: %s; want legacy", side)
	}
	<-entered // the worker is stuck in the first copy
	for i := 1; i < n; i++ {
		if side := e.side(t, fmt.Sprintf("/orders/%d", i)); side != "legacy" {
			t.Fatalf("primary %d: %s; want legacy", i, side)
		}
	}
	if got := tel.Int64(t, shadowMetric, toNew, dropped, reasonOf("queue_full"), route); got != n-2 {
		t.Errorf("dropped (queue_full) = %d; want %d", got, n-2)
	}
	close(release)
	e.drain(t)
	if got := tel.Int64(t, shadowMetric, toNew, resultOf("match"), route); got != 2 {
		t.Errorf("matched = %d; want 2 (the copy in flight and the queued one)\n%s", got, tel.Describe(t, shadowMetric))
	}
	if got := e.modern.hits.Load(); got != 2 {
		t.Errorf("the new side got %d copies; want 2", got)
	}
	// After Shutdown nothing more is shadowed, and requests still route.
	if side := e.side(t, "/orders/99"); side != "legacy" {
		t.Fatalf("after Shutdown: %s; want legacy", side)
	}
	if got := e.modern.hits.Load(); got != 2 {
		t.Errorf("after Shutdown the new side got %d copies; want 2", got)
	}
}

// order is the body both sides answer, with what differs by nature (ids,
// timestamps) and, with price, one deliberate difference.
func order(id string, at string, price float64, extra string) string {
	return fmt.Sprintf(`{"id":%q,"created_at":%q,"status":"paid","total":20.0,`+
		`"items":[{"id":%q,"sku":"A","price":%v,"meta":{"created_at":%q}},{"id":"x-%s","sku":"B","price":10}]%s}`,
		id, at, id+"-1", price, at, id, extra)
}

// TestShadowDiff sends requests whose answers differ only in ignored
// fields, and one with a deliberate difference: one mismatch is counted
// and kept, with the path and both values, and the handler lists it.
func TestShadowDiff(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{
			Headers: []string{"Content-Type", "X-Version"},
			Ignore:  []string{"id", "**.created_at", "items.*.id"},
		}),
		strangler.WithMeterProvider(tel.MeterProvider),
	}, nil)
	e.legacy.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Version", "1")
		io.WriteString(w, order("L"+r.URL.Path, "2024-01-01T00:00:00Z", 10, ""))
	})
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Version", "1")
		price := 10.0
		if r.URL.Path == "/orders/3" {
			price = 12 // the deliberate difference
		}
		// The same document, keys in another order and 20 for 20.0.
		fmt.Fprintf(w, `{"status":"paid","total":20,"items":[{"sku":"A","id":"n1","price":%v,"meta":{"created_at":"now"}},`+
			`{"sku":"B","id":"n2","price":10}],"created_at":"2025-06-01","id":"N%s"}`, price, r.URL.Path)
	})
	for i := 1; i <= 4; i++ {
		code, body := e.send(t, http.MethodGet, fmt.Sprintf("/orders/%d?token=secret", i), "")
		if code != http.StatusOK || !strings.Contains(body, `"L/orders/`) {
			t.Fatalf("primary %d: %d %s; want legacy's answer", i, code, body)
		}
	}
	e.drain(t)

	if got := tel.Int64(t, shadowMetric, toNew, resultOf("match"), route); got != 3 {
		t.Errorf("match = %d; want 3\n%s", got, tel.Describe(t, shadowMetric))
	}
	if got := tel.Int64(t, shadowMetric, toNew, resultOf("mismatch"), route); got != 1 {
		t.Errorf("mismatch = %d; want 1", got)
	}
	diffs := e.f.Diffs()
	if len(diffs) != 1 {
		t.Fatalf("Diffs() = %+v; want one", diffs)
	}
	d := diffs[0]
	if d.Method != "GET" || d.Path != "/orders/3" || d.Route != routePattern || d.Primary != "legacy" || d.Time.IsZero() {
		t.Errorf("diff = %+v; want GET /orders/3 on %s, primary legacy, with a time", d, routePattern)
	}
	want := []strangler.FieldDiff{
		{Field: "body.items.0.price", Legacy: json.RawMessage(`10`), New: json.RawMessage(`12`)},
	}
	if got, _ := json.Marshal(d.Fields); string(got) != mustJSON(t, want) {
		t.Errorf("fields = %s; want %s", got, mustJSON(t, want))
	}

	// The handler lists the same, with the counts.
	rec := httptest.NewRecorder()
	e.f.DiffHandler().ServeHTTP(rec, mustRequest(t, http.MethodGet, "/diffs"))
	var rep strangler.DiffReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("DiffHandler: %v: %s", err, rec.Body.String())
	}
	if rec.Header().Get("Content-Type") != "application/json" || len(rep.Diffs) != 1 || rep.Diffs[0].Path != "/orders/3" ||
		rep.Results["match"] != 3 || rep.Results["mismatch"] != 1 || rep.Results["error"] != 0 {
		t.Errorf("DiffHandler served %s", rec.Body.String())
	}
	if strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("the query reached the diff report: %s", rec.Body.String())
	}
	rec = httptest.NewRecorder()
	e.f.DiffHandler().ServeHTTP(rec, mustRequest(t, http.MethodPost, "/diffs"))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST to DiffHandler: %d; want 405", rec.Code)
	}
}

// TestShadowMethods: by default only safe methods are shadowed; listing
// POST opts in, and the copy carries the body and the shadow header.
func TestShadowMethods(t *testing.T) {
	e := newEnv(t, []strangler.Option{strangler.WithShadow(strangler.Shadow{})}, nil)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if code, _ := e.send(t, m, "/orders/1", `{"n":1}`); code != http.StatusOK {
			t.Fatalf("%s: %d", m, code)
		}
	}
	e.drain(t)
	if got := e.modern.hits.Load(); got != 0 {
		t.Errorf("unsafe methods: the new side got %d copies; want 0", got)
	}

	e = newEnv(t, []strangler.Option{strangler.WithShadow(strangler.Shadow{Methods: []string{http.MethodPost}})}, nil)
	var got seen
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = seen{Method: r.Method, Path: r.URL.Path, Body: string(body), Shadow: r.Header.Get(strangler.ShadowHeader)}
	})
	code, body := e.send(t, http.MethodPost, "/orders/1", `{"n":1}`, strangler.ShadowHeader, "1")
	if code != http.StatusOK || !strings.Contains(body, `"Body":"{\"n\":1}"`) {
		t.Fatalf("POST: %d %s; want legacy's echo of the body", code, body)
	}
	if strings.Contains(body, `"Shadow":"1"`) {
		t.Errorf("the client's %s reached the primary: %s", strangler.ShadowHeader, body)
	}
	if _, _ = e.send(t, http.MethodGet, "/orders/2", ""); e.legacy.hits.Load() != 2 {
		t.Fatal("GET did not reach legacy")
	}
	e.drain(t)
	if e.modern.hits.Load() != 1 {
		t.Fatalf("the new side got %d copies; want only the POST's", e.modern.hits.Load())
	}
	if got.Method != http.MethodPost || got.Path != "/orders/1" || got.Body != `{"n":1}` || got.Shadow != "1" {
		t.Errorf("the copy was %+v; want POST /orders/1 with the body and %s: 1", got, strangler.ShadowHeader)
	}
}

// TestShadowBounds: a request body over MaxBodyBytes reaches the primary
// whole and is not shadowed; a primary answer over MaxResponseBytes is
// not either; both are counted.
func TestShadowBounds(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{Methods: []string{http.MethodPut, http.MethodGet}, MaxBodyBytes: 8, MaxResponseBytes: 64}),
		strangler.WithMeterProvider(tel.MeterProvider),
	}, nil)
	long := strings.Repeat("x", 100)
	code, body := e.send(t, http.MethodPut, "/orders/1", long)
	if code != http.StatusOK || !strings.Contains(body, long) {
		t.Fatalf("PUT with a long body: %d %s; want legacy's echo of all of it", code, body)
	}
	// The echo of any GET is longer than 64 bytes.
	if side := e.side(t, "/orders/1"); side != "legacy" {
		t.Fatalf("GET: %s", side)
	}
	e.drain(t)
	if got := e.modern.hits.Load(); got != 0 {
		t.Errorf("the new side got %d copies; want 0", got)
	}
	for _, reason := range []string{"body_too_large", "response_too_large"} {
		if got := tel.Int64(t, shadowMetric, toNew, dropped, reasonOf(reason), route); got != 1 {
			t.Errorf("dropped (%s) = %d; want 1\n%s", reason, got, tel.Describe(t, shadowMetric))
		}
	}
}

// TestShadowErrors: a shadow call that runs out of time, or whose side
// panics, counts as an error, and the worker goes on.
func TestShadowErrors(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{Workers: 1, Timeout: 20 * time.Millisecond}),
		strangler.WithMeterProvider(tel.MeterProvider),
		strangler.WithTracerProvider(tel.TracerProvider),
	}, nil)
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/orders/slow" {
			<-r.Context().Done() // until the shadow's timeout ends the call
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"broken":`))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the connection is cut mid-body
	})
	e.side(t, "/orders/slow")
	e.side(t, "/orders/cut")
	e.drain(t)
	if got := tel.Int64(t, shadowMetric, toNew, resultOf("error"), route); got != 2 {
		t.Errorf("errors = %d; want 2\n%s", got, tel.Describe(t, shadowMetric))
	}
	types := map[string]bool{}
	for _, s := range tel.SpansNamed(strangler.SpanShadow) {
		types[telemetrytest.Attrs(s)[semconv.ErrorTypeKey].AsString()] = true
	}
	if !types["gateway.strangler.shadow_timeout"] || !types["gateway.strangler.panic"] {
		t.Errorf("shadow spans' error.type = %v; want gateway.strangler.shadow_timeout and gateway.strangler.panic", types)
	}
}

// TestShadowTrace: the shadow call is a new trace, linked to the
// primary's server span, with the upstream's client span under it.
func TestShadowTrace(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{}),
		strangler.WithTracerProvider(tel.TracerProvider),
		strangler.WithMeterProvider(tel.MeterProvider),
	}, []gateway.Option{gateway.WithTracerProvider(tel.TracerProvider), gateway.WithMeterProvider(tel.MeterProvider)})
	same := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"Backend":"legacy"}`)
	}
	e.legacy.handle(same)
	e.modern.handle(same)
	e.side(t, "/orders/1")
	e.drain(t)

	servers := tel.SpansNamed("GET " + routePattern)
	shadows := tel.SpansNamed(strangler.SpanShadow)
	if len(servers) != 1 || len(shadows) != 1 {
		t.Fatalf("%d server spans and %d shadow spans; want one of each", len(servers), len(shadows))
	}
	server, shadow := servers[0], shadows[0]
	if got := telemetrytest.Attrs(server)[strangler.AttrTarget].AsString(); got != "legacy" {
		t.Errorf("server span %s = %q; want legacy", strangler.AttrTarget, got)
	}
	if shadow.Parent().IsValid() || shadow.SpanContext().TraceID() == server.SpanContext().TraceID() {
		t.Errorf("the shadow span is not the root of a new trace (parent %v)", shadow.Parent())
	}
	if links := shadow.Links(); len(links) != 1 || !links[0].SpanContext.Equal(server.SpanContext()) {
		t.Errorf("shadow links = %v; want the server span %v", links, server.SpanContext())
	}
	if shadow.SpanKind() != trace.SpanKindInternal {
		t.Errorf("shadow span kind = %v; want internal", shadow.SpanKind())
	}
	attrs := telemetrytest.Attrs(shadow)
	for k, want := range map[attribute.Key]string{
		strangler.AttrTarget: "new", strangler.AttrPrimary: "legacy", strangler.AttrShadowResult: "match",
		semconv.HTTPRequestMethodKey: "GET", semconv.HTTPRouteKey: routePattern,
	} {
		if got := attrs[k].String(); got != want {
			t.Errorf("shadow span %s = %q; want %q", k, got, want)
		}
	}
	var child bool
	for _, s := range tel.Spans.Ended() {
		if s.SpanKind() == trace.SpanKindClient && s.Parent().SpanID() == shadow.SpanContext().SpanID() {
			child = true
		}
	}
	if !child {
		t.Error("no client span under the shadow span")
	}
	// The primary's server span, ended before the shadow ran, is not
	// touched by it: no second target attribute, no error.
	if got := telemetrytest.Attrs(server)[semconv.ErrorTypeKey]; got.Type() != attribute.EMPTY {
		t.Errorf("server span error.type = %v", got)
	}
}

// TestSetShadow turns shadowing off and on at run time.
func TestSetShadow(t *testing.T) {
	e := newEnv(t, []strangler.Option{strangler.WithShadow(strangler.Shadow{})}, nil)
	e.f.SetShadow(false)
	e.side(t, "/orders/1")
	e.f.SetShadow(true)
	e.side(t, "/orders/2")
	e.drain(t)
	if got := e.modern.hits.Load(); got != 1 {
		t.Errorf("the new side got %d copies; want 1", got)
	}
}

// TestShutdownDeadline: Shutdown whose context ends while a copy is
// stuck cancels it (an error, gateway.strangler.closed) and drops the
// queued one (dropped, closed), and returns the context's error with
// every worker gone (goleak checks the last part).
func TestShutdownDeadline(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{Workers: 1}),
		strangler.WithMeterProvider(tel.MeterProvider),
		strangler.WithTracerProvider(tel.TracerProvider),
	}, nil)
	entered := make(chan struct{}, 2)
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	})
	e.side(t, "/orders/1")
	<-entered
	e.side(t, "/orders/2") // queued behind the stuck one
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.f.Shutdown(ctx); err != context.Canceled {
		t.Errorf("Shutdown() = %v; want context.Canceled", err)
	}
	if err := e.f.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown() = %v; want nil", err)
	}
	if got := tel.Int64(t, shadowMetric, toNew, resultOf("error"), route); got != 1 {
		t.Errorf("errors = %d; want 1\n%s", got, tel.Describe(t, shadowMetric))
	}
	if got := tel.Int64(t, shadowMetric, toNew, dropped, reasonOf("closed"), route); got != 1 {
		t.Errorf("dropped (closed) = %d; want 1\n%s", got, tel.Describe(t, shadowMetric))
	}
	spans := tel.SpansNamed(strangler.SpanShadow)
	if len(spans) != 1 || telemetrytest.Attrs(spans[0])[semconv.ErrorTypeKey].AsString() != "gateway.strangler.closed" {
		t.Errorf("want one shadow span with error.type gateway.strangler.closed; got %d spans", len(spans))
	}
	// Requests still route, and are no longer shadowed.
	if side := e.side(t, "/orders/3"); side != "legacy" {
		t.Errorf("after Shutdown: %s; want legacy", side)
	}
	if got := e.modern.hits.Load(); got != 1 {
		t.Errorf("the new side got %d copies; want 1", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustRequest(t *testing.T, method, target string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestShadowOutlivesRequest: the copy runs after the primary answered,
// on a context of its own: the route's timeout, ended when its handler
// returned, and the client's leaving do not cut it short.
func TestShadowOutlivesRequest(t *testing.T) {
	tel := telemetrytest.New(t)
	legacy, modern := newBackend(t, "legacy"), newBackend(t, "new")
	ups := gateway.WithUpstreams(
		gateway.Upstream{Name: "legacy", Targets: []gateway.Target{{URL: legacy.URL}}},
		gateway.Upstream{Name: "new", Targets: []gateway.Target{{URL: modern.URL}}},
	)
	g, err := gateway.New(ups)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	f, err := strangler.New(g.Proxy("legacy"), g.Proxy("new"),
		strangler.WithShadow(strangler.Shadow{}), strangler.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Update(ups, gateway.WithRoutes(gateway.Route{Pattern: routePattern, Handler: f, Timeout: time.Minute})); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	answered := make(chan struct{})
	same := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}
	legacy.handle(same)
	modern.handle(func(w http.ResponseWriter, r *http.Request) {
		<-answered // the client has its answer and has gone
		same(w, r)
	})
	resp, err := srv.Client().Get(srv.URL + "/orders/1")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	srv.Client().CloseIdleConnections()
	close(answered)
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tel.Int64(t, shadowMetric, toNew, resultOf("match"), route); got != 1 {
		t.Errorf("match = %d; want 1\n%s", got, tel.Describe(t, shadowMetric))
	}
}

// TestShadowPercent: a share of the eligible requests is shadowed,
// exactly and evenly; unsafe methods do not count toward it.
func TestShadowPercent(t *testing.T) {
	e := newEnv(t, []strangler.Option{strangler.WithShadow(strangler.Shadow{Percent: 10})}, nil)
	for i := range 100 {
		e.side(t, fmt.Sprintf("/orders/%d", i))
		e.send(t, http.MethodPost, "/orders/x", "{}")
	}
	e.drain(t)
	if got := e.modern.hits.Load(); got != 10 {
		t.Errorf("the new side got %d copies of 100 GETs at 10%%; want 10", got)
	}
}
