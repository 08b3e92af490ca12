package transcode_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

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
