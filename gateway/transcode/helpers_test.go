package transcode_test

import (
	"context"
	"net"
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
