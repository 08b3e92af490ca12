package gateway_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

// An upstream whose status line has a code below 100 ("HTTP/1.1 000",
// which Go's client accepts) gets the client a 502. ReverseProxy would
// pass the code to WriteHeader, which panics: the connection dropped.
func TestInvalidUpstreamStatus(t *testing.T) {
	url := gateway.RawUpstream(t, "HTTP/1.1 000 Broken\r\nContent-Length: 0\r\n\r\n", 0)
	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{{URL: url}}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var logged strings.Builder
	var mu sync.Mutex
	srv := httptest.NewUnstartedServer(g)
	srv.Config.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if logged.Len() < 200 {
			logged.Write(p[:min(len(p), 200)])
		}
		return len(p), nil
	}), "", 0)
	srv.Start()
	defer srv.Close()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		if logged.Len() > 0 {
			t.Logf("server log: %s...", logged.String())
		}
	}()
	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatalf("GET through the gateway: %v; want a 502", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d; want 502", resp.StatusCode)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A client that stops sending its body until past the route's Timeout
// gets a 408, and the target is not charged: two such clients ejected
// the one, healthy, target (two failures in a row), and every other
// client got 503.
func TestSlowClientBodyNotChargedToTarget(t *testing.T) {
	b := newBackend(t, "b") // reads the whole body, then answers
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()},
			Outlier: &gateway.Outlier{ConsecutiveFailures: 2, BaseEjection: time.Minute}}),
		gateway.WithRoutes(gateway.Route{Pattern: "/", Upstream: "u", Timeout: 150 * time.Millisecond}))
	for i := range 2 {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", pr)
		go func() {
			_, _ = io.WriteString(pw, "x") // one byte, then nothing until well past the route's timeout
			time.Sleep(400 * time.Millisecond)
			_ = pw.Close()
		}()
		resp, _ := do(t, srv.Client(), req)
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("slow client %d: status %d; want 408", i+1, resp.StatusCode)
		}
	}
	if resp, _ := get(t, srv, "/"); resp.StatusCode != http.StatusOK {
		t.Errorf("after two clients stalled mid-body: a normal request got %d; want 200 (the target was never at fault)", resp.StatusCode)
	}
}

// TestStalledClientBodyTimesOut: a client that stops sending its body
// gets its 408 when the route's time runs out, not when it sends again:
// HTTP/1's transport returned only once the gateway's read of the body
// did, which waited for the client, so a stalled client held the request
// (and an upstream connection) for as long as it liked. A handler's read
// of the body ends then too.
func TestStalledClientBodyTimesOut(t *testing.T) {
	b := newBackend(t, "b") // reads the whole body, then answers
	handlerErr := make(chan error, 1)
	_, srv := start(t,
		gateway.WithUpstreams(gateway.Upstream{Name: "u", Targets: []gateway.Target{b.target()}}),
		gateway.WithRoutes(
			gateway.Route{Pattern: "/proxied", Upstream: "u", Timeout: 150 * time.Millisecond},
			gateway.Route{Pattern: "/handled", Timeout: 150 * time.Millisecond,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, err := io.ReadAll(r.Body)
					handlerErr <- err
					w.WriteHeader(http.StatusRequestTimeout)
				})}))
	for _, path := range []string{"/proxied", "/handled"} {
		pr, pw := io.Pipe()
		t.Cleanup(func() { _ = pw.Close() })
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, pr)
		go func() { _, _ = io.WriteString(pw, "x") }() // one byte, then nothing until the test ends
		done := make(chan int, 1)
		go func() {
			resp, err := srv.Client().Do(req)
			if err != nil {
				done <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			done <- resp.StatusCode
		}()
		select {
		case code := <-done:
			if code != http.StatusRequestTimeout {
				t.Errorf("%s: status %d; want 408", path, code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer 10s after the route's time (150ms) ran out, the client's body stalled", path)
		}
	}
	select {
	case err := <-handlerErr:
		if err == nil {
			t.Error("the handler's read of a stalled body ended without an error")
		}
	default:
		t.Error("the handler did not return")
	}
}
