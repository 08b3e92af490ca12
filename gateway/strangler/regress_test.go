package strangler_test

import (
	"bufio"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway/strangler"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
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
		strangler.WithShadow(strangler.Shadow{Workers: 1, Queue: 100, MaxQueuedBytes: 3500}),
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
