package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/retry"
)

func single(t *testing.T, b *backend, r gateway.Route, up ...func(*gateway.Upstream)) (*gateway.Gateway, *httptest.Server) {
	u := gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}
	for _, f := range up {
		f(&u)
	}
	r.Upstream = "u"
	if r.Pattern == "" {
		r.Pattern = "/"
	}
	return start(t, gateway.WithUpstreams(u), gateway.WithRoutes(r))
}

// TestSpoofedForwardedHeadersDropped checks that forwarding headers from
// a peer that is not a trusted proxy never reach the upstream nor the
// client address.
func TestSpoofedForwardedHeadersDropped(t *testing.T) {
	b := newBackend(t, "b")
	var clientIP string
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, _ := gateway.ClientIP(r.Context())
			clientIP = a.String()
			next.ServeHTTP(w, r)
		})
	}
	_, srv := single(t, b, gateway.Route{Middleware: []gateway.Middleware{mw}})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Port", "443")
	req.Header.Set("X-Real-IP", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6;proto=https")
	_, body := do(t, srv.Client(), req)
	s := echo(t, body)
	host := strings.TrimPrefix(srv.URL, "http://")
	want := map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  host,
		"X-Forwarded-Proto": "http",
		"Forwarded":         `for=127.0.0.1;host="` + host + `";proto=http`,
		"X-Forwarded-Port":  "",
		"X-Real-Ip":         "",
	}
	for k, v := range want {
		if got := strings.Join(s.Header[k], ","); got != v {
			t.Errorf("upstream got %s: %q; want %q", k, got, v)
		}
	}
	if clientIP != "127.0.0.1" {
		t.Errorf("ClientIP = %s; want the peer, 127.0.0.1", clientIP)
	}
}

// TestTrustedProxyChain checks that from a trusted proxy the chain is
// kept and extended, and the client address is the right-most untrusted
// hop.
func TestTrustedProxyChain(t *testing.T) {
	b := newBackend(t, "b")
	var clientIP string
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, _ := gateway.ClientIP(r.Context())
			clientIP = a.String()
			next.ServeHTTP(w, r)
		})
	}
	_, srv := start(t,
		gateway.WithTrustedProxies("127.0.0.1", "10.0.0.0/8"),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u", Middleware: []gateway.Middleware{mw}}))
	tests := []struct {
		xff, fwd, wantClient, wantXFF, wantFwdPrefix string
	}{
		// A chain in one of the two headers only is made in the other too.
		{"198.51.100.1, 203.0.113.9, 10.1.1.1", "", "203.0.113.9", "198.51.100.1, 203.0.113.9, 10.1.1.1, 127.0.0.1",
			"for=198.51.100.1;proto=https, for=203.0.113.9, for=10.1.1.1, for=127.0.0.1;"},
		{"10.2.2.2, 10.1.1.1", "", "10.2.2.2", "10.2.2.2, 10.1.1.1, 127.0.0.1", "for=10.2.2.2;proto=https, for=10.1.1.1, for=127.0.0.1;"},
		{"", `for="[2001:db8::1]:4711", for=10.0.0.3`, "2001:db8::1", "2001:db8::1, 10.0.0.3, 127.0.0.1", `for="[2001:db8::1]:4711", for=10.0.0.3, for=127.0.0.1;`},
		{"", `for=_hidden, for=unknown, for=10.0.0.3`, "10.0.0.3", "_hidden, unknown, 10.0.0.3, 127.0.0.1", `for=_hidden, for=unknown, for=10.0.0.3, for=127.0.0.1;`},
		{"garbage, [2001:db8::2], 10.1.1.1", "", "2001:db8::2", "garbage, [2001:db8::2], 10.1.1.1, 127.0.0.1",
			`for=unknown;proto=https, for="[2001:db8::2]", for=10.1.1.1, for=127.0.0.1;`},
		// With both, each is kept as the trusted proxy sent it.
		{"203.0.113.9", "for=198.51.100.7", "203.0.113.9", "203.0.113.9, 127.0.0.1", "for=198.51.100.7, for=127.0.0.1;"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if tt.xff != "" {
			req.Header.Set("X-Forwarded-For", tt.xff)
		}
		if tt.fwd != "" {
			req.Header.Set("Forwarded", tt.fwd)
		}
		req.Header.Set("X-Forwarded-Proto", "https")
		_, body := do(t, srv.Client(), req)
		s := echo(t, body)
		if clientIP != tt.wantClient {
			t.Errorf("XFF %q Forwarded %q: ClientIP = %s; want %s", tt.xff, tt.fwd, clientIP, tt.wantClient)
		}
		if got := strings.Join(s.Header["X-Forwarded-For"], ", "); got != tt.wantXFF {
			t.Errorf("XFF %q: upstream got X-Forwarded-For %q; want %q", tt.xff, got, tt.wantXFF)
		}
		if got := s.Header.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("X-Forwarded-Proto from a trusted proxy became %q; want it kept", got)
		}
		if got := s.Header.Get("Forwarded"); !strings.HasPrefix(got, tt.wantFwdPrefix) {
			t.Errorf("Forwarded %q became %q; want it to start %q", tt.fwd, got, tt.wantFwdPrefix)
		}
	}

	// A chain the trusted proxy made hop-by-hop is the gateway's alone.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("Connection", "X-Forwarded-For")
	_, body := do(t, srv.Client(), req)
	if got := echo(t, body).Header.Get("X-Forwarded-For"); got != "127.0.0.1" || clientIP != "203.0.113.9" {
		t.Errorf("hop-by-hop X-Forwarded-For: upstream got %q, ClientIP %s; want 127.0.0.1 and 203.0.113.9", got, clientIP)
	}
}

