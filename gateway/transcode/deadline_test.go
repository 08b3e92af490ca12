package transcode_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/transcode"
	"github.com/otelpatterns/patterns/internal/inventorypb"
)

// slowServer is a grpc-go upstream whose unary calls take longer than
// the deadline they are given: each waits for its deadline, then a
// little more before it returns, as a handler busy in a call of its own
// does.
func slowServer(t *testing.T, reached *atomic.Int64) string {
	return startGRPC(t, newInventory(), nil, grpc.UnaryInterceptor(
		func(ctx context.Context, _ any, _ *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
			reached.Add(1)
			select {
			case <-ctx.Done():
				time.Sleep(200 * time.Millisecond)
			case <-time.After(5 * time.Second):
			}
			return nil, status.Error(codes.DeadlineExceeded, "slow")
		}))
}

// TestClientDeadlineResetDoesNotOpenBreaker: a client's own
// deadline (REST's X-Server-Timeout, Connect-Timeout-Ms, a gRPC-Web
// grpc-timeout) that the server misses is the client's choice and must
// count against neither the breaker nor outlier detection (doc.go,
// clientDeadline). But grpc-go does not answer DEADLINE_EXCEEDED when the
// grpc-timeout it was sent runs out during a call: its timer resets the
// stream (RST_STREAM CANCEL). The gateway sees a transport error, charges
// the target, and answers 502 (UNAVAILABLE, HTTP 503 for REST): three
// clients that ask for 50ms from a method that takes longer open the
// breaker for everyone.
func TestClientDeadlineResetDoesNotOpenBreaker(t *testing.T) {
	var reached atomic.Int64
	breaker, opened := countingBreaker()
	gw := transcodingGateway(t, slowServer(t, &reached), gateway.Route{}, func(u *gateway.Upstream) { u.Breaker = breaker })
	for range 3 {
		resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, http.Header{"X-Server-Timeout": {"0.05"}})
		t.Logf("client's deadline missed: HTTP %d %s", resp.StatusCode, strings.TrimSpace(body))
	}
	assert.Equal(t, int64(3), reached.Load(), "calls reaching the server")
	assert.Zero(t, opened.Load(), "breaker openings, for the clients' own deadlines")
}

// TestClientDeadlineResetIsDeadlineExceeded: the same call, as the
// client sees it: its own deadline ran out, which is DEADLINE_EXCEEDED
// (HTTP 504), not the UNAVAILABLE (HTTP 503) of a broken target, which
// Connect and gRPC clients retry.
func TestClientDeadlineResetIsDeadlineExceeded(t *testing.T) {
	var reached atomic.Int64
	gw := transcodingGateway(t, slowServer(t, &reached), gateway.Route{}, nil)
	resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, http.Header{"X-Server-Timeout": {"0.05"}})
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, body)
	assert.Equal(t, float64(codes.DeadlineExceeded), rpcCode(body), body)
}

// TestUpstream1xxIsNotTheAnswer: a REST client that sends Expect:
// 100-continue (curl does for large bodies) has the header passed to the
// upstream. A gRPC server on net/http's HTTP/2 (grpc.Server.ServeHTTP,
// connect-go) then sends 100 Continue as it reads the body, which
// ReverseProxy relays, and upstreamWriter passes 1xx statuses on to
// vanguard's writer, which takes the first status it gets for the
// answer's: the call that succeeded reaches the client as an error.
func TestUpstream1xxIsNotTheAnswer(t *testing.T) {
	inv := newInventory()
	srv := grpc.NewServer()
	inventorypb.RegisterInventoryServiceServer(srv, inv)
	t.Cleanup(srv.Stop)
	addr := rawGRPC(t, srv.ServeHTTP)
	gw := transcodingGateway(t, addr, gateway.Route{}, nil)
	h := http.Header{"Content-Type": {"application/json"}}
	resp, body := rawDo(t, "POST", gw.URL+"/v1/items/sku-1:reserve", strings.NewReader(`{"quantity":1,"orderId":"o-1"}`), h)
	require.Equal(t, http.StatusOK, resp.StatusCode, "without Expect: %s", body)

	h.Set("Expect", "100-continue")
	resp, body = rawDo(t, "POST", gw.URL+"/v1/items/sku-1:reserve", strings.NewReader(`{"quantity":1,"orderId":"o-2"}`), h)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "with Expect: 100-continue: %s", body)
	assert.Equal(t, int64(2), inv.calls.Load(), "calls reaching the server")
}

