package strangler_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway/strangler"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// TestShadowUnboundedBody: MaxBodyBytes at math.MaxInt64, the way to say
// "no bound", still hands the primary (and the copy) the whole body; the
// bound plus one, overflowing, once read nothing and sent the primary an
// empty body.
func TestShadowUnboundedBody(t *testing.T) {
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{Methods: []string{http.MethodPut}, MaxBodyBytes: math.MaxInt64}),
	}, nil)
	copied := make(chan string, 1)
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		b := new(strings.Builder)
		_, _ = io.Copy(b, r.Body)
		copied <- b.String()
	})
	code, body := e.send(t, http.MethodPut, "/orders/1", `{"n":1}`)
	if code != http.StatusOK || !strings.Contains(body, `"Body":"{\"n\":1}"`) {
		t.Fatalf("PUT: %d %s; want legacy's echo of the body", code, body)
	}
	e.drain(t)
	select {
	case got := <-copied:
		if got != `{"n":1}` {
			t.Errorf("the copy's body = %q; want the request's", got)
		}
	default:
		t.Error("no copy reached the new side")
	}
}

// TestSetShadowAfterShutdown: SetShadow(true) after Shutdown leaves
// shadowing off, as Shutdown says: it turned it back on for requests
// that were then read, teed and copied for nothing, and each counted as
// dropped (closed).
func TestSetShadowAfterShutdown(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{}),
		strangler.WithMeterProvider(tel.MeterProvider),
	}, nil)
	e.drain(t)
	e.f.SetShadow(true)
	if side := e.side(t, "/orders/1"); side != "legacy" {
		t.Fatalf("after Shutdown: %s; want legacy", side)
	}
	if tel.HasMetric(t, shadowMetric) {
		t.Errorf("after Shutdown, shadow copies were counted; want none:\n%s", tel.Describe(t, shadowMetric))
	}
}

// TestShadowStreaming: a shadowed GET whose answer is an event stream
// reaches the client event by event, through the tee's Flush: the
// upstream sends its second event only once the client has read the
// first.
func TestShadowStreaming(t *testing.T) {
	e := newEnv(t, []strangler.Option{strangler.WithShadow(strangler.Shadow{Timeout: time.Second})}, nil)
	read := make(chan struct{})
	e.legacy.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-read:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: 2\n\n")
	})
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\ndata: 2\n\n")
	})
	resp, err := e.srv.Client().Get(e.srv.URL + "/orders/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for _, want := range []string{"data: 1\n", "\n"} {
		if line, err := br.ReadString('\n'); line != want || err != nil {
			t.Fatalf("first event: %q, %v; want %q", line, err, want)
		}
	}
	close(read)
	rest, err := io.ReadAll(br)
	if string(rest) != "data: 2\n\n" || err != nil {
		t.Fatalf("second event: %q, %v", rest, err)
	}
	e.drain(t)
	if got := e.modern.hits.Load(); got != 1 {
		t.Errorf("the new side got %d copies; want 1", got)
	}
}

// TestUpgradeThroughShadow: a request that upgrades the connection (a
// WebSocket) goes through a shadowing facade to its side, which takes
// the connection over, and is not shadowed.
func TestUpgradeThroughShadow(t *testing.T) {
	e := newEnv(t, []strangler.Option{strangler.WithShadow(strangler.Shadow{})}, nil)
	e.legacy.handle(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString(line)
		brw.Flush()
	})
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /orders/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v; want 101", resp, err)
	}
	io.WriteString(conn, "ping\n")
	if line, err := br.ReadString('\n'); line != "ping\n" || err != nil {
		t.Fatalf("echo: %q, %v", line, err)
	}
	conn.Close()
	e.drain(t)
	if got := e.modern.hits.Load(); got != 0 {
		t.Errorf("the new side got %d copies; want 0", got)
	}
}