// TestConnectionCannotStripMiddlewareHeaders checks that a header the
// route's middleware sets (as gateway/auth sets claim headers) reaches the
// upstream even when the client names it in Connection: the client's
// hop-by-hop headers go as the request arrives, not as it is sent, after
// the middleware. The client's own value of the header never arrives.
func TestConnectionCannotStripMiddlewareHeaders(t *testing.T) {
	b := newBackend(t, "b")
	var seen []string
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = r.Header.Values("X-User-Id")
			r.Header.Set("X-User-Id", "alice")
			next.ServeHTTP(w, r)
		})
	}
	_, srv := single(t, b, gateway.Route{Middleware: []gateway.Middleware{mw}})
	for _, conn := range []string{"X-User-Id", "keep-alive, x-user-id", "Upgrade, X-User-Id"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		req.Header.Set("Connection", conn)
		req.Header.Set("X-User-Id", "mallory")
		_, body := do(t, srv.Client(), req)
		if got := echo(t, body).Header.Values("X-User-Id"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("Connection: %s: upstream got X-User-Id %q; want the middleware's [alice]", conn, got)
		}
		if len(seen) != 0 {
			t.Errorf("Connection: %s: the middleware saw the client's hop-by-hop X-User-Id %q", conn, seen)
		}
	}
}

// TestTrailersTEForwarded checks that "TE: trailers" reaches the
// upstream, as ReverseProxy passes it on for gRPC, when the client also
// names TE in Connection, as an HTTP/1.1 sender of TE must (RFC 9110,
// section 10.1.4): it is the one hop-by-hop value that goes on.
func TestTrailersTEForwarded(t *testing.T) {
	b := newBackend(t, "b")
	_, srv := single(t, b, gateway.Route{})
	for _, conn := range []string{"TE", "keep-alive, te"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader("x"))
		req.Header.Set("Connection", conn)
		req.Header.Set("Te", "trailers")
		_, body := do(t, srv.Client(), req)
		if got := echo(t, body).Header.Values("Te"); len(got) != 1 || got[0] != "trailers" {
			t.Errorf("Connection: %s: upstream got Te %q; want [trailers]", conn, got)
		}
	}
}

