package transcode_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/transcode"
	"github.com/otelpatterns/patterns/internal/inventorypb"
)

// inventory is the gRPC service behind the gateway: two items, and a
// record of what reached it.
type inventory struct {
	inventorypb.UnimplementedInventoryServiceServer

	mu     sync.Mutex
	stock  map[string]int64
	calls  atomic.Int64
	traces []trace.SpanContext // the span context each call ran in
	md     []metadata.MD
}

func newInventory() *inventory {
	return &inventory{stock: map[string]int64{"sku-1": 10, "sku-2": 0}}
}

func (s *inventory) record(ctx context.Context) {
	s.calls.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.traces = append(s.traces, trace.SpanContextFromContext(ctx))
	s.md = append(s.md, md)
	s.mu.Unlock()
}

// spanContexts returns the span context each call ran in.
func (s *inventory) spanContexts() []trace.SpanContext {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]trace.SpanContext(nil), s.traces...)
}

// metadata returns the incoming metadata of each call.
func (s *inventory) metadata() []metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]metadata.MD(nil), s.md...)
}

func (s *inventory) GetItem(ctx context.Context, req *inventorypb.GetItemRequest) (*inventorypb.Item, error) {
	s.record(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.stock[req.GetSku()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-stock-source", "memory"))
	return &inventorypb.Item{Sku: req.GetSku(), Name: "Item " + req.GetSku(), Stock: n, PriceCents: 1250}, nil
}

func (s *inventory) Reserve(ctx context.Context, req *inventorypb.ReserveRequest) (*inventorypb.Reservation, error) {
	s.record(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.stock[req.GetSku()]
	switch {
	case !ok:
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	case req.GetQuantity() <= 0:
		return nil, status.Error(codes.InvalidArgument, "quantity must be positive")
	case n < req.GetQuantity():
		return nil, status.Errorf(codes.FailedPrecondition, "only %d left", n)
	}
	s.stock[req.GetSku()] = n - req.GetQuantity()
	return &inventorypb.Reservation{Sku: req.GetSku(), OrderId: req.GetOrderId(), Quantity: req.GetQuantity(), Remaining: n - req.GetQuantity()}, nil
}

func (s *inventory) WatchStock(req *inventorypb.WatchStockRequest, stream grpc.ServerStreamingServer[inventorypb.StockLevel]) error {
	s.record(stream.Context())
	for _, n := range []int64{10, 9, 8} {
		if err := stream.Send(&inventorypb.StockLevel{Sku: req.GetSku(), Stock: n}); err != nil {
			return err
		}
	}
	return nil
}

// startGRPC serves inv on a loopback port, with otelgrpc's stats handler
// recording spans into rec, and returns its address.
func startGRPC(t *testing.T, inv *inventory, tp trace.TracerProvider, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(propagation.TraceContext{}))))
	srv := grpc.NewServer(opts...)
	inventorypb.RegisterInventoryServiceServer(srv, inv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

func newRecorder(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, tp
}

// transcodingGateway serves a gateway, without middleware, whose routes
// (made from base) transcode the inventory service of the h2c upstream at
// addr; up adjusts the upstream, opts the transcoder.
func transcodingGateway(t *testing.T, addr string, base gateway.Route, up func(*gateway.Upstream), opts ...transcode.Option) *httptest.Server {
	t.Helper()
	srv := unstartedGateway(t, addr, base, up, opts...)
	srv.Start()
	return srv
}

// unstartedGateway is transcodingGateway's server before it starts,
// closed with the test.
func unstartedGateway(t *testing.T, addr string, base gateway.Route, up func(*gateway.Upstream), opts ...transcode.Option) *httptest.Server {
	t.Helper()
	tr, err := transcode.New("inventory", append([]transcode.Option{transcode.WithService("inventory.v1.InventoryService")}, opts...)...)
	require.NoError(t, err)
	u := gateway.Upstream{Name: "inventory", Targets: []gateway.Target{{URL: "http://" + addr}}, H2C: true}
	if up != nil {
		up(&u)
	}
	g, err := gateway.New(gateway.WithUpstreams(u), gateway.WithRoutes(tr.Routes(base)...))
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(g)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})
	return srv
}

// rawDo sends a request and returns the response with its whole body,
// which must read to its end. A body of type unknownLength goes chunked.
func rawDo(t *testing.T, method, url string, body io.Reader, h http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	require.NoError(t, err)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the answer's body reads to its end")
	return resp, string(b)
}

// unknownLength is a request body whose length net/http does not know,
// so that it goes chunked.
type unknownLength struct{ io.Reader }

// rpcCode is the "code" of a google.rpc.Status JSON body, or -1.
func rpcCode(body string) float64 {
	var st struct{ Code *float64 }
	if json.Unmarshal([]byte(body), &st) != nil || st.Code == nil {
		return -1
	}
	return *st.Code
}

// rawGRPC serves h over h2c (HTTP/2 without TLS) on a loopback port: a
// gRPC server that says what the test wants it to.
func rawGRPC(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// gzipped is s compressed with gzip.
func gzipped(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.String()
}

// emptyAnswer is an upstream handler that reads the call's body and
// answers OK with an empty message, counting its calls in reached.
func emptyAnswer(reached *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte{0, 0, 0, 0, 0})
		w.Header().Set("Grpc-Status", "0")
	})
}
