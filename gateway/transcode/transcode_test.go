package transcode_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/gateway/transcode"
	"github.com/otelpatterns/patterns/internal/inventorypb"
)

const apiKey = "k3y-for-transcode-tests"

// newGateway serves, on a loopback port, a gateway whose routes
// transcode the inventory service of the upstream at addr (h2c), behind
// API-key auth.
func newGateway(t *testing.T, addr string, tp trace.TracerProvider, breaker *gateway.Breaker) *httptest.Server {
	t.Helper()
	authn, err := auth.New(auth.WithAPIKeys(auth.APIKey{Name: "web", Secret: apiKey}))
	require.NoError(t, err)
	t.Cleanup(authn.Close)
	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"))
	require.NoError(t, err)
	opts := []gateway.Option{
		gateway.WithUpstreams(gateway.Upstream{
			Name:    "inventory",
			Targets: []gateway.Target{{URL: "http://" + addr}},
			H2C:     true,
			Breaker: breaker,
		}),
		gateway.WithRoutes(tr.Routes(gateway.Route{Middleware: []gateway.Middleware{authn.Middleware()}})...),
	}
	if tp != nil {
		opts = append(opts, gateway.WithTracerProvider(tp))
	}
	g, err := gateway.New(opts...)
	require.NoError(t, err)
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})
	return srv
}

func do(t *testing.T, method, url, body string, header http.Header) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "body %q is JSON", raw)
	}
	return resp, out
}

func authed() http.Header { return http.Header{"X-Api-Key": {apiKey}} }

func TestPatterns(t *testing.T) {
	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"))
	require.NoError(t, err)
	assert.Equal(t, []string{"/inventory.v1.InventoryService/", "/v1/items/"}, tr.Patterns())
	routes := tr.Routes(gateway.Route{Upstream: "ignored", Pattern: "/ignored"})
	require.Len(t, routes, 2)
	for _, r := range routes {
		assert.Empty(t, r.Upstream)
		assert.Equal(t, tr, r.Handler)
	}
}

func TestREST(t *testing.T) {
	inv := newInventory()
	gw := newGateway(t, startGRPC(t, inv, nil), nil, nil)

	resp, body := do(t, "GET", gw.URL+"/v1/items/sku-1", "", authed())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "application/json")
	assert.Equal(t, map[string]any{"sku": "sku-1", "name": "Item sku-1", "stock": "10", "priceCents": "1250"}, body)
	// The gateway's headers reach the gRPC server as metadata.
	md := inv.metadata()
	require.Len(t, md, 1)
	assert.Equal(t, []string{resp.Header.Get("X-Request-Id")}, md[0].Get("x-request-id"))
	assert.NotEmpty(t, md[0].Get("x-forwarded-for"))

	resp, body = do(t, "POST", gw.URL+"/v1/items/sku-1:reserve", `{"quantity": 3, "orderId": "o-1"}`, authed())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]any{"sku": "sku-1", "orderId": "o-1", "quantity": "3", "remaining": "7"}, body)

	// gRPC errors become HTTP statuses as vanguard maps them, with a
	// google.rpc.Status as JSON.
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               float64
	}{
		{"GET", "/v1/items/nope", "", http.StatusNotFound, 5},
		{"POST", "/v1/items/sku-1:reserve", `{"quantity": 100}`, http.StatusBadRequest, 9},
		{"POST", "/v1/items/sku-1:reserve", `{"quantity": -1}`, http.StatusBadRequest, 3},
	} {
		resp, body = do(t, tc.method, gw.URL+tc.path, tc.body, authed())
		assert.Equal(t, tc.status, resp.StatusCode, "%s %s", tc.method, tc.path)
		assert.Contains(t, resp.Header.Get("Content-Type"), "application/json")
		assert.Equal(t, tc.code, body["code"], "%s %s: %v", tc.method, tc.path, body)
		assert.NotEmpty(t, body["message"])
	}
}