// TestHopByHopHeadersStripped checks that hop-by-hop headers, including
// those the client names in Connection, never reach the upstream, and
// that naming X-Forwarded-For there does not strip the gateway's own.
func TestHopByHopHeadersStripped(t *testing.T) {
	b := newBackend(t, "b")
	_, srv := single(t, b, gateway.Route{})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("Connection", "X-Secret, X-Forwarded-For, X-Request-Id")
	req.Header.Set("X-Secret", "s")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic eDp5")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("Te", "gzip")
	req.Header.Set("Trailer", "X-T")
	req.Header.Set("X-Kept", "k")
	_, body := do(t, srv.Client(), req)
	s := echo(t, body)
	for _, h := range []string{"Connection", "X-Secret", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer"} {
		if v, ok := s.Header[h]; ok {
			t.Errorf("upstream got hop-by-hop header %s: %q", h, v)
		}
	}
	if s.Header.Get("X-Kept") != "k" || s.Header.Get("X-Forwarded-For") != "127.0.0.1" || s.Header.Get("X-Request-Id") == "" {
		t.Errorf("upstream headers %v; want X-Kept, the gateway's X-Forwarded-For and a request ID", s.Header)
	}
}

func TestRequestID(t *testing.T) {
	b := newBackend(t, "b")
	g, srv := single(t, b, gateway.Route{})
	for _, tt := range []struct{ sent, want string }{
		{"abc-123", "abc-123"},
		{"", ""},
		{"has space", ""},
		{strings.Repeat("x", 129), ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if tt.sent != "" {
			req.Header.Set("X-Request-Id", tt.sent)
		}
		resp, body := do(t, srv.Client(), req)
		got, up := resp.Header.Get("X-Request-Id"), echo(t, body).Header.Get("X-Request-Id")
		if got != up || got == "" || tt.want != "" && got != tt.want || tt.want == "" && got == tt.sent {
			t.Errorf("sent %q: response has %q, upstream saw %q; want %q", tt.sent, got, up, cmpOr(tt.want, "a new ID"))
		}
	}
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Correlation-Id", r.Header.Get("Correlation-Id")) // echoed
		_, _ = io.WriteString(w, `{"Header":{"Correlation-Id":["`+r.Header.Get("Correlation-Id")+`"]}}`)
	})
	if err := g.Update(gateway.WithRequestIDHeader("correlation-id"),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"})); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("Correlation-Id", "c-1")
	resp, body := do(t, srv.Client(), req)
	if ids := resp.Header.Values("Correlation-Id"); len(ids) != 1 || ids[0] != "c-1" || echo(t, body).Header.Get("Correlation-Id") != "c-1" {
		t.Errorf("with WithRequestIDHeader(correlation-id), c-1 sent, echoed by the upstream: response has %q; want it once", ids)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestBodyLimit checks 413 for a declared and an undeclared (chunked)
// body over the route's limit.
func TestBodyLimit(t *testing.T) {
	b := newBackend(t, "b")
	_, srv := single(t, b, gateway.Route{MaxBodyBytes: 10})
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(strings.Repeat("x", 100))
		if chunked {
			body = io.MultiReader(body) // hides the length
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", body)
		resp, text := do(t, srv.Client(), req)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked=%v 100 bytes over a 10-byte limit: %d %q; want 413", chunked, resp.StatusCode, text)
		}
	}
	if n := b.hits.Load(); n > 1 {
		t.Errorf("upstream called %d times; want at most once (the chunked body starts streaming)", n)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader("0123456789"))
	if resp, _ := do(t, srv.Client(), req); resp.StatusCode != 200 {
		t.Errorf("a body at the limit: %d; want 200", resp.StatusCode)
	}
}

// TestTimeoutsAndFailures checks the gateway's own errors: 504 when the
// route's time runs out, 502 when the upstream cannot be reached, never
// 500, and no detail of the cause in the body.
func TestTimeoutsAndFailures(t *testing.T) {
	b := newBackend(t, "b")
	cancelled := make(chan struct{}, 1)
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			cancelled <- struct{}{}
		}
	})
	_, srv := start(t,
		gateway.WithUpstreams(
			gateway.Upstream{Name: "slow", Targets: []gateway.Target{b.target()}},
			gateway.Upstream{Name: "down", Targets: []gateway.Target{{URL: "http://" + freeAddr(t)}}}),
		gateway.WithRoutes(
			gateway.Route{Pattern: "/slow", Upstream: "slow", Timeout: 50 * time.Millisecond},
			gateway.Route{Pattern: "/down", Upstream: "down"}))
	start := time.Now()
	resp, body := get(t, srv, "/slow")
	if resp.StatusCode != http.StatusGatewayTimeout || body != "504 Gateway Timeout\n" || time.Since(start) > time.Second {
		t.Errorf("slow upstream: %d %q after %v; want 504 after about 50ms", resp.StatusCode, body, time.Since(start))
	}
	select {
	case <-cancelled:
	case <-time.After(time.Second):
		t.Errorf("the upstream's request was not cancelled")
	}
	resp, body = get(t, srv, "/down")
	if resp.StatusCode != http.StatusBadGateway || body != "502 Bad Gateway\n" {
		t.Errorf("unreachable upstream: %d %q; want 502 with no detail", resp.StatusCode, body)
	}
}

