package transcode_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/transcode"
	"github.com/otelpatterns/patterns/internal/inventorypb"
)

// A body over the route's MaxBodyBytes is refused as RESOURCE_EXHAUSTED
// in the client's protocol: the gateway's own 413 reads as UNKNOWN to a
// Connect or gRPC-Web client (Connect: HTTP 500). The call does not
// reach the server and does not count against the target, whether the
// body's length is known up front or found out as it is sent.
func TestRouteBodyLimitIsResourceExhausted(t *testing.T) {
	inv := newInventory()
	breaker, opened := countingBreaker()
	gw := transcodingGateway(t, startGRPC(t, inv, nil), gateway.Route{MaxBodyBytes: 100},
		func(u *gateway.Upstream) { u.Breaker = breaker })
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		res := connect.NewClient[inventorypb.ReserveRequest, inventorypb.Reservation](http.DefaultClient,
			gw.URL+"/inventory.v1.InventoryService/Reserve", opts...)
		_, err := res.CallUnary(t.Context(), connect.NewRequest(&inventorypb.ReserveRequest{
			Sku: "sku-1", Quantity: 1, OrderId: strings.Repeat("x", 500)}))
		assert.Equal(t, connect.CodeResourceExhausted, connect.CodeOf(err), "%s: %v", name, err)
	}
	big := `{"quantity":1,"orderId":"` + strings.Repeat("x", 500) + `"}`
	json := http.Header{"Content-Type": {"application/json"}}
	for name, body := range map[string]io.Reader{"rest": strings.NewReader(big), "rest, chunked": unknownLength{strings.NewReader(big)}} {
		resp, got := rawDo(t, "POST", gw.URL+"/v1/items/sku-1:reserve", body, json)
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s: %s", name, got)
		assert.Equal(t, float64(connect.CodeResourceExhausted), rpcCode(got), "%s: %s", name, got)
	}
	assert.Zero(t, inv.calls.Load(), "calls reaching the server")
	assert.Zero(t, opened.Load(), "breaker openings")

	// Within the limit, chunked or not, the call goes through.
	small := `{"quantity":1,"orderId":"o-1"}`
	for name, body := range map[string]io.Reader{"rest": strings.NewReader(small), "rest, chunked": unknownLength{strings.NewReader(small)}} {
		resp, got := rawDo(t, "POST", gw.URL+"/v1/items/sku-1:reserve", body, json)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", name, got)
	}
}

// A Connect message over WithMaxMessageBytes fails, as documented, with
// RESOURCE_EXHAUSTED. Vanguard finds it too large as the gateway sends
// it, and the transport reported that as a failure of the target: a 502
// (UNAVAILABLE to the client) charged to the target, so that three of
// them opened the breaker for every client.
func TestOversizeMessageIsTheClients(t *testing.T) {
	inv := newInventory()
	breaker, opened := countingBreaker()
	gw := transcodingGateway(t, startGRPC(t, inv, nil), gateway.Route{},
		func(u *gateway.Upstream) { u.Breaker = breaker }, transcode.WithMaxMessageBytes(100))
	big := strings.Repeat("\x0a\x05sku-1", 20) // 140 bytes of a valid GetItemRequest
	proto := http.Header{"Content-Type": {"application/proto"}, "Connect-Protocol-Version": {"1"}}
	for range 2 {
		for name, body := range map[string]io.Reader{"length known": strings.NewReader(big), "chunked": unknownLength{strings.NewReader(big)}} {
			resp, got := rawDo(t, "POST", gw.URL+"/inventory.v1.InventoryService/GetItem", body, proto)
			assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s: %s", name, got)
			assert.Contains(t, got, `"code":"resource_exhausted"`, name)
		}
	}
	resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another client's call: %s", body)
	assert.Zero(t, opened.Load(), "breaker openings")
}

// A response message over WithMaxMessageBytes gets the client
// RESOURCE_EXHAUSTED, in full: vanguard wrote that error to the client,
// then failed the proxy's writes, on which ReverseProxy aborted the
// response, cutting the client's connection under the error.
func TestResponseOverLimitIsAnswered(t *testing.T) {
	gw := transcodingGateway(t, startGRPC(t, newInventory(), nil), gateway.Route{}, nil, transcode.WithMaxMessageBytes(40))
	for range 2 {
		resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, nil) // 68 bytes of JSON
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, body)
		assert.Equal(t, float64(connect.CodeResourceExhausted), rpcCode(body), body)
	}
}

