package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
)

// TestGRPCTimeoutFormat: a grpc-timeout has at most 8 digits and a
// unit, the finest that fits, rounded up so that the server never gives
// up before the gateway; it reads back as at least the duration written.
func TestGRPCTimeoutFormat(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "1n"},
		{0, "1n"},
		{1, "1n"},
		{99_999_999, "99999999n"},
		{100_000_000, "100000u"},
		{100_000_001, "100001u"},
		{5 * time.Second, "5000000u"},
		{200 * time.Second, "200000m"},
		{30 * time.Hour, "108000S"},
		{5000 * time.Hour, "18000000S"},
		{30000 * time.Hour, "1800000M"},
		{200 * 365 * 24 * time.Hour, "1752000H"},
	} {
		got := formatGRPCTimeout(tc.d)
		if got != tc.want {
			t.Errorf("formatGRPCTimeout(%v) = %q; want %q", tc.d, got, tc.want)
		}
		if back, ok := parseGRPCTimeout(got); !ok || back < tc.d {
			t.Errorf("parseGRPCTimeout(%q) = %v, %v; want at least %v", got, back, ok, tc.d)
		}
	}
	for _, bad := range []string{"", "1", "S", "123456789S", "1x", "-1S", "1.5S", " 1S"} {
		if d, ok := parseGRPCTimeout(bad); ok {
			t.Errorf("parseGRPCTimeout(%q) = %v, true; want false", bad, d)
		}
	}
}

// TestPropagateGRPCDeadline: the time left on the request's context goes
// as grpc-timeout, marked as the gateway's own, unless the client's own
// is shorter; without a deadline the request is left as it is.
func TestPropagateGRPCDeadline(t *testing.T) {
	newReq := func(timeout time.Duration, client string) *http.Request {
		r := httptest.NewRequest("POST", "/svc/Method", nil)
		if client != "" {
			r.Header.Set("Grpc-Timeout", client)
		}
		if timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			t.Cleanup(cancel)
			r = r.WithContext(ctx)
		}
		return r
	}
	// clients reports whether the attempt's grpc-timeout is taken for
	// the client's own: missing it is then the client's choice.
	clients := func(r *http.Request) bool { return grpcDeadline(r, 0).d > 0 }

	r := newReq(0, "")
	if got := PropagateGRPCDeadline(r); got != r || got.Header.Get("Grpc-Timeout") != "" {
		t.Errorf("no deadline: PropagateGRPCDeadline set grpc-timeout %q; want none", got.Header.Get("Grpc-Timeout"))
	}
	r = newReq(0, "1S")
	if got := PropagateGRPCDeadline(r); got != r || !clients(got) {
		t.Errorf("the client's deadline alone: not kept as the client's")
	}

	r = newReq(time.Hour, "1S")
	got := PropagateGRPCDeadline(r)
	if got != r || got.Header.Get("Grpc-Timeout") != "1S" || !clients(got) {
		t.Errorf("a shorter client deadline: grpc-timeout %q, client's %v; want 1S, the client's",
			got.Header.Get("Grpc-Timeout"), clients(got))
	}

	for _, client := range []string{"", "2H", "bad"} {
		r = newReq(time.Hour, client)
		got = PropagateGRPCDeadline(r)
		d, ok := parseGRPCTimeout(got.Header.Get("Grpc-Timeout"))
		if !ok || d > time.Hour || d < 59*time.Minute {
			t.Errorf("client's %q: grpc-timeout %q; want the hour left on the route", client, got.Header.Get("Grpc-Timeout"))
		}
		if clients(got) {
			t.Errorf("client's %q: DEADLINE_EXCEEDED under the route's deadline is the client's; want the target's", client)
		}
		if vals := got.Header["Grpc-Timeout"]; len(vals) != 1 {
			t.Errorf("client's %q: grpc-timeout %q; want one value", client, vals)
		}
	}
}

