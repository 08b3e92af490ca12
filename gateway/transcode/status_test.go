package transcode_test

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/transcode"
	"github.com/otelpatterns/patterns/internal/inventorypb"
)

// itemAnswer writes a gRPC answer of one Item message, then the given
// trailers.
func itemAnswer(t *testing.T, w http.ResponseWriter, trailers map[string]string) {
	msg, err := proto.Marshal(&inventorypb.Item{Sku: "sku-1", Name: "Item sku-1"})
	require.NoError(t, err)
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	w.Header().Set("Content-Type", "application/grpc")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(frame, msg...))
	for k, v := range trailers {
		w.Header().Set(http.TrailerPrefix+k, v)
	}
}

// A grpc-status outside 0..16 is UNKNOWN (the gRPC spec), HTTP 500. In
// vanguard it indexes the code->HTTP table past its end and panics,
// dropping the client's connection instead.
func TestOutOfRangeGRPCStatusIsUnknown(t *testing.T) {
	trailersOnly := startGRPC(t, newInventory(), nil, grpc.UnaryInterceptor(
		func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
			return nil, status.Error(codes.Code(17), "a code from a newer server")
		}))
	inTrailers := rawGRPC(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		itemAnswer(t, w, map[string]string{"Grpc-Status": "17", "Grpc-Message": "late"})
	})
	connectJSON := http.Header{"Content-Type": {"application/json"}, "Connect-Protocol-Version": {"1"}}
	for _, tc := range []struct {
		name, addr string
		h          http.Header
	}{
		{"headers, rest", trailersOnly, nil},
		{"headers, connect", trailersOnly, connectJSON},
		{"trailers, rest", inTrailers, nil},
		{"trailers, connect", inTrailers, connectJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := transcodingGateway(t, tc.addr, gateway.Route{}, nil)
			method, path, body := "GET", "/v1/items/sku-1", ""
			if tc.h != nil {
				method, path, body = "POST", "/inventory.v1.InventoryService/GetItem", `{"sku":"sku-1"}`
			}
			req, err := http.NewRequestWithContext(t.Context(), method, gw.URL+path, strings.NewReader(body))
			require.NoError(t, err)
			for k, v := range tc.h {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err, "the client gets an answer")
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "%s", b)
			if tc.h == nil {
				assert.Equal(t, float64(codes.Unknown), rpcCode(string(b)), "%s", b)
			} else {
				assert.Contains(t, string(b), `"code":"unknown"`)
			}
		})
	}
}

// A grpc-message with a % that starts no escape (a server that sends
// "50% off" as it is) keeps its status, as the gRPC spec has a receiver
// do: vanguard would answer INTERNAL (500) instead of the server's
// NOT_FOUND (404).
func TestStrayPercentInGRPCMessageKeepsStatus(t *testing.T) {
	trailersOnly := rawGRPC(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "5")
		w.Header().Set("Grpc-Message", "no item: 50% off sale ended %41")
		w.WriteHeader(http.StatusOK)
	})
	inTrailers := rawGRPC(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		itemAnswer(t, w, map[string]string{"Grpc-Status": "5", "Grpc-Message": "no item: 50% off sale ended %41"})
	})
	for name, addr := range map[string]string{"headers": trailersOnly, "trailers": inTrailers} {
		t.Run(name, func(t *testing.T) {
			gw := transcodingGateway(t, addr, gateway.Route{}, nil)
			resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, nil)
			assert.Equal(t, http.StatusNotFound, resp.StatusCode, body)
			assert.Equal(t, float64(codes.NotFound), rpcCode(body), body)
			assert.Contains(t, body, "no item: 50% off sale ended A", "the message as sent, its valid escape decoded")
		})
	}
}

// When the route's Timeout runs out, the call has exceeded its deadline:
// DEADLINE_EXCEEDED, HTTP 504 for REST (google.rpc's mapping, and what
// the gateway answers on any other route). The gateway's 504 read as an
// HTTP status is UNAVAILABLE (503), a code that gRPC and Connect clients
// take as safe to retry, though the upstream may have run the call.
func TestRouteTimeoutIsDeadlineExceeded(t *testing.T) {
	addr := startGRPC(t, newInventory(), nil, grpc.UnaryInterceptor(
		func(ctx context.Context, _ any, _ *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}))
	gw := transcodingGateway(t, addr, gateway.Route{Timeout: 200 * time.Millisecond}, nil)
	resp, body := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, nil)
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, body)
	assert.Equal(t, float64(codes.DeadlineExceeded), rpcCode(body), body)

	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		get := connect.NewClient[inventorypb.GetItemRequest, inventorypb.Item](http.DefaultClient,
			gw.URL+"/inventory.v1.InventoryService/GetItem", opts...)
		_, err := get.CallUnary(t.Context(), connect.NewRequest(&inventorypb.GetItemRequest{Sku: "sku-1"}))
		assert.Equal(t, connect.CodeDeadlineExceeded, connect.CodeOf(err), "%s: %v", name, err)
	}
}