// TestShadowQueueBytes: the copies waiting for a worker, or in flight,
// hold at most MaxQueuedBytes of bodies; past it a copy is dropped
// (queue_full) however many places the queue has. Bounded by count
// alone, the default queue could hold 1,024 answers of 1 MiB each.
func TestShadowQueueBytes(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{Workers: 1, Queue: 100, MaxQueuedBytes: 3500, MaxBodyBytes: 100, MaxResponseBytes: 2000}),
		strangler.WithMeterProvider(tel.MeterProvider),
	}, nil)
	answer := strings.Repeat("x", 1000)
	e.legacy.handle(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, answer) })
	entered, release := make(chan struct{}, 16), make(chan struct{})
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, answer)
	})
	const n = 10
	for i := range n {
		if code, body := e.send(t, http.MethodGet, "/orders/1", ""); code != http.StatusOK || body != answer {
			t.Fatalf("primary %d: %d %.20q", i, code, body)
		}
		if i == 0 {
			<-entered // the worker holds the first copy
		}
	}
	// 1,000 bytes in flight and two copies queued, each with its
	// headers, fit in 3,500; a fourth copy does not.
	if got := tel.Int64(t, shadowMetric, toNew, dropped, reasonOf("queue_full"), route); got != n-3 {
		t.Errorf("dropped (queue_full) = %d; want %d\n%s", got, n-3, tel.Describe(t, shadowMetric))
	}
	close(release)
	e.drain(t)
	if got := tel.Int64(t, shadowMetric, toNew, resultOf("match"), route); got != 3 {
		t.Errorf("matched = %d; want 3", got)
	}
}

// TestShadowPercentTooSmall: a Shadow.Percent that rounds to no request
// at the 0.01 resolution is an error. It was taken, and shadowed none:
// a setting of 0.001, one in 100,000, silently turned shadowing off.
func TestShadowPercentTooSmall(t *testing.T) {
	_, err := strangler.New(http.NotFoundHandler(), http.NotFoundHandler(), strangler.WithShadow(strangler.Shadow{Percent: 0.004}))
	if err == nil || !strings.Contains(err.Error(), "Shadow.Percent") {
		t.Errorf("New(Shadow{Percent: 0.004}) = %v; want an error naming Shadow.Percent", err)
	}
	f, err := strangler.New(http.NotFoundHandler(), http.NotFoundHandler(), strangler.WithShadow(strangler.Shadow{Percent: 0.005}))
	if err != nil {
		t.Fatalf("New(Shadow{Percent: 0.005}) = %v", err)
	}
	_ = f.Close()
}

// TestShadowHeaderNamedInConnection: a client that names ShadowHeader
// in its Connection header cannot strip it from the copy. The proxy
// drops the headers that Connection names as hop-by-hop, so the copy
// reached the other side as a real request (a shadowed write, as a
// second real write).
func TestShadowHeaderNamedInConnection(t *testing.T) {
	e := newEnv(t, []strangler.Option{strangler.WithShadow(strangler.Shadow{})}, nil)
	got := make(chan string, 1)
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(strangler.ShadowHeader)
	})
	if side := e.side(t, "/orders/1", "Connection", strangler.ShadowHeader); side != "legacy" {
		t.Fatalf("primary: %s", side)
	}
	e.drain(t)
	select {
	case h := <-got:
		if h != "1" {
			t.Errorf("the copy's %s = %q; want 1", strangler.ShadowHeader, h)
		}
	default:
		t.Error("no copy reached the new side")
	}
}

