package transcode_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/inventorypb"
)

// A REST client cannot forge the gRPC protocol's own headers: a
// grpc-timeout of 1ns (which would have the server answer
// DEADLINE_EXCEEDED, and open the breaker for every client) or a
// grpc-encoding are dropped before the call is made.
func TestRESTCannotForgeGRPCHeaders(t *testing.T) {
	inv := newInventory()
	addr := startGRPC(t, inv, nil)
	breaker, opened := countingBreaker()
	gw := newGateway(t, addr, nil, breaker)
	h := authed()
	h.Set("Grpc-Timeout", "1n")
	h.Set("Grpc-Encoding", "gzip")
	for range 5 {
		resp, body := do(t, "GET", gw.URL+"/v1/items/sku-1", "", h)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
		assert.Equal(t, "sku-1", body["sku"])
	}
	assert.Equal(t, int64(5), inv.calls.Load())
	assert.Equal(t, int64(0), opened.Load())
}

// A gRPC-Web client may set its own deadline (grpc-timeout): a call that
// misses it is answered DEADLINE_EXCEEDED, which is the client's choice
// and does not count against the target.
func TestClientDeadlineDoesNotOpenBreaker(t *testing.T) {
	inv := newInventory()
	addr := startGRPC(t, inv, nil)
	breaker, opened := countingBreaker()
	gw := newGateway(t, addr, nil, breaker)
	msg, err := proto.Marshal(&inventorypb.GetItemRequest{Sku: "sku-1"})
	require.NoError(t, err)
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)
	for range 5 {
		req, err := http.NewRequestWithContext(t.Context(), "POST",
			gw.URL+"/inventory.v1.InventoryService/GetItem", bytes.NewReader(frame))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/grpc-web+proto")
		req.Header.Set("Grpc-Timeout", "1n")
		req.Header.Set("X-Api-Key", apiKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		got := resp.Header.Get("Grpc-Status")
		if got == "" { // status in the body's trailer frame
			got = trailerStatus(body)
		}
		assert.Equal(t, "4", got, "DEADLINE_EXCEEDED")
	}
	assert.Equal(t, int64(0), opened.Load(), "breaker openings")
}

// trailerStatus finds grpc-status in a gRPC-Web body's trailer frame.
func trailerStatus(body []byte) string {
	for len(body) >= 5 {
		n := int(binary.BigEndian.Uint32(body[1:5]))
		if len(body) < 5+n {
			return ""
		}
		if body[0]&0x80 != 0 {
			for _, line := range bytes.Split(body[5:5+n], []byte("\r\n")) {
				if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.ToLower(k)) == "grpc-status" {
					return string(bytes.TrimSpace(v))
				}
			}
		}
		body = body[5+n:]
	}
	return ""
}

// The route's Timeout is the call's deadline: the gRPC server should
// learn it (grpc-timeout), to stop in time and pass it on to its own
// calls; none was sent. A client's own deadline, when it is the shorter,
// is the one sent.
func TestRouteDeadlineReachesUpstream(t *testing.T) {
	seen := make(chan time.Duration, 1) // the deadline the server got, from now; -1 for none
	addr := startGRPC(t, newInventory(), nil, grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			d := time.Duration(-1)
			if at, ok := ctx.Deadline(); ok {
				d = time.Until(at)
			}
			seen <- d
			return h(ctx, req)
		}))
	const timeout = 5 * time.Second
	gw := transcodingGateway(t, addr, gateway.Route{Timeout: timeout}, nil)
	for _, tc := range []struct {
		name     string
		h        http.Header
		min, max time.Duration
	}{
		{"the route's", nil, timeout - time.Second, timeout},
		{"the client's, shorter", http.Header{"X-Server-Timeout": {"1"}}, 0, time.Second}, // REST's, in seconds
		{"the route's, shorter than the client's", http.Header{"X-Server-Timeout": {"60"}}, timeout - time.Second, timeout},
	} {
		resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, tc.h)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		d := <-seen
		assert.True(t, d > tc.min && d <= tc.max, "%s: the server's deadline is %v away; want in (%v, %v]", tc.name, d, tc.min, tc.max)
	}

	// Without a Timeout, only the client's deadline goes.
	gw = transcodingGateway(t, addr, gateway.Route{}, nil)
	resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, time.Duration(-1), <-seen, "no deadline")
}

// A header whose name ends in -bin is binary metadata in gRPC, and must
// be base64. A REST (or Connect, or gRPC-Web) client's that is not was
// passed on as it was, and grpc-go refused the call as INTERNAL: a 500
// for the client's own malformed header. Base64 ones, padded or not, go
// through as the bytes they encode.
func TestMalformedBinHeaderIsInvalidArgument(t *testing.T) {
	inv := newInventory()
	gw := transcodingGateway(t, startGRPC(t, inv, nil), gateway.Route{}, nil)
	resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, http.Header{"X-Signature-Bin": {"not base64!"}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
	assert.Equal(t, float64(connect.CodeInvalidArgument), rpcCode(body), body)
	assert.Contains(t, body, "X-Signature-Bin")

	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		get := connect.NewClient[inventorypb.GetItemRequest, inventorypb.Item](http.DefaultClient,
			gw.URL+"/inventory.v1.InventoryService/GetItem", opts...)
		req := connect.NewRequest(&inventorypb.GetItemRequest{Sku: "sku-1"})
		req.Header().Set("X-Signature-Bin", "a===")
		_, err := get.CallUnary(t.Context(), req)
		assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%s: %v", name, err)
	}
	assert.Zero(t, inv.calls.Load(), "calls reaching the server")

	for _, v := range []string{"aGk=", "aGk", "aGVsbG8=", ""} {
		resp, body = rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, http.Header{"X-Signature-Bin": {v}})
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%q: %s", v, body)
	}
	var got []string
	for _, md := range inv.metadata() {
		got = append(got, strings.Join(md.Get("x-signature-bin"), ","))
	}
	assert.Equal(t, []string{"hi", "hi", "hello", ""}, got)
}
