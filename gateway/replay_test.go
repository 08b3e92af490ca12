package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/retry"
)

// h2cServer serves h over HTTP/1 and unencrypted HTTP/2, closed with the
// test.
func h2cServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetHTTP1(true)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// A retried request whose client waits for the answer before it ends its
// body (a gRPC stream, any full-duplex exchange) streams to the upstream
// as it comes: the gateway used to hold up to Retry.MaxBodyBytes of the
// body, or all of it, before the first attempt, and such a call stalled.
func TestRetriedDuplexRequestStreams(t *testing.T) {
	up := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := bufio.NewReader(r.Body)
		line, _ := in.ReadString('\n')
		fmt.Fprintf(w, "got %s", line)
		http.NewResponseController(w).Flush()
		rest, _ := io.ReadAll(in)
		fmt.Fprintf(w, "then %s", rest)
	}))
	var calls atomic.Int64
	for _, c := range []struct{ method, key string }{{http.MethodPut, ""}, {http.MethodPost, "k-1"}} {
		duplexCall(t, up.URL, true, c.method, c.key, &calls, "got hello\n", "then world")
	}
}

// A retry sends the whole body, byte for byte, when the attempt before
// failed having read part of it (or none): what that attempt read is
// sent again, then the rest as the client sends it.
func TestRetryAfterPartlyReadBody(t *testing.T) {
	payload := make([]byte, 40<<10)
	for i := range payload {
		payload[i] = byte(i * 13)
	}
	want := sha256.Sum256(payload)
	for _, c := range []struct {
		name string
		read int // bytes the failing attempt reads before it fails
		drop bool
	}{{"503 unread", 0, false}, {"503 after 1000 bytes", 1000, false}, {"connection dropped after 20000 bytes", 20000, true}} {
		t.Run(c.name, func(t *testing.T) {
			var (
				fail   atomic.Int64
				mu     sync.Mutex
				hashes [][32]byte
			)
			fail.Store(1)
			h := func(w http.ResponseWriter, r *http.Request) {
				if fail.Add(-1) >= 0 {
					_, _ = io.CopyN(io.Discard, r.Body, int64(c.read))
					if c.drop {
						conn, _, err := http.NewResponseController(w).Hijack()
						if err == nil {
							_ = conn.Close()
						}
						return
					}
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				hashes = append(hashes, sha256.Sum256(body))
				mu.Unlock()
			}
			_, _, srv := retryPair(t, h, gateway.Retry{Attempts: 2, Backoff: retry.Constant(0)})
			// Sent chunked, in pieces, so that the attempts read it as
			// it comes.
			pr, pw := io.Pipe()
			go func() {
				for p := payload; len(p) > 0; {
					n := min(len(p), 4096)
					if _, err := pw.Write(p[:n]); err != nil {
						return
					}
					p = p[n:]
				}
				_ = pw.Close()
			}()
			req, _ := http.NewRequest(http.MethodPut, srv.URL+"/", pr)
			resp, text := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %q; want the second attempt's 200", resp.StatusCode, text)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(hashes) != 1 || hashes[0] != want {
				t.Errorf("the second attempt got other bytes than the client sent (%d bodies)", len(hashes))
			}
		})
	}
}

// A body longer than Retry.MaxBodyBytes that an attempt failed on after
// reading past the bound is not sent again: the client gets the failed
// attempt's answer.
func TestLongBodyPartlyReadNotRetried(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.CopyN(io.Discard, r.Body, 3000)
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	a, b, srv := retryPair(t, h, gateway.Retry{Attempts: 3, Backoff: retry.Constant(0), MaxBodyBytes: 1 << 10})
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/", io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("z"), 5000))))
	resp, _ := do(t, srv.Client(), req)
	if resp.StatusCode != http.StatusServiceUnavailable || a.hits.Load()+b.hits.Load() != 1 {
		t.Errorf("%d after %d attempts; want the 503 of the only attempt", resp.StatusCode, a.hits.Load()+b.hits.Load())
	}
}

