package transcode_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/inventorypb"
)

// countingBreaker is a gateway breaker opening after 3 failures in a
// row, counting how often it opened.
func countingBreaker() (*gateway.Breaker, *atomic.Int64) {
	var opened atomic.Int64
	return &gateway.Breaker{Options: []circuitbreaker.Option{
		circuitbreaker.WithConsecutiveFailures(3),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			if c.To == circuitbreaker.StateOpen {
				opened.Add(1)
			}
		}),
	}}, &opened
}

// A gRPC UNAVAILABLE is HTTP 200 with grpc-status in the headers
// (trailers-only): the gateway's breaker still counts it, opens after 3,
// and the calls after that never reach the server.
func TestBreakerOpensOnGRPCUnavailable(t *testing.T) {
	inv := newInventory()
	var reached atomic.Int64
	addr := startGRPC(t, inv, nil, grpc.UnaryInterceptor(
		func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
			reached.Add(1)
			return nil, status.Error(codes.Unavailable, "overloaded")
		}))
	breaker, opened := countingBreaker()
	gw := newGateway(t, addr, nil, breaker)
	for range 5 {
		resp, body := do(t, "GET", gw.URL+"/v1/items/sku-1", "", authed())
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, float64(14), body["code"], "UNAVAILABLE: %v", body)
	}
	assert.Equal(t, int64(3), reached.Load(), "calls reaching the server")
	assert.Equal(t, int64(1), opened.Load(), "breaker openings")
}

// A failure in the trailers, after messages were sent (a server stream
// ending UNAVAILABLE), counts too.
func TestBreakerOpensOnGRPCUnavailableTrailer(t *testing.T) {
	inv := newInventory()
	var reached atomic.Int64
	addr := startGRPC(t, inv, nil, grpc.StreamInterceptor(
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			reached.Add(1)
			if err := h(srv, ss); err != nil {
				return err
			}
			return status.Error(codes.Unavailable, "lost the stock feed")
		}))
	breaker, opened := countingBreaker()
	gw := newGateway(t, addr, nil, breaker)
	watch := connect.NewClient[inventorypb.WatchStockRequest, inventorypb.StockLevel](http.DefaultClient,
		gw.URL+"/inventory.v1.InventoryService/WatchStock")
	for range 5 {
		req := connect.NewRequest(&inventorypb.WatchStockRequest{Sku: "sku-1"})
		req.Header().Set("X-Api-Key", apiKey)
		stream, err := watch.CallServerStream(t.Context(), req)
		require.NoError(t, err)
		for stream.Receive() {
		}
		assert.Equal(t, connect.CodeUnavailable, connect.CodeOf(stream.Err()), "%v", stream.Err())
		require.NoError(t, stream.Close())
	}
	assert.Equal(t, int64(3), reached.Load(), "calls reaching the server")
	assert.Equal(t, int64(1), opened.Load(), "breaker openings")
}

// Errors that are the caller's (NOT_FOUND) never open the breaker.
func TestBreakerIgnoresCallerErrors(t *testing.T) {
	inv := newInventory()
	addr := startGRPC(t, inv, nil)
	breaker, opened := countingBreaker()
	gw := newGateway(t, addr, nil, breaker)
	for range 5 {
		resp, _ := do(t, "GET", gw.URL+"/v1/items/no-such-sku", "", authed())
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	}
	assert.Equal(t, int64(5), inv.calls.Load())
	assert.Equal(t, int64(0), opened.Load())
}

// A client that goes away in the middle of a server stream does not
// count against the target, whatever the stream's end looks like.
func TestBreakerIgnoresAbandonedStreams(t *testing.T) {
	inv := newInventory()
	addr := startGRPC(t, inv, nil, grpc.StreamInterceptor(
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := h(srv, ss); err != nil {
				return err
			}
			<-ss.Context().Done() // the client goes away
			return status.Error(codes.Unavailable, "ended by the client going away")
		}))
	breaker, opened := countingBreaker()
	gw := newGateway(t, addr, nil, breaker)
	watch := connect.NewClient[inventorypb.WatchStockRequest, inventorypb.StockLevel](http.DefaultClient,
		gw.URL+"/inventory.v1.InventoryService/WatchStock")
	for range 5 {
		ctx, cancel := context.WithCancel(t.Context())
		req := connect.NewRequest(&inventorypb.WatchStockRequest{Sku: "sku-1"})
		req.Header().Set("X-Api-Key", apiKey)
		stream, err := watch.CallServerStream(ctx, req)
		require.NoError(t, err)
		require.True(t, stream.Receive(), "%v", stream.Err())
		cancel()
		for stream.Receive() {
		}
		_ = stream.Close()
	}
	assert.Equal(t, int64(5), inv.calls.Load())
	assert.Equal(t, int64(0), opened.Load(), "breaker openings")
}