// TestRetryCarriesTimeLeft: the grpc-timeout is set once, before
// the first attempt, from the time then left on the route; a retry
// sends the same value, though the first attempt used up part of it, so
// the second server is told it has time the gateway will not wait for
// (and passes that on to its own calls).
func TestRetryCarriesTimeLeft(t *testing.T) {
	var calls atomic.Int64
	timeouts := make(chan string, 2)
	h := func(w http.ResponseWriter, r *http.Request) {
		timeouts <- r.Header.Get("Grpc-Timeout")
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 1 {
			time.Sleep(500 * time.Millisecond)
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "14")
			w.WriteHeader(http.StatusOK)
			return
		}
		itemAnswer(t, w, map[string]string{"Grpc-Status": "0"})
	}
	a, b := rawGRPC(t, h), rawGRPC(t, h)
	const timeout = 3 * time.Second
	gw := transcodingGateway(t, a, gateway.Route{Timeout: timeout}, func(u *gateway.Upstream) {
		u.Targets = []gateway.Target{{URL: "http://" + a}, {URL: "http://" + b}}
		u.Retry = &gateway.Retry{Attempts: 2}
	})
	resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, http.Header{"Idempotency-Key": {"k-1"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, int64(2), calls.Load())
	first, second := <-timeouts, <-timeouts
	d1, err := parseTimeout(first)
	require.NoError(t, err, first)
	d2, err := parseTimeout(second)
	require.NoError(t, err, second)
	t.Logf("grpc-timeout of the first attempt %s (%v), of the retry %s (%v)", first, d1, second, d2)
	assert.LessOrEqual(t, d2, d1-400*time.Millisecond, "the retry's grpc-timeout: the time left on the route when it was sent")
}

// parseTimeout reads a grpc-timeout.
func parseTimeout(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, errors.New("too short")
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil {
		return 0, err
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': 1}[s[len(s)-1]]
	if unit == 0 {
		return 0, errors.New("bad unit")
	}
	return time.Duration(n) * unit, nil
}

// h2cGateway is transcodingGateway served over h2c, for gRPC clients;
// it returns the server's address.
func h2cGateway(t *testing.T, addr string, base gateway.Route, up func(*gateway.Upstream), opts ...transcode.Option) string {
	t.Helper()
	srv := unstartedGateway(t, addr, base, up, opts...)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Start()
	return strings.TrimPrefix(srv.URL, "http://")
}

func grpcClient(t *testing.T, addr string) inventorypb.InventoryServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return inventorypb.NewInventoryServiceClient(cc)
}

// TestGRPCPassthrough: plain gRPC through the transcoder: the
// route's body limit, its deadline, a client's shorter deadline.
func TestGRPCPassthrough(t *testing.T) {
	seen := make(chan time.Duration, 8)
	inv := newInventory()
	addr := startGRPC(t, inv, nil, grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			d := time.Duration(-1)
			if at, ok := ctx.Deadline(); ok {
				d = time.Until(at)
			}
			seen <- d
			return h(ctx, req)
		}))
	breaker, opened := countingBreaker()
	gw := h2cGateway(t, addr, gateway.Route{Timeout: 5 * time.Second, MaxBodyBytes: 200}, func(u *gateway.Upstream) { u.Breaker = breaker })
	c := grpcClient(t, gw)
	it, err := c.GetItem(t.Context(), &inventorypb.GetItemRequest{Sku: "sku-1"})
	require.NoError(t, err)
	assert.Equal(t, "sku-1", it.GetSku())
	d := <-seen
	assert.True(t, d > 4*time.Second && d <= 5*time.Second, "route's deadline: %v", d)

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err = c.GetItem(ctx, &inventorypb.GetItemRequest{Sku: "sku-1"})
	require.NoError(t, err)
	d = <-seen
	assert.True(t, d > 0 && d <= time.Second, "client's deadline: %v", d)

	for range 4 {
		_, err = c.Reserve(t.Context(), &inventorypb.ReserveRequest{Sku: "sku-1", Quantity: 1, OrderId: strings.Repeat("x", 500)})
		assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	}
	assert.Zero(t, opened.Load())
}

