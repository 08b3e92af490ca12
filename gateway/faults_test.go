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