// TestShadowClientGoneNotCompared: a client that leaves before the
// primary answered gets no answer; what the gateway wrote in its place
// (499, Client Closed Request) is not the legacy system's answer and
// must not be compared with the new side's as a difference.
func TestShadowClientGoneNotCompared(t *testing.T) {
	tel := telemetrytest.New(t)
	served := make(chan struct{}, 1)
	afterFacade := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			served <- struct{}{} // the facade has answered, and queued its copy
		})
	}
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{}),
		strangler.WithMeterProvider(tel.MeterProvider),
	}, nil, afterFacade)
	entered := make(chan struct{}, 1)
	e.legacy.handle(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done() // slow: the client gives up first
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/orders/1", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v; want context.Canceled", err)
	}
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the facade did not return after the client left")
	}
	e.drain(t)
	if d := e.f.Diffs(); len(d) != 0 {
		for _, fd := range d[0].Fields {
			t.Errorf("a client that left produced a difference: %s: legacy %s, new %s", fd.Field, fd.Legacy, fd.New)
		}
	}
	if got := tel.Int64(t, shadowMetric, toNew, resultOf("mismatch"), route); got != 0 {
		t.Errorf("mismatch = %d; want 0", got)
	}
}

// TestShadowHugeExponentCost: comparing JSON numbers by value must not
// cost more than the answers are long. Numbers such as 1e999999 (valid
// JSON, 8 bytes) were turned into exact rationals (math/big), each
// costing tens of milliseconds and about a megabyte: a 1 MiB answer of
// them held a shadow worker for over an hour. Here 16 of them, 145
// bytes, must compare with little memory.
func TestShadowHugeExponentCost(t *testing.T) {
	const n = 16
	legacyBody, newBody := "[", "["
	for i := range n {
		if i > 0 {
			legacyBody += ","
			newBody += ","
		}
		legacyBody += "1e999999"
		newBody += "10e999998" // the same number, spelled otherwise
	}
	legacyBody += "]"
	newBody += "]"
	answer := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}
	}
	f, err := strangler.New(answer(legacyBody), answer(newBody), strangler.WithShadow(strangler.Shadow{Workers: 1}))
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	f.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if d := f.Diffs(); len(d) != 0 {
		t.Errorf("equal numbers differ: %+v", d[0].Fields)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("comparing %d bytes of JSON numbers allocated %d MiB and took %v; want a cost in proportion to the answers",
			len(legacyBody), alloc>>20, took)
	}
}