// TestRetryCodeGRPCUnavailable: a trailers-only UNAVAILABLE is judged as
// 503 for retries; other answers by their HTTP status.
func TestRetryCodeGRPCUnavailable(t *testing.T) {
	resp := func(code int, ct, st string) *http.Response {
		h := http.Header{"Content-Type": {ct}}
		if st != "" {
			h.Set("Grpc-Status", st)
		}
		return &http.Response{StatusCode: code, ProtoMajor: 2, Header: h}
	}
	for _, tc := range []struct {
		resp *http.Response
		want int
	}{
		{resp(200, "application/grpc", "14"), 503},
		{resp(200, "application/grpc+proto", "14"), 503},
		{resp(200, "application/grpc", "4"), 200},
		{resp(200, "application/grpc", ""), 200},
		{resp(200, "application/grpc-web", "14"), 200}, // its status is in the body
		{resp(200, "text/plain", "14"), 200},
		{resp(502, "text/plain", ""), 502},
	} {
		if got := retryCode(tc.resp); got != tc.want {
			t.Errorf("retryCode(%d %s, grpc-status %q) = %d; want %d", tc.resp.StatusCode,
				tc.resp.Header.Get("Content-Type"), tc.resp.Header.Get("Grpc-Status"), got, tc.want)
		}
	}
}

// markedBody is a request body made by a handler from the client's,
// which fails the way a converted body does when the client's message
// is bad.
type markedBody struct{ n int }

func (b *markedBody) Read(p []byte) (int, error) {
	if b.n > 0 {
		b.n--
		return copy(p, "x"), nil
	}
	return 0, fmt.Errorf("%w: %w", ErrClientBody, errors.New("message over the limit"))
}

func (b *markedBody) Close() error { return nil }

// TestClientBodyErrorNotCharged: a body that a handler proxies, failing
// with ErrClientBody, is the client's doing: answered 400, not 502, not
// retried, and counted against neither the target's breaker nor its
// outlier detection. Its transport error passed for the target's.
func TestClientBodyErrorNotCharged(t *testing.T) {
	var reached atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(up.Close)
	var opened atomic.Int64
	g, err := New(
		WithUpstreams(Upstream{
			Name:    "up",
			Targets: []Target{{URL: up.URL}},
			Breaker: &Breaker{Options: []circuitbreaker.Option{
				circuitbreaker.WithConsecutiveFailures(3),
				circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
					if c.To == circuitbreaker.StateOpen {
						opened.Add(1)
					}
				}),
			}},
			Outlier: &Outlier{ConsecutiveFailures: 3},
			Retry:   &Retry{Attempts: 2},
		}),
		WithRoutes(Route{Pattern: "/", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				r.Body = &markedBody{n: 1}
				r.ContentLength = -1
			}
			ProxyTo("up").ServeHTTP(w, r)
		})}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	for _, key := range []string{"", "", "", "k1", "k2", "k3"} { // retried with a key, sent once without
		req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/x", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("key %q: status %d; want 400", key, resp.StatusCode)
		}
	}
	if n := opened.Load(); n != 0 {
		t.Errorf("the breaker opened %d times; want 0", n)
	}
	resp, err := srv.Client().Get(srv.URL + "/x") // would find the target ejected or its breaker open
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a good request after them: status %d; want 200, the target in service", resp.StatusCode)
	}
}

// A handler that makes a gRPC call through the gateway on a client's
// behalf sends the route's deadline along as grpc-timeout, unless the
// client's own is shorter.
func ExamplePropagateGRPCDeadline() {
	call := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// r is the gRPC call made from the client's request.
		ProxyTo("inventory").ServeHTTP(w, PropagateGRPCDeadline(r))
	})
	_ = Route{Pattern: "/inventory.v1.InventoryService/", Handler: call, Timeout: 2 * time.Second}
}

// clientFault is a request body converted from the client's, whose
// failures are the client's doing.
type clientFault struct {
	io.Reader // the conversion
	io.Closer // the client's body
}

func (b clientFault) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", ErrClientBody, err)
	}
	return n, err
}

// A handler that proxies a body of its own making, converted from the
// client's, marks its failures (the client's message too large, or
// malformed) as the client's: the gateway answers 400, does not retry,
// and charges the target with nothing.
func ExampleErrClientBody() {
	convert := func(r io.Reader) io.Reader { return r } // JSON to protobuf, say
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = clientFault{convert(r.Body), r.Body}
		r.ContentLength = -1
		ProxyTo("orders").ServeHTTP(w, r)
	})
	_ = Route{Pattern: "POST /orders", Handler: proxy}
}
