package transcode_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/inventorypb"
)

// WatchStock has a REST binding (GET /v1/items/{sku}:watch), which the
// gateway routes to the transcoder, but REST carries a server stream
// only as google.api.HttpBody: vanguard answered a plain GET, without
// any body or content type, 415 Unsupported Media Type. It is 501, with
// a google.rpc.Status saying what to do instead. A method of the same
// service bound the same way but unary is served.
func TestRESTServerStreamIsNotImplemented(t *testing.T) {
	inv := newInventory()
	gw := transcodingGateway(t, startGRPC(t, inv, nil), gateway.Route{}, nil)
	resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1:watch", nil, nil)
	assert.Equal(t, http.StatusNotImplemented, resp.StatusCode, body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, float64(connect.CodeUnimplemented), rpcCode(body), body)
	assert.Contains(t, body, "inventory.v1.InventoryService.WatchStock streams its response")
	assert.Zero(t, inv.calls.Load(), "calls reaching the server")

	// Other 415s stay 415: a content type vanguard does not take.
	resp, body = rawDo(t, "POST", gw.URL+"/inventory.v1.InventoryService/WatchStock", nil,
		http.Header{"Content-Type": {"application/connect+xml"}})
	assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, body)
	resp, body = rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
}

// watchOnce sends one stock level, then waits for the client to go away.
type watchOnce struct {
	*inventory
	gone chan struct{}
}

func (s *watchOnce) WatchStock(req *inventorypb.WatchStockRequest, stream grpc.ServerStreamingServer[inventorypb.StockLevel]) error {
	if err := stream.Send(&inventorypb.StockLevel{Sku: req.GetSku(), Stock: 1}); err != nil {
		return err
	}
	<-stream.Context().Done()
	close(s.gone)
	return stream.Context().Err()
}

// A server stream's first message reaches a Connect or gRPC-Web client at
// once (nothing buffers it), and the client's going away ends the gRPC
// server's stream.
func TestServerStreamFlushesAndEndsWithClient(t *testing.T) {
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		t.Run(name, func(t *testing.T) {
			inv := &watchOnce{inventory: newInventory(), gone: make(chan struct{})}
			gw := transcodingGateway(t, startGRPC(t, inv.inventory, nil, grpc.StreamInterceptor(
				func(_ any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, _ grpc.StreamHandler) error {
					var req inventorypb.WatchStockRequest
					if err := ss.RecvMsg(&req); err != nil {
						return err
					}
					return inv.WatchStock(&req, &grpc.GenericServerStream[inventorypb.WatchStockRequest, inventorypb.StockLevel]{ServerStream: ss})
				})), gateway.Route{}, nil)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			watch := connect.NewClient[inventorypb.WatchStockRequest, inventorypb.StockLevel](http.DefaultClient,
				gw.URL+"/inventory.v1.InventoryService/WatchStock", opts...)
			stream, err := watch.CallServerStream(ctx, connect.NewRequest(&inventorypb.WatchStockRequest{Sku: "sku-1"}))
			require.NoError(t, err)
			require.True(t, stream.Receive(), "the first message arrives while the stream is open: %v", stream.Err())
			cancel()
			select {
			case <-inv.gone:
			case <-time.After(10 * time.Second):
				t.Fatal("the gRPC server's stream did not end after the client went away")
			}
			_ = stream.Close()
		})
	}
}