// duplexCall sends a full-duplex call through a gateway (HTTP/1 and h2c)
// in front of upstream up, which retries once: the client sends
// "hello\n", waits for the first line of the answer, then sends "world"
// and ends its body. It checks that the first line and the rest are
// first and rest; calls counts the upstream's calls, for the message.
func duplexCall(t *testing.T, up string, h2c bool, method, key string, calls *atomic.Int64, first, rest string) {
	t.Helper()
	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{Name: "u", H2C: h2c, Targets: []gateway.Target{{URL: up}},
			Retry: &gateway.Retry{Attempts: 2, Backoff: retry.Constant(0)}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	srv := h2cServer(t, g)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequestWithContext(ctx, method, srv.URL+"/", pr)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	go func() { _, _ = io.WriteString(pw, "hello\n") }()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s (key %q): no answer while the client waits for one (%d upstream calls): %v", method, key, calls.Load(), err)
	}
	defer resp.Body.Close()
	out := bufio.NewReader(resp.Body)
	line, err := out.ReadString('\n')
	if resp.StatusCode != http.StatusOK || line != first {
		t.Fatalf("%s: %d %q, %v; want 200 %q", method, resp.StatusCode, line, err, first)
	}
	_, _ = io.WriteString(pw, "world")
	_ = pw.Close()
	if got, err := io.ReadAll(out); string(got) != rest || err != nil {
		t.Errorf("%s: then (%q, %v); want %q", method, got, err, rest)
	}
}

// duplexUpstream serves, over HTTP/1 (full duplex) and h2c, a handler
// whose first call reads the first line of the body and answers 503;
// the others answer "got <line>" at once, then "then <rest>".
func duplexUpstream(t *testing.T, calls *atomic.Int64) *httptest.Server {
	return h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		in := bufio.NewReader(r.Body)
		line, _ := in.ReadString('\n')
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "got %s", line)
		_ = http.NewResponseController(w).Flush()
		rest, _ := io.ReadAll(in)
		fmt.Fprintf(w, "then %s", rest)
	}))
}

// A full-duplex call with an Idempotency-Key whose first attempt is
// answered 503 after the upstream read the client's first message must
// be retried with that message: the client waits for the answer before
// it sends more.
func TestRetriedDuplexSendsKeptBytes(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2c=%v", h2c), func(t *testing.T) {
			var calls atomic.Int64
			up := duplexUpstream(t, &calls)
			duplexCall(t, up.URL, h2c, http.MethodPost, "k-1", &calls, "got hello\n", "then world")
		})
	}
}

// The first attempt of a full-duplex call over h2c is answered 503 with
// a body after the upstream read the client's first message; the next
// target answers at once, before it reads the body. The client waits
// for that answer before it sends more, so the gateway must not wait
// for the client to drop the first answer.
func TestRetriedDuplexDoesNotWaitOnDrainedAnswer(t *testing.T) {
	var calls atomic.Int64
	up := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			_, _ = bufio.NewReader(r.Body).ReadString('\n')
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "busy")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
		_ = http.NewResponseController(w).Flush()
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", body)
	}))
	duplexCall(t, up.URL, true, http.MethodPost, "k-1", &calls, "ready\n", "got hello\nworld")
}

// A streaming call answered 503, whose retry the target's open breaker
// turns away, gets that 503 (the last answer) while the upstream that
// gave it still reads the request body: the body must go on streaming
// to it as the caller sends it (the attempt's transport is not done with
// it), and the answer must not be cut.
func TestRefusedRetryKeepsStreamingBody(t *testing.T) {
	up := newBackend(t, "a")
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		in := bufio.NewReader(r.Body)
		line, _ := in.ReadString('\n')
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "got %s", line)
		_ = http.NewResponseController(w).Flush()
		rest, err := io.ReadAll(in)
		fmt.Fprintf(w, "then %s (%v)", rest, err)
	})
	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{up.target()},
			Retry: &gateway.Retry{Attempts: 2, Backoff: retry.Constant(0)},
			Breaker: &gateway.Breaker{Options: []circuitbreaker.Option{
				circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour)}}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://u/", pr)
	go func() { _, _ = io.WriteString(pw, "hello\n") }()
	resp, err := g.Transport().RoundTrip(req)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	out := bufio.NewReader(resp.Body)
	line, err := out.ReadString('\n')
	if resp.StatusCode != http.StatusServiceUnavailable || line != "got hello\n" {
		t.Fatalf("%d %q, %v; want 503 %q", resp.StatusCode, line, err, "got hello\n")
	}
	if _, err := io.WriteString(pw, "world"); err != nil {
		t.Errorf("the body was closed while its attempt's transport still sent it: %v", err)
	}
	_ = pw.Close()
	if rest, err := io.ReadAll(out); string(rest) != "then world (<nil>)" || err != nil {
		t.Errorf("then (%q, %v); want %q", rest, err, "then world (<nil>)")
	}
}