func TestConnectAndGRPCWeb(t *testing.T) {
	inv := newInventory()
	gw := newGateway(t, startGRPC(t, inv, nil), nil, nil)
	for name, opts := range map[string][]connect.ClientOption{
		"connect+json":  {connect.WithProtoJSON()},
		"connect+proto": nil,
		"grpc-web":      {connect.WithGRPCWeb()},
	} {
		t.Run(name, func(t *testing.T) {
			get := connect.NewClient[inventorypb.GetItemRequest, inventorypb.Item](http.DefaultClient,
				gw.URL+"/inventory.v1.InventoryService/GetItem", opts...)
			req := connect.NewRequest(&inventorypb.GetItemRequest{Sku: "sku-1"})
			req.Header().Set("X-Api-Key", apiKey)
			res, err := get.CallUnary(t.Context(), req)
			require.NoError(t, err)
			assert.Equal(t, "Item sku-1", res.Msg.GetName())
			assert.Equal(t, "memory", res.Trailer().Get("x-stock-source"), "the gRPC server's trailers reach the client")

			req = connect.NewRequest(&inventorypb.GetItemRequest{Sku: "nope"})
			req.Header().Set("X-Api-Key", apiKey)
			_, err = get.CallUnary(t.Context(), req)
			assert.Equal(t, connect.CodeNotFound, connect.CodeOf(err), "%v", err)

			watch := connect.NewClient[inventorypb.WatchStockRequest, inventorypb.StockLevel](http.DefaultClient,
				gw.URL+"/inventory.v1.InventoryService/WatchStock", opts...)
			sreq := connect.NewRequest(&inventorypb.WatchStockRequest{Sku: "sku-1"})
			sreq.Header().Set("X-Api-Key", apiKey)
			stream, err := watch.CallServerStream(t.Context(), sreq)
			require.NoError(t, err)
			var got []int64
			for stream.Receive() {
				got = append(got, stream.Msg().GetStock())
			}
			require.NoError(t, stream.Err())
			require.NoError(t, stream.Close())
			assert.Equal(t, []int64{10, 9, 8}, got)
		})
	}
}

// The gateway's auth runs before the transcoder: a request without a
// key is refused and never reaches the gRPC server.
func TestAuthBeforeUpstream(t *testing.T) {
	inv := newInventory()
	gw := newGateway(t, startGRPC(t, inv, nil), nil, nil)
	resp, _ := do(t, "GET", gw.URL+"/v1/items/sku-1", "", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = do(t, "GET", gw.URL+"/v1/items/sku-1", "", http.Header{"X-Api-Key": {"wrong-key-wrong-key"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	get := connect.NewClient[inventorypb.GetItemRequest, inventorypb.Item](http.DefaultClient,
		gw.URL+"/inventory.v1.InventoryService/GetItem")
	_, err := get.CallUnary(t.Context(), connect.NewRequest(&inventorypb.GetItemRequest{Sku: "sku-1"}))
	assert.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err), "%v", err)
	assert.Zero(t, inv.calls.Load(), "no refused request reached the gRPC server")
}

// With the upstream down, the gateway's breaker opens: the first calls
// fail to connect (502), then the breaker answers at once (503), and the
// client sees UNAVAILABLE either way.
func TestBreakerOpensWhenUpstreamDown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close()) // nothing listens there now

	var opened int
	breaker := &gateway.Breaker{Options: []circuitbreaker.Option{
		circuitbreaker.WithConsecutiveFailures(3),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			if c.To == circuitbreaker.StateOpen {
				opened++
			}
		}),
	}}
	gw := newGateway(t, addr, nil, breaker)
	// Every answer is UNAVAILABLE (HTTP 503) to the client; the message
	// says which of the gateway's errors it was: 502 while the attempts
	// fail to connect, 503 (with Retry-After) once the breaker is open
	// and the request is not sent at all.
	var seen []string
	for range 5 {
		resp, body := do(t, "GET", gw.URL+"/v1/items/sku-1", "", authed())
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, float64(14), body["code"], "UNAVAILABLE: %v", body)
		msg, _ := body["message"].(string)
		switch {
		case strings.Contains(msg, "502"):
			seen = append(seen, "502")
		case strings.Contains(msg, "503") && resp.Header.Get("Retry-After") != "":
			seen = append(seen, "503")
		default:
			seen = append(seen, msg)
		}
	}
	assert.Equal(t, []string{"502", "502", "502", "503", "503"}, seen)
	assert.Equal(t, 1, opened)

	get := connect.NewClient[inventorypb.GetItemRequest, inventorypb.Item](http.DefaultClient,
		gw.URL+"/inventory.v1.InventoryService/GetItem", connect.WithGRPCWeb())
	req := connect.NewRequest(&inventorypb.GetItemRequest{Sku: "sku-1"})
	req.Header().Set("X-Api-Key", apiKey)
	_, err = get.CallUnary(t.Context(), req)
	assert.Equal(t, connect.CodeUnavailable, connect.CodeOf(err), "%v", err)
	var ce *connect.Error
	require.True(t, errors.As(err, &ce))
}