// TestShadowTimeoutMidBodyErrorType: a shadow call whose time runs out
// while the other side is still sending its answer failed by timeout:
// its error.type is gateway.strangler.shadow_timeout, as for a side
// that had not answered at all, not gateway.strangler.panic (a broken
// answer or a handler's panic).
func TestShadowTimeoutMidBodyErrorType(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{Workers: 1, Timeout: 200 * time.Millisecond}),
		strangler.WithMeterProvider(tel.MeterProvider),
		strangler.WithTracerProvider(tel.TracerProvider),
	}, nil)
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"Backend":`)
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // slow: the rest would come later
	})
	e.side(t, "/orders/1")
	e.drain(t)
	spans := tel.SpansNamed(strangler.SpanShadow)
	if len(spans) != 1 {
		t.Fatalf("%d shadow spans; want 1", len(spans))
	}
	if got := telemetrytest.Attrs(spans[0])[semconv.ErrorTypeKey].AsString(); got != "gateway.strangler.shadow_timeout" {
		t.Errorf("error.type of a shadow call that ran out of time mid-answer = %q; want gateway.strangler.shadow_timeout", got)
	}
}

// TestKeylessRuleAtZeroPercent: WithStickyKey says a request that has
// none of the keys goes to the legacy side "(rule default) unless the
// percentage is 100", and doc.go lists gateway.strangler.rule default
// "for a request without a sticky key". At the default percentage, 0,
// such a request was counted under rule percent.
func TestKeylessRuleAtZeroPercent(t *testing.T) {
	tel := telemetrytest.New(t)
	f, err := strangler.New(http.NotFoundHandler(), http.NotFoundHandler(),
		strangler.WithStickyKey(strangler.ByHeader("X-User")),
		strangler.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil)) // no X-User
	legacy := strangler.AttrTarget.String("legacy")
	if got := tel.Int64(t, "gateway.strangler.routed", legacy, strangler.AttrRule.String("default")); got != 1 {
		t.Errorf("routed{target=legacy, rule=default} = %d; want 1\n%s", got, tel.Describe(t, "gateway.strangler.routed"))
	}
}

// TestShadowQueuedBytesBelowOneCopy: a Shadow whose MaxQueuedBytes is
// below what one copy may hold (MaxBodyBytes + MaxResponseBytes) is
// either refused by New, naming the fields, or shadows a copy that fits
// its bounds when the queue is empty. It was taken, and every answer
// between the two sizes was dropped as "queue_full" with nothing
// queued: an operator reads that as a slow shadow backend. (Raising
// MaxResponseBytes past the default MaxQueuedBytes of 64 MiB does it.)
func TestShadowQueuedBytesBelowOneCopy(t *testing.T) {
	tel := telemetrytest.New(t)
	answer := strings.Repeat("x", 2000)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, answer) })
	f, err := strangler.New(h, h,
		strangler.WithShadow(strangler.Shadow{MaxResponseBytes: 4096, MaxQueuedBytes: 1024}),
		strangler.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		if !strings.Contains(err.Error(), "MaxQueuedBytes") {
			t.Fatalf("New() = %v; want an error naming Shadow.MaxQueuedBytes", err)
		}
		return
	}
	f.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tel.Int64(t, shadowMetric, toNew, resultOf("match")); got != 1 {
		t.Errorf("a 2000-byte answer, within MaxResponseBytes 4096, with the queue empty: match = %d; want 1\n%s",
			got, tel.Describe(t, shadowMetric))
	}
}

// TestShadowContentTypeSpelling: Content-Type, the header compared by
// default, names the same media type however its case and the spaces
// around its parameters are spelled (RFC 9110, 8.3.1: type, subtype and
// the charset value are case-insensitive, the whitespace optional). A
// legacy service that answers "application/json;charset=UTF-8" (as
// Spring did) and a new one that answers "application/json;
// charset=utf-8" gave a mismatch on every request.
func TestShadowContentTypeSpelling(t *testing.T) {
	answer := func(ct string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			io.WriteString(w, `{"id":1}`)
		}
	}
	f, err := strangler.New(answer("application/json;charset=UTF-8"), answer("application/json; charset=utf-8"),
		strangler.WithShadow(strangler.Shadow{}))
	if err != nil {
		t.Fatal(err)
	}
	f.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := f.Diffs(); len(d) != 0 {
		t.Errorf("the same media type, spelled otherwise, differs: %s legacy %s, new %s", d[0].Fields[0].Field, d[0].Fields[0].Legacy, d[0].Fields[0].New)
	}
}

// TestDiffValuesAreCopies: what Diffs returns is the caller's to
// change (ring.list says so, and clones the fields for it), but the
// values of each field, json.RawMessage byte slices, were still the
// samples' own: a caller that redacted a value in place changed what
// later calls, and DiffHandler (concurrently), serve.
func TestDiffValuesAreCopies(t *testing.T) {
	answer := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}
	}
	f, err := strangler.New(answer(`{"email":"ann@example.com"}`), answer(`{"email":"bob@example.com"}`),
		strangler.WithShadow(strangler.Shadow{}))
	if err != nil {
		t.Fatal(err)
	}
	f.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := f.Diffs()
	if len(d) != 1 || len(d[0].Fields) != 1 {
		t.Fatalf("Diffs() = %+v; want one field", d)
	}
	v := d[0].Fields[0].Legacy
	for i := 1; i < len(v)-1; i++ {
		v[i] = '*' // the caller redacts its copy
	}
	if got := string(f.Diffs()[0].Fields[0].Legacy); got != `"ann@example.com"` {
		t.Errorf("after the caller changed its copy, the sample's value is %s; want \"ann@example.com\"", got)
	}
}