// TestTruncatedResponseNotPatched checks that when an upstream breaks off
// a response after its headers, the client sees the break, not a second
// status written over it.
func TestTruncatedResponseNotPatched(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200) // unknown length: streamed, flushed at once
		_, _ = w.Write([]byte("0123456789"))
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		_ = conn.Close()
	})
	_, srv := single(t, b, gateway.Route{})
	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || err == nil || strings.Contains(string(body), "502") {
		t.Errorf("truncated upstream response: %d %q, read error %v; want 200, the 10 bytes and a read error", resp.StatusCode, body, err)
	}
}

// TestServerSentEventsStream checks that events arrive one by one, each
// before the upstream sends the next, through the whole chain
// (middleware included).
func TestServerSentEventsStream(t *testing.T) {
	b := newBackend(t, "b")
	next := make(chan struct{})
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	passthrough := func(next http.Handler) http.Handler { return next }
	_, srv := single(t, b, gateway.Route{Middleware: []gateway.Middleware{passthrough}})
	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	for i := range 3 {
		select {
		case l := <-lines:
			if want := fmt.Sprintf("data: %d", i); l != want {
				t.Fatalf("event %d: %q; want %q", i, l, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("event %d did not arrive before the upstream sent the next: buffered", i)
		}
		next <- struct{}{}
	}
	for range lines {
	}
}

// TestWebSocketEcho upgrades a connection through the gateway to a
// WebSocket echo upstream and exchanges frames.
func TestWebSocketEcho(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(wsEcho)
	_, srv := single(t, b, gateway.Route{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("upgrade answered %d %v; want 101 with the accept key", resp.StatusCode, resp.Header)
	}
	for _, msg := range []string{"hello", "through the gateway"} {
		if err := wsWrite(conn, msg, true); err != nil {
			t.Fatal(err)
		}
		got, err := wsRead(br)
		if err != nil || got != msg {
			t.Fatalf("echo of %q: %q, %v", msg, got, err)
		}
	}
}

// TestRefusedSwitchEndsAttempt: an upstream that answers an upgrade to
// a WebSocket with 101 to another protocol gets 502 from ReverseProxy,
// which left the 101's body, the upstream's connection, open: the
// connection stayed with the upstream, and the attempt in the target's
// in-flight count (least-request balancing) for good. The gateway closes
// it.
func TestRefusedSwitchEndsAttempt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			closed <- err
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			closed <- err
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
		// The gateway closing the connection ends this read with EOF.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = br.ReadByte()
		closed <- err
	}()
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: "http://" + ln.Addr().String()}}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	if resp, _ := do(t, srv.Client(), req); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("upgrade to websocket answered 101 to h2c: status %d; want 502", resp.StatusCode)
	}
	if err := <-closed; !errors.Is(err, io.EOF) {
		t.Errorf("the upstream's connection after the refused switch: read error %v; want EOF (closed by the gateway)", err)
	}
}

// TestMalformedClientBodyIsNotTheTargets: a client whose chunked body
// could not be decoded got 502, and the failure counted against the
// target, so that two such requests ejected the only target and a third
// opened its breaker: any client could take an upstream out of service.
// The client gets 400 now, and the target is charged with nothing.
func TestMalformedClientBodyIsNotTheTargets(t *testing.T) {
	b := newBackend(t, "b")
	_, srv := single(t, b, gateway.Route{}, func(u *gateway.Upstream) {
		u.Outlier = &gateway.Outlier{ConsecutiveFailures: 2}
		u.Breaker = &gateway.Breaker{Options: []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(2)}}
	})
	for i := range 4 {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		_ = conn.Close()
		if err != nil {
			t.Fatalf("malformed body %d: %v", i+1, err)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("malformed body %d: status %d; want 400", i+1, resp.StatusCode)
		}
	}
	if resp, _ := get(t, srv, "/orders"); resp.StatusCode != http.StatusOK {
		t.Errorf("after 4 malformed bodies: status %d; want 200 (the target neither ejected nor its breaker open)", resp.StatusCode)
	}
}