// The gateway's own answers (and those of a handler or intermediary
// behind the transcoder) are not gRPC: each becomes the gRPC status
// that says why, its headers kept, rather than what gRPC's mapping of
// HTTP statuses makes of it (UNKNOWN for 413, UNAVAILABLE for 429 and
// 504, INTERNAL for 400).
func TestGatewayAnswersBecomeGRPCStatuses(t *testing.T) {
	for _, tc := range []struct {
		status   int
		header   string // kept from the answer
		code     connect.Code
		restCode int
	}{
		{http.StatusBadRequest, "", connect.CodeInvalidArgument, 400},
		{http.StatusUnauthorized, "Www-Authenticate", connect.CodeUnauthenticated, 401},
		{http.StatusForbidden, "", connect.CodePermissionDenied, 403},
		{http.StatusRequestTimeout, "", connect.CodeDeadlineExceeded, 504},
		{http.StatusRequestEntityTooLarge, "", connect.CodeResourceExhausted, 429},
		{http.StatusTooManyRequests, "Retry-After", connect.CodeResourceExhausted, 429},
		{http.StatusTooManyRequests, "Ratelimit-Policy", connect.CodeResourceExhausted, 429},
		{gateway.StatusClientClosedRequest, "", connect.CodeCanceled, 499},
		{http.StatusBadGateway, "", connect.CodeUnavailable, 503},
		{http.StatusServiceUnavailable, "Retry-After", connect.CodeUnavailable, 503},
		{http.StatusGatewayTimeout, "", connect.CodeDeadlineExceeded, 504},
	} {
		t.Run(http.StatusText(tc.status)+" "+tc.header, func(t *testing.T) {
			tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"),
				transcode.WithUpstreamHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tc.header != "" {
						w.Header().Set(tc.header, "kept")
					}
					http.Error(w, http.StatusText(tc.status), tc.status)
				})))
			require.NoError(t, err)
			srv := httptest.NewServer(tr)
			t.Cleanup(srv.Close)

			resp, body := rawDo(t, "GET", srv.URL+"/v1/items/sku-1", nil, nil)
			assert.Equal(t, tc.restCode, resp.StatusCode, body)
			assert.Equal(t, float64(tc.code), rpcCode(body), body)
			if tc.header != "" {
				assert.Equal(t, "kept", resp.Header.Get(tc.header), "REST")
			}

			get := connect.NewClient[inventorypb.GetItemRequest, inventorypb.Item](http.DefaultClient,
				srv.URL+"/inventory.v1.InventoryService/GetItem")
			_, err = get.CallUnary(t.Context(), connect.NewRequest(&inventorypb.GetItemRequest{Sku: "sku-1"}))
			assert.Equal(t, tc.code, connect.CodeOf(err), "connect: %v", err)
			assert.Contains(t, err.Error(), strconv.Itoa(tc.status), "the message names the HTTP status")
			if ce := new(connect.Error); tc.header != "" && assert.ErrorAs(t, err, &ce) {
				assert.Equal(t, "kept", ce.Meta().Get(tc.header), "connect")
			}
		})
	}
}

// A grpc-go server resets the stream once the grpc-timeout it was sent
// runs out, which can reach the gateway before the gateway's own timer
// for the route's Timeout goes off: the gateway's 502 then stands for a
// call that ran out of time, DEADLINE_EXCEEDED, not UNAVAILABLE. A 502
// before the deadline is the target's failure.
func TestBadGatewayPastDeadlineIsDeadlineExceeded(t *testing.T) {
	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"),
		transcode.WithUpstreamHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		})))
	require.NoError(t, err)
	for _, tc := range []struct {
		left time.Duration // until the request's deadline
		code connect.Code
		rest int
	}{{-time.Millisecond, connect.CodeDeadlineExceeded, 504}, {time.Hour, connect.CodeUnavailable, 503}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithDeadline(context.WithoutCancel(r.Context()), time.Now().Add(tc.left))
			defer cancel()
			tr.ServeHTTP(w, r.WithContext(ctx))
		}))
		t.Cleanup(srv.Close)
		resp, body := rawDo(t, "GET", srv.URL+"/v1/items/sku-1", nil, nil)
		assert.Equal(t, tc.rest, resp.StatusCode, "%v left: %s", tc.left, body)
		assert.Equal(t, float64(tc.code), rpcCode(body), "%v left: %s", tc.left, body)
	}
}
