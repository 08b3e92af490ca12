package transcode_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

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