// TestRequestIDAfterEarlyHints: ReverseProxy clears the response's
// headers after it relays a 1xx, which took the request ID the gateway
// had set on the response off the final one.
func TestRequestIDAfterEarlyHints(t *testing.T) {
	b := newBackend(t, "b")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id")) // echoed, as some upstreams do
		_, _ = io.WriteString(w, "ok")
	})
	_, srv := single(t, b, gateway.Route{})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("X-Request-Id", "order-42")
	resp, body := do(t, srv.Client(), req)
	if resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("status %d, body %q; want 200 ok", resp.StatusCode, body)
	}
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "order-42" {
		t.Errorf("X-Request-Id after a 103: %q; want [order-42]", got)
	}
}

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEcho is a minimal RFC 6455 server: the handshake, then text frames
// echoed back.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "not a websocket", 400)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	_ = brw.Flush()
	for {
		msg, err := wsRead(brw.Reader)
		if err != nil {
			return
		}
		if wsWrite(conn, msg, false) != nil {
			return
		}
	}
}

func wsWrite(w io.Writer, msg string, mask bool) error {
	frame := []byte{0x81, byte(len(msg))}
	payload := []byte(msg)
	if mask {
		frame[1] |= 0x80
		m := []byte{1, 2, 3, 4}
		frame = append(frame, m...)
		for i := range payload {
			payload[i] ^= m[i%4]
		}
	}
	_, err := w.Write(append(frame, payload...))
	return err
}

func wsRead(r *bufio.Reader) (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", err
	}
	n := int(h[1] & 0x7f)
	if n >= 126 {
		return "", errors.New("long frames not supported")
	}
	var m [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, m[:]); err != nil {
			return "", err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return "", err
	}
	if masked {
		for i := range p {
			p[i] ^= m[i%4]
		}
	}
	return string(p), nil
}

// TestH2CUpstream checks that an H2C upstream is reached over HTTP/2
// without TLS.
func TestH2CUpstream(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto)
	}))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Start()
	t.Cleanup(s.Close)
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "grpc", H2C: true, Targets: []gateway.Target{{URL: s.URL}}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "grpc"}))
	if resp, body := get(t, srv, "/"); resp.StatusCode != 200 || body != "HTTP/2.0" {
		t.Errorf("h2c upstream answered %d %q; want 200 over HTTP/2.0", resp.StatusCode, body)
	}
}

// bodyRecorder is a backend handler that keeps the hash of every body it
// receives, fails the first n requests with status, and answers the rest.
type bodyRecorder struct {
	mu     sync.Mutex
	hashes [][32]byte
	fail   *atomic.Int64 // shared by recorders that fail in turn
	status int
	delay  time.Duration
}

func (br *bodyRecorder) handler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		br.mu.Lock()
		br.hashes = append(br.hashes, sha256.Sum256(body))
		br.mu.Unlock()
		w.Header().Set("X-Backend", name)
		if br.fail.Add(-1) >= 0 {
			select {
			case <-time.After(br.delay):
			case <-r.Context().Done():
			}
			w.WriteHeader(br.status)
			return
		}
		fmt.Fprintf(w, "%s got %d bytes", name, len(body))
	}
}

// TestRetries checks what is retried: idempotent requests and requests
// with an Idempotency-Key, on another target, with the same body bytes
// (even one sent chunked); never a POST without a key; a body too long to
// hold is sent once, whole.
func TestRetries(t *testing.T) {
	t.Run("otelhttp", func(t *testing.T) { testRetries(t) })
	t.Run("no-op providers", func(t *testing.T) {
		testRetries(t, gateway.WithTracerProvider(tracenoop.NewTracerProvider()),
			gateway.WithMeterProvider(metricnoop.NewMeterProvider()))
	})
}