// TestGzipBodyAtTheLimit: a gzip REST body that inflates to
// exactly the message limit goes through; one byte more is refused.
func TestGzipBodyAtTheLimit(t *testing.T) {
	var reached atomic.Int64
	upstream := emptyAnswer(&reached)
	const limit = 1000
	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"),
		transcode.WithMaxMessageBytes(limit), transcode.WithUpstreamHandler(upstream))
	require.NoError(t, err)
	srv := httptest.NewServer(tr)
	t.Cleanup(srv.Close)
	body := func(n int) string {
		s := `{"quantity":1,"orderId":"` + strings.Repeat("x", n) + `"}`
		return s
	}
	at := body(limit - len(body(0)))
	require.Len(t, at, limit)
	h := http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}
	resp, got := rawDo(t, "POST", srv.URL+"/v1/items/sku-1:reserve", strings.NewReader(gzipped(t, at)), h)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "exactly at the limit: %s", got)
	resp, got = rawDo(t, "POST", srv.URL+"/v1/items/sku-1:reserve", strings.NewReader(gzipped(t, at+" ")), h)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "one over: %s", got)
	assert.Equal(t, int64(1), reached.Load())

	// The same in a gRPC-Web envelope, which vanguard decompresses.
	for _, tc := range []struct {
		n    int
		want string
	}{{limit - 3, "0"}, {limit - 2, "8"}} { // tag, 2-byte length, sku: limit bytes, then one over
		msg := gzipped(t, string(append([]byte{0x0a}, protowire.AppendString(nil, strings.Repeat("s", tc.n))...)))
		frame := make([]byte, 5, 5+len(msg))
		frame[0] = 1
		binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
		resp, got := rawDo(t, "POST", srv.URL+"/inventory.v1.InventoryService/GetItem", bytes.NewReader(append(frame, msg...)),
			http.Header{"Content-Type": {"application/grpc-web+proto"}, "Grpc-Encoding": {"gzip"}})
		st := resp.Header.Get("Grpc-Status")
		if st == "" {
			st = trailerStatus([]byte(got))
		}
		assert.Equal(t, tc.want, st, "a message of %d bytes: %q", tc.n+3, resp.Header.Get("Grpc-Message"))
	}
}

// TestStalledGzipBodyIsDeadlineExceeded: a client that stops
// sending its body until the route's Timeout runs out is answered
// DEADLINE_EXCEEDED (the gateway's 408, HTTP 504 for REST, doc.go). A
// gzip body is read by the transcoder itself (inflate), which takes any
// read error for a malformed body: the stalled client gets
// INVALID_ARGUMENT (HTTP 400), a claim that its request is wrong.
func TestStalledGzipBodyIsDeadlineExceeded(t *testing.T) {
	gw := transcodingGateway(t, startGRPC(t, newInventory(), nil), gateway.Route{Timeout: 200 * time.Millisecond}, nil)
	gz := gzipped(t, `{"quantity":1,"orderId":"o-1"}`)
	for name, h := range map[string]http.Header{
		"plain": {"Content-Type": {"application/json"}},
		"gzip":  {"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}},
	} {
		first := `{"quantity":`
		if name == "gzip" {
			first = gz[:10]
		}
		pr, pw := io.Pipe()
		t.Cleanup(func() { _ = pw.Close() })
		go func() { _, _ = io.WriteString(pw, first) }() // then nothing until the test ends
		req, err := http.NewRequestWithContext(t.Context(), "POST", gw.URL+"/v1/items/sku-1:reserve", pr)
		require.NoError(t, err)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, name)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, "%s: %s", name, body)
		assert.Equal(t, float64(codes.DeadlineExceeded), rpcCode(string(body)), "%s: %s", name, body)
	}
}

// TestExpectContinueNotForwarded: a REST client's Expect:
// 100-continue goes to the gRPC upstream with the rest of its headers,
// where it means nothing: grpc-go never answers 100, and the gateway's
// transport waits its ExpectContinueTimeout (1s) before it sends the
// body, on every such call.
func TestExpectContinueNotForwarded(t *testing.T) {
	gw := transcodingGateway(t, startGRPC(t, newInventory(), nil), gateway.Route{}, nil)
	h := http.Header{"Content-Type": {"application/json"}, "Expect": {"100-continue"}}
	start := time.Now()
	resp, body := rawDo(t, "POST", gw.URL+"/v1/items/sku-1:reserve", strings.NewReader(`{"quantity":1,"orderId":"o-1"}`), h)
	took := time.Since(start)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Less(t, took, 500*time.Millisecond, "a call with Expect: 100-continue")
}

// TestUpstreamDeadlineCountsUnderLongClientDeadline: the breaker
// counts an upstream's DEADLINE_EXCEEDED "unless the deadline that ran
// out was the client's own" (doc.go). clientDeadline only asks whether
// the client sent a deadline, not whether it ran out: a server whose own
// call timed out answers at once, well inside the client's 60s, and the
// failure is forgiven. Most gRPC and Connect clients send a deadline, so
// a target whose dependency times out is never taken out.
func TestUpstreamDeadlineCountsUnderLongClientDeadline(t *testing.T) {
	var reached atomic.Int64
	addr := startGRPC(t, newInventory(), nil, grpc.UnaryInterceptor(
		func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
			reached.Add(1)
			return nil, status.Error(codes.DeadlineExceeded, "the stock service timed out")
		}))
	breaker, opened := countingBreaker()
	gw := transcodingGateway(t, addr, gateway.Route{}, func(u *gateway.Upstream) { u.Breaker = breaker })
	for range 5 {
		resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, http.Header{"X-Server-Timeout": {"60"}})
		t.Logf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(body))
	}
	assert.Equal(t, int64(3), reached.Load(), "calls reaching the server")
	assert.Equal(t, int64(1), opened.Load(), "breaker openings")
}