// A retried request (PUT) whose chunked body turns out malformed after
// its first attempt began is the client's fault: the gateway answers 400
// and does not send the broken body to the other targets.
func TestMalformedBodyNotRetried(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) { _, _ = io.ReadAll(r.Body) }
	a, b, srv := retryPair(t, h, gateway.Retry{Attempts: 3, Backoff: retry.Constant(0)})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	time.Sleep(100 * time.Millisecond) // the first attempt is under way
	fmt.Fprintf(conn, "zz\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := a.hits.Load() + b.hits.Load(); resp.StatusCode != http.StatusBadRequest || n > 1 {
		t.Errorf("status %d after %d attempts; want 400 after at most 1", resp.StatusCode, n)
	}
}

// A client that sends a small body slowly to a healthy upstream, with a
// PerTryTimeout shorter than the upload, gets the answer: the per-try
// timer waits while the attempt waits for the client. With the body
// streamed, the timer ran during the upload, the attempt timed out and
// was charged to the target (its breaker opened), and the client got 503
// (HTTP/1) or 408 (h2c).
func TestSlowClientBodyNotPerTryTimeout(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2c=%v", h2c), func(t *testing.T) {
			up := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "got %s", b)
			}))
			_, srv := start(t,
				gateway.WithUpstreams(gateway.Upstream{Name: "u", H2C: h2c, Targets: []gateway.Target{{URL: up.URL}},
					Retry: &gateway.Retry{Attempts: 2, Backoff: retry.Constant(0), PerTryTimeout: 300 * time.Millisecond},
					Breaker: &gateway.Breaker{Options: []circuitbreaker.Option{
						circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour)}}}),
				gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))

			pr, pw := io.Pipe()
			go func() {
				for i, s := range []string{"a", "b", "c", "d"} {
					if i > 0 {
						time.Sleep(400 * time.Millisecond)
					}
					if _, err := io.WriteString(pw, s); err != nil {
						return
					}
				}
				_ = pw.Close()
			}()
			req, _ := http.NewRequest(http.MethodPut, srv.URL+"/", pr)
			resp, text := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK || text != "got abcd" {
				t.Errorf("slow client, healthy upstream: %d %q; want 200 %q", resp.StatusCode, text, "got abcd")
			}
			resp, text = do(t, srv.Client(), newGet(t, srv.URL+"/"))
			if resp.StatusCode != http.StatusOK {
				t.Errorf("the next request: %d %q; want 200 (the slow client tripped the target's breaker)", resp.StatusCode, text)
			}
		})
	}
}

func newGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The per-try timer of an attempt with a body still bounds the upstream:
// one that read the body and then hangs is abandoned for another target.
func TestPerTryTimeoutWithBodyBoundsUpstream(t *testing.T) {
	var calls atomic.Int64
	h := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		fmt.Fprintf(w, "got %s", b)
	}
	_, _, srv := retryPair(t, h, gateway.Retry{Attempts: 2, Backoff: retry.Constant(0), PerTryTimeout: 200 * time.Millisecond})
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/", io.MultiReader(strings.NewReader("abcd")))
	resp, text := do(t, srv.Client(), req)
	if resp.StatusCode != http.StatusOK || text != "got abcd" || calls.Load() != 2 {
		t.Errorf("%d %q after %d attempts; want 200 %q from the second", resp.StatusCode, text, calls.Load(), "got abcd")
	}
}

// retryPair starts two backends, a and b, answering with h, behind a
// gateway whose one route goes to an upstream of both with retry r.
func retryPair(t *testing.T, h http.HandlerFunc, r gateway.Retry) (a, b *backend, srv *httptest.Server) {
	t.Helper()
	a, b = newBackend(t, "a"), newBackend(t, "b")
	a.handle(h)
	b.handle(h)
	_, srv = start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{a.target(), b.target()}, Retry: &r}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	return a, b, srv
}