func testRetries(t *testing.T, opts ...gateway.Option) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	fail := new(atomic.Int64)
	ra, rb := &bodyRecorder{status: 502, fail: fail}, &bodyRecorder{status: 502, fail: fail}
	a.handle(ra.handler("a"))
	b.handle(rb.handler("b"))
	_, srv := start(t, append(opts,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()},
			Retry: &gateway.Retry{Attempts: 3, Backoff: retry.Constant(0), MaxBodyBytes: 1 << 10}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))...)
	payload := make([]byte, 700)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	want := sha256.Sum256(payload)

	type call struct {
		method  string
		key     string
		chunked bool
		body    []byte
		status  int
		hits    int // attempts in all
	}
	for _, c := range []call{
		{"GET", "", false, nil, 200, 2},
		{"PUT", "", true, payload, 200, 2},
		{"POST", "k-1", true, payload, 200, 2},
		{"POST", "", false, payload, 502, 1},
		{"PATCH", "", false, payload, 502, 1},
	} {
		// The target the balancer picks first fails once.
		fail.Store(1)
		ra.hashes, rb.hashes = nil, nil
		var body io.Reader
		if c.body != nil {
			body = bytes.NewReader(c.body)
			if c.chunked {
				body = io.MultiReader(body)
			}
		}
		req, _ := http.NewRequest(c.method, srv.URL+"/", body)
		if c.key != "" {
			req.Header.Set("Idempotency-Key", c.key)
		}
		resp, text := do(t, srv.Client(), req)
		hashes := append(ra.hashes, rb.hashes...)
		if resp.StatusCode != c.status || len(hashes) != c.hits {
			t.Errorf("%s (key %q): %d %q after %d attempts; want %d after %d", c.method, c.key, resp.StatusCode, text, len(hashes), c.status, c.hits)
		}
		if c.hits == 2 && (len(ra.hashes) != 1 || len(rb.hashes) != 1) {
			t.Errorf("%s: the retry went to the same target (a %d, b %d attempts)", c.method, len(ra.hashes), len(rb.hashes))
		}
		if c.body != nil {
			for i, h := range hashes {
				if h != want {
					t.Errorf("%s: attempt %d sent other bytes than the client", c.method, i+1)
				}
			}
		}
	}

	// Too long to hold: sent once, whole, not retried.
	fail.Store(1)
	ra.hashes, rb.hashes = nil, nil
	long := bytes.Repeat([]byte("z"), 5000)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/", io.MultiReader(bytes.NewReader(long)))
	resp, _ := do(t, srv.Client(), req)
	hashes := append(ra.hashes, rb.hashes...)
	if resp.StatusCode != 502 || len(hashes) != 1 || hashes[0] != sha256.Sum256(long) {
		t.Errorf("PUT of 5000 bytes over a 1 KiB replay bound: %d after %d attempts; want the 502 of one attempt that got all the bytes", resp.StatusCode, len(hashes))
	}
}

// TestPerTryTimeoutAndBudget checks that an attempt slower than the
// per-try timeout is abandoned for another target, and that an exhausted
// budget stops retries.
func TestPerTryTimeoutAndBudget(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	slow := &bodyRecorder{status: 200, delay: 2 * time.Second, fail: new(atomic.Int64)}
	slow.fail.Store(1 << 30)
	a.handle(slow.handler("a"))
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()},
			Retry: &gateway.Retry{PerTryTimeout: 50 * time.Millisecond, Backoff: retry.Constant(0)}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	for range 2 { // one of the two starts on a
		start := time.Now()
		resp, _ := get(t, srv, "/")
		if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "b" || time.Since(start) > time.Second {
			t.Errorf("with a 2s slow: %d from %q after %v; want 200 from b after about 50ms", resp.StatusCode, resp.Header.Get("X-Backend"), time.Since(start))
		}
	}

	c := newBackend(t, "c")
	failing := &bodyRecorder{status: 503, fail: new(atomic.Int64)}
	failing.fail.Store(1 << 30)
	c.handle(failing.handler("c"))
	budget := retry.NewBudget(retry.WithRatio(0), retry.WithMinRetriesPerSecond(0), retry.WithBurst(1))
	_, srv = start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "c", Targets: []gateway.Target{c.target()},
			Retry: &gateway.Retry{Attempts: 3, Budget: budget, Backoff: retry.Constant(0)}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "c"}))
	for i, want := range []int64{2, 3} {
		resp, _ := get(t, srv, "/")
		if resp.StatusCode != 503 || c.hits.Load() != want {
			t.Errorf("request %d with a budget of one retry: %d after %d attempts in all; want the upstream's 503 after %d", i+1, resp.StatusCode, c.hits.Load(), want)
		}
	}
}