// A client's malformed message (bytes passed on untouched when the
// client's codec is the upstream's) is answered INTERNAL by grpc-go, and
// one over the server's receive limit RESOURCE_EXHAUSTED. The breaker
// counted both: three bad requests from one client opened it for every
// client.
func TestBreakerIgnoresMalformedMessages(t *testing.T) {
	for name, req := range map[string]struct {
		body string
		h    http.Header
	}{
		"connect+proto garbage": {"\xff\xff\xff\xff", http.Header{"Content-Type": {"application/proto"}, "Connect-Protocol-Version": {"1"}}},
		"grpc-web truncated":    {"\x00\x00\x00\x00\x64abc", http.Header{"Content-Type": {"application/grpc-web+proto"}}},
		// Over the server's receive limit (1 KiB here, 4 MiB by default).
		"grpc-web over the server's limit": {"\x00\x00\x00\x08\x34" + strings.Repeat("\x0a\x05sku-1", 300), http.Header{"Content-Type": {"application/grpc-web+proto"}}},
	} {
		t.Run(name, func(t *testing.T) {
			breaker, opened := countingBreaker()
			gw := transcodingGateway(t, startGRPC(t, newInventory(), nil, grpc.MaxRecvMsgSize(1024)), gateway.Route{},
				func(u *gateway.Upstream) { u.Breaker = breaker })
			for range 3 {
				resp, _ := rawDo(t, "POST", gw.URL+"/inventory.v1.InventoryService/GetItem", strings.NewReader(req.body), req.h)
				t.Logf("the bad call: grpc-status %s %s", resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"))
			}
			resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, nil)
			assert.Equal(t, http.StatusOK, resp.StatusCode, "another client's call: %s", body)
			assert.Equal(t, int64(0), opened.Load(), "breaker openings")
		})
	}
}

// The route's Timeout goes to the server as grpc-timeout, but it is the
// gateway's deadline, not the client's: a DEADLINE_EXCEEDED that the
// server answers of its own (a call of its own timed out) still counts
// against the target, as it did before the route's deadline was sent.
func TestBreakerCountsUpstreamDeadlineUnderRouteTimeout(t *testing.T) {
	var reached atomic.Int64
	addr := startGRPC(t, newInventory(), nil, grpc.UnaryInterceptor(
		func(ctx context.Context, _ any, _ *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
			reached.Add(1)
			if _, ok := ctx.Deadline(); !ok {
				return nil, status.Error(codes.Internal, "no deadline came")
			}
			return nil, status.Error(codes.DeadlineExceeded, "the stock service timed out")
		}))
	breaker, opened := countingBreaker()
	gw := transcodingGateway(t, addr, gateway.Route{Timeout: 5 * time.Second}, func(u *gateway.Upstream) { u.Breaker = breaker })
	for range 5 {
		resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, nil)
		assert.Contains(t, []int{http.StatusGatewayTimeout, http.StatusServiceUnavailable}, resp.StatusCode, body)
	}
	assert.Equal(t, int64(3), reached.Load(), "calls reaching the server")
	assert.Equal(t, int64(1), opened.Load(), "breaker openings")
}

// Breaker.GRPCFailure chooses the codes that count: with INTERNAL
// counted, an upstream failing INTERNAL on its own opens the breaker;
// with UNAVAILABLE left out, a run of them does not.
func TestBreakerGRPCFailureChoosesCodes(t *testing.T) {
	for _, c := range []struct {
		code    codes.Code
		failure func(int) bool
		reached int64
		opened  int64
	}{
		{codes.Internal, func(code int) bool { return code == int(codes.Internal) }, 3, 1},
		{codes.Unavailable, func(code int) bool { return code == int(codes.Internal) }, 5, 0},
	} {
		t.Run(c.code.String(), func(t *testing.T) {
			var reached atomic.Int64
			addr := startGRPC(t, newInventory(), nil, grpc.UnaryInterceptor(
				func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
					reached.Add(1)
					return nil, status.Error(c.code, "failed")
				}))
			breaker, opened := countingBreaker()
			breaker.GRPCFailure = c.failure
			gw := newGateway(t, addr, nil, breaker)
			for range 5 {
				do(t, "GET", gw.URL+"/v1/items/sku-1", "", authed())
			}
			assert.Equal(t, c.reached, reached.Load(), "calls reaching the server")
			assert.Equal(t, c.opened, opened.Load(), "breaker openings")
		})
	}
}