// The client's trace context reaches the gRPC server through the
// gateway: the server's span is a child of the gateway's client span,
// itself a child of the gateway's server span, in the client's trace.
func TestTraceContextReachesServer(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	rec, tp := newRecorder(t)
	inv := newInventory()
	gw := newGateway(t, startGRPC(t, inv, tp), tp, nil)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, _ := do(t, "GET", gw.URL+"/v1/items/sku-1", "", http.Header{
		"X-Api-Key":   {apiKey},
		"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"},
	})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	traces := inv.spanContexts()
	require.Len(t, traces, 1)
	assert.Equal(t, traceID, traces[0].TraceID().String(), "the handler runs in the client's trace")

	gw.Close() // waits for the gateway's handlers, so their spans have ended
	// The gRPC server's span ends on the server's goroutine once the
	// answer is written, which may be after the client has read it.
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(rec.Ended(), func(s sdktrace.ReadOnlySpan) bool {
			return s.Name() == "inventory.v1.InventoryService/GetItem"
		})
	}, 10*time.Second, time.Millisecond, "the gRPC server's span ends")

	// The chain of spans: the gateway's server span (named by the route,
	// with http.route), its client span to the upstream, the otelgrpc
	// server span, in which the handler ran.
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var grpcSpan sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		byID[s.SpanContext().SpanID()] = s
		if s.Name() == "inventory.v1.InventoryService/GetItem" {
			grpcSpan = s
		}
	}
	require.NotNil(t, grpcSpan, "the gRPC server made a span")
	assert.Equal(t, traces[0].SpanID(), grpcSpan.SpanContext().SpanID())
	assert.Equal(t, traceID, grpcSpan.SpanContext().TraceID().String())
	client := byID[grpcSpan.Parent().SpanID()]
	require.NotNil(t, client, "the gRPC server span's parent is recorded")
	assert.Equal(t, trace.SpanKindClient, client.SpanKind())
	assert.Equal(t, "POST", client.Name(), "the gateway's attempt, a POST of gRPC over HTTP/2")
	server := byID[client.Parent().SpanID()]
	require.NotNil(t, server, "the client span's parent is recorded")
	assert.Equal(t, trace.SpanKindServer, server.SpanKind())
	assert.Equal(t, "GET /v1/items/", server.Name())
	attrs := attribute.NewSet(server.Attributes()...)
	route, _ := attrs.Value(semconv.HTTPRouteKey)
	assert.Equal(t, "/v1/items/", route.AsString())
	method, _ := attrs.Value(semconv.HTTPRequestMethodKey)
	assert.Equal(t, "GET", method.AsString(), "the client's method, not the upstream's POST")
}