// gzip is how a small request body becomes a large message: vanguard
// decompresses without any bound, and WithMaxMessageBytes did not apply
// to what came out. With the default 4 MiB, a 4 MiB body can inflate to
// about 4 GiB in the gateway's memory. Here an 8 KiB body would be an
// 8 MiB message, through a 1 MiB limit; it is refused before the
// upstream is called.
func TestDecompressedMessageIsBounded(t *testing.T) {
	var reached atomic.Int64
	upstream := emptyAnswer(&reached)
	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"),
		transcode.WithMaxMessageBytes(1<<20), transcode.WithUpstreamHandler(upstream))
	require.NoError(t, err)
	srv := httptest.NewServer(tr)
	t.Cleanup(srv.Close)
	bomb := gzipped(t, `{"quantity":1,"orderId":"`+strings.Repeat("x", 8<<20)+`"}`)
	for name, h := range map[string]http.Header{
		"rest":    {"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}},
		"connect": {"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}, "Connect-Protocol-Version": {"1"}},
	} {
		path := "/v1/items/sku-1:reserve"
		if name == "connect" {
			path = "/inventory.v1.InventoryService/Reserve"
		}
		resp, body := rawDo(t, "POST", srv.URL+path, strings.NewReader(bomb), h)
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s: %.200s", name, body)
		assert.Contains(t, body, "decompressed", name)
	}
	assert.Zero(t, reached.Load(), "an oversize message reached the upstream")

	// A gzip message inside an envelope (gRPC-Web) is decompressed by
	// vanguard, which stops at the limit too.
	msg := gzipped(t, "\x0a\x80\x80\x40"+strings.Repeat("x", 1<<20)) // GetItemRequest, sku of 1 MiB
	frame := make([]byte, 5, 5+len(msg))
	frame[0] = 1 // compressed
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	resp, body := rawDo(t, "POST", srv.URL+"/inventory.v1.InventoryService/GetItem", bytes.NewReader(append(frame, msg...)),
		http.Header{"Content-Type": {"application/grpc-web+proto"}, "Grpc-Encoding": {"gzip"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	st := resp.Header.Get("Grpc-Status")
	if st == "" {
		st = trailerStatus([]byte(body))
	}
	assert.Equal(t, "8", st, "RESOURCE_EXHAUSTED")
	assert.Contains(t, resp.Header.Get("Grpc-Message")+body, "decompressed message over the limit")
}

// A client that compresses its request (connect-go's WithSendGzip, a
// REST client's Content-Encoding: gzip, a gRPC-Web client's gzip
// messages) got UNIMPLEMENTED from a plain grpc-go server: vanguard took
// the upstream to accept gzip and sent it gzip, which grpc-go does not
// register by default.
func TestCompressedRequestToDefaultGRPCServer(t *testing.T) {
	gw := transcodingGateway(t, startGRPC(t, newInventory(), nil), gateway.Route{}, nil)
	for name, opts := range map[string][]connect.ClientOption{
		"connect":  {connect.WithSendGzip()},
		"grpc-web": {connect.WithSendGzip(), connect.WithGRPCWeb()},
	} {
		get := connect.NewClient[inventorypb.GetItemRequest, inventorypb.Item](http.DefaultClient,
			gw.URL+"/inventory.v1.InventoryService/GetItem", opts...)
		res, err := get.CallUnary(t.Context(), connect.NewRequest(&inventorypb.GetItemRequest{Sku: "sku-1"}))
		if assert.NoError(t, err, name) {
			assert.Equal(t, "sku-1", res.Msg.GetSku(), name)
		}
	}
	resp, body := rawDo(t, "POST", gw.URL+"/v1/items/sku-1:reserve", strings.NewReader(gzipped(t, `{"quantity":1}`)),
		http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}})
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
}

// WithUpstreamGzip passes a client's gzip messages on compressed, for
// an upstream that takes them; without it they go uncompressed.
func TestUpstreamGzipPassesMessagesCompressed(t *testing.T) {
	for _, tc := range []struct {
		opts []transcode.Option
		want string
	}{{nil, ""}, {[]transcode.Option{transcode.WithUpstreamGzip()}, "gzip"}} {
		encodings := make(chan string, 1)
		addr := rawGRPC(t, func(w http.ResponseWriter, r *http.Request) {
			encodings <- r.Header.Get("Grpc-Encoding")
			_, _ = io.Copy(io.Discard, r.Body)
			itemAnswer(t, w, map[string]string{"Grpc-Status": "0"})
		})
		gw := transcodingGateway(t, addr, gateway.Route{}, nil, tc.opts...)
		get := connect.NewClient[inventorypb.GetItemRequest, inventorypb.Item](http.DefaultClient,
			gw.URL+"/inventory.v1.InventoryService/GetItem", connect.WithSendGzip(), connect.WithGRPCWeb())
		_, err := get.CallUnary(t.Context(), connect.NewRequest(&inventorypb.GetItemRequest{Sku: "sku-1"}))
		require.NoError(t, err)
		assert.Equal(t, tc.want, <-encodings, "grpc-encoding sent upstream with %d options", len(tc.opts))
	}
}