// TestNoopProvidersPassTraceContext checks the gateway built with no-op
// providers, which leaves otelhttp out: it still routes, and the client's
// trace context reaches the upstream unchanged.
func TestNoopProvidersPassTraceContext(t *testing.T) {
	b := newBackend(t, "b")
	_, srv := start(t, gateway.WithTracerProvider(tracenoop.NewTracerProvider()),
		gateway.WithMeterProvider(metricnoop.NewMeterProvider()),
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /orders/{id}", Upstream: "u", Rewrite: "/v2/orders/{id}"}))
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/orders/42", nil)
	req.Header.Set("Traceparent", tp)
	resp, body := do(t, srv.Client(), req)
	s := echo(t, body)
	if resp.StatusCode != 200 || s.Path != "/v2/orders/42" || s.Header.Get("Traceparent") != tp {
		t.Errorf("%d, upstream saw %s with traceparent %q; want 200, /v2/orders/42, %q", resp.StatusCode, s.Path, s.Header.Get("Traceparent"), tp)
	}
}

// TestErrorLog: a response body that breaks off after the status line was
// sent can only be logged; it goes to the logger of WithErrorLog, not to
// the standard logger.
func TestErrorLog(t *testing.T) {
	up := newBackend(t, "a")
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	var logged bytes.Buffer
	var mu sync.Mutex
	_, srv := start(t,
		gateway.WithErrorLog(log.New(lockedWriter{&mu, &logged}, "gw: ", 0)),
		gateway.WithUpstreams(gateway.Upstream{Name: "a", Targets: []gateway.Target{up.target()}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "a"}))
	// The gateway aborts the response (the client sees the connection
	// close, before or after the status line).
	if resp, err := srv.Client().Get(srv.URL + "/x"); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Error("reading the broken body succeeded; want an error")
		}
	}
	// The proxy logs once its copy fails, which may be after the client
	// saw the connection close: wait for the line (10s is a bound on a
	// hung test, not a speed requirement).
	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		out := logged.String()
		mu.Unlock()
		if strings.Contains(out, "gw: ") && strings.Contains(out, "ReverseProxy") {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("nothing logged to WithErrorLog's logger: %q", out)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestRequestTrailersPassedOn: the trailers a client sends after a
// chunked body reach the upstream, traced or not. ReverseProxy copies the
// request's trailer map before the body is read, when the server has
// filled in only its names, and otelhttp's transport copies it again, so
// the upstream got the names without their values.
func TestRequestTrailersPassedOn(t *testing.T) {
	tel := telemetrytest.New(t)
	for name, opts := range map[string][]gateway.Option{
		"untraced": {gateway.WithTracerProvider(tracenoop.NewTracerProvider()), gateway.WithMeterProvider(metricnoop.NewMeterProvider())},
		"traced":   {gateway.WithTracerProvider(tel.TracerProvider), gateway.WithMeterProvider(tel.MeterProvider)},
	} {
		t.Run(name, func(t *testing.T) {
			got := make(chan string, 1)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				got <- string(body) + " " + r.Trailer.Get("X-Checksum")
			}))
			t.Cleanup(up.Close)
			_, srv := start(t, append(opts,
				gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: up.URL}}}),
				gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))...)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", io.MultiReader(strings.NewReader("payload")))
			req.ContentLength = -1 // chunked, which trailers need
			req.Trailer = http.Header{"X-Checksum": nil}
			req.Body = &trailerBody{r: strings.NewReader("payload"), set: func() { req.Trailer.Set("X-Checksum", "abc123") }}
			if resp, _ := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if g := <-got; g != "payload abc123" {
				t.Errorf("upstream got body and trailer %q; want %q", g, "payload abc123")
			}
		})
	}
}

// trailerBody is a request body that sets the request's trailer once it
// has been read, as a client computing a checksum does.
type trailerBody struct {
	r   io.Reader
	set func()
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.set()
	}
	return n, err
}

func (b *trailerBody) Close() error { return nil }
