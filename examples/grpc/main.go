// Command grpc shows a gRPC service protected on both sides, and the same
// service reached from a browser's side through the API gateway.
//
// In one process, on 127.0.0.1, it starts:
//
//   - the inventory gRPC server (internal/inventorypb), with a load
//     shedding interceptor in front of its handlers
//     (grpcbreaker.UnaryServerInterceptor, at most 32 calls at once) and
//     the grpc.health.v1 service fed by a hexagonal.Health
//     (hexagonal/grpchealth);
//   - a client with, from the outside in, retries (grpcretry: safe
//     methods only, from the proto's idempotency_level), a circuit
//     breaker per method (grpcbreaker) and otelgrpc, which makes a client
//     span per attempt and carries the trace context in metadata;
//   - an API gateway whose routes transcode REST/JSON, gRPC-Web and
//     Connect to the gRPC upstream (gateway/transcode, over h2c).
//
// The fault script: the server answers Unavailable to one attempt (the
// retry hides it); then it is down for a while: each call is retried and
// fails, the breaker opens and rejects calls without sending them, the
// health service says NOT_SERVING; then the server recovers, the breaker
// lets a probe through and closes. The program prints each call's
// outcome, the breaker's state changes, the health, the span tree of the
// retried call, and the same service reached through the gateway as
// curl would show it. Run it from the repository root:
//
//	go run ./examples/grpc
//
// With -telemetry=json every span and metric is written to stderr as
// JSON at the end.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/circuitbreaker/grpcbreaker"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/transcode"
	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/hexagonal/grpchealth"
	"github.com/otelpatterns/patterns/internal/inventorypb"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

// scopeName is the instrumentation scope of the program's own spans.
const scopeName = "github.com/otelpatterns/patterns/examples/grpc"

// serviceName is the inventory's gRPC service, also its health service
// name.
const serviceName = "inventory.v1.InventoryService"

// openFor is how long the client's breaker stays open before a probe.
const openFor = 150 * time.Millisecond

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, exampleotel.JSONOut())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc example:", err)
		os.Exit(1)
	}
}

// server is the inventory service with a switch for the fault script:
// failNext attempts answer Unavailable, and while down every attempt does.
type server struct {
	inventorypb.UnimplementedInventoryServiceServer

	down     atomic.Bool
	failNext atomic.Int64
	attempts atomic.Int64 // calls that reached the handler

	mu    sync.Mutex
	stock map[string]int64
	names map[string]string
}

func newServer() *server {
	return &server{
		stock: map[string]int64{"sku-1": 12, "sku-2": 3},
		names: map[string]string{"sku-1": "Espresso cup", "sku-2": "Moka pot"},
	}
}

func (s *server) fault() error {
	s.attempts.Add(1)
	if s.down.Load() {
		return status.Error(codes.Unavailable, "inventory database is down")
	}
	if s.failNext.Load() > 0 && s.failNext.Add(-1) >= 0 {
		return status.Error(codes.Unavailable, "inventory database connection reset")
	}
	return nil
}

func (s *server) GetItem(_ context.Context, req *inventorypb.GetItemRequest) (*inventorypb.Item, error) {
	if err := s.fault(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.stock[req.GetSku()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	}
	return &inventorypb.Item{Sku: req.GetSku(), Name: s.names[req.GetSku()], Stock: n, PriceCents: 1250}, nil
}

func (s *server) Reserve(_ context.Context, req *inventorypb.ReserveRequest) (*inventorypb.Reservation, error) {
	if err := s.fault(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.stock[req.GetSku()]
	switch {
	case !ok:
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	case req.GetQuantity() <= 0:
		return nil, status.Error(codes.InvalidArgument, "quantity must be positive")
	case n < req.GetQuantity():
		return nil, status.Errorf(codes.FailedPrecondition, "only %d left of %q", n, req.GetSku())
	}
	s.stock[req.GetSku()] = n - req.GetQuantity()
	return &inventorypb.Reservation{Sku: req.GetSku(), OrderId: req.GetOrderId(), Quantity: req.GetQuantity(), Remaining: n - req.GetQuantity()}, nil
}

func (s *server) WatchStock(req *inventorypb.WatchStockRequest, stream grpc.ServerStreamingServer[inventorypb.StockLevel]) error {
	if err := s.fault(); err != nil {
		return err
	}
	s.mu.Lock()
	n := s.stock[req.GetSku()]
	s.mu.Unlock()
	return stream.Send(&inventorypb.StockLevel{Sku: req.GetSku(), Stock: n})
}

// run plays the script, writing what happens to out and, when tel is not
// nil, every span and metric to tel as JSON. It returns once everything
// it started has stopped.
func run(ctx context.Context, out, tel io.Writer) (err error) {
	otelp, err := exampleotel.New(ctx, "grpc-example", tel)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := otelp.Shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutting down telemetry: %w", serr))
		}
	}()
	tp, mp := otelp.Tracer, otelp.Meter
	prop := propagation.TraceContext{}

	// The server: health fed by a readiness check that follows the fault.
	inv := newServer()
	health, err := hexagonal.NewHealth(
		// Every probe runs the check, so that the script is repeatable; a
		// real service keeps the default (results reused for 1s).
		hexagonal.WithCheckInterval(0),
		hexagonal.WithMeterProvider(mp),
		hexagonal.WithLogger(discardLogger()),
		hexagonal.WithReadinessCheck("stock-db", func(context.Context) error {
			if inv.down.Load() {
				return errors.New("stock database unreachable")
			}
			return nil
		}))
	if err != nil {
		return err
	}
	hs, err := grpchealth.New(health, grpchealth.WithService(serviceName, "stock-db"))
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(mp), otelgrpc.WithPropagators(prop))),
		grpc.ChainUnaryInterceptor(grpcbreaker.UnaryServerInterceptor(grpcbreaker.WithMaxConcurrent(32))),
		grpc.ChainStreamInterceptor(grpcbreaker.StreamServerInterceptor(grpcbreaker.WithMaxConcurrent(32))),
	)
	inventorypb.RegisterInventoryServiceServer(srv, inv)
	healthpb.RegisterHealthServer(srv, hs)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	defer func() {
		hs.Shutdown() // ends Watch streams, or GracefulStop would wait for them
		srv.GracefulStop()
		<-served
	}()
	addr := lis.Addr().String()
	fmt.Fprintf(out, "inventory gRPC server on %s (load shedding above 32 calls in flight, grpc.health.v1)\n\n", addr)

	// The client: retry outside, a breaker per method inside, otelgrpc
	// under both, so each attempt is a span and counts for the breaker.
	var changes []string
	var changesMu sync.Mutex
	group := circuitbreaker.NewGroup(
		circuitbreaker.WithConsecutiveFailures(4),
		circuitbreaker.WithOpenDuration(openFor),
		circuitbreaker.WithOpenJitter(0),
		circuitbreaker.WithMeterProvider(mp),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			changesMu.Lock()
			changes = append(changes, fmt.Sprintf("%s → %s", c.From, c.To))
			changesMu.Unlock()
		}),
	)
	retrier := retry.New(
		retry.WithName("inventory"),
		retry.WithMaxAttempts(3),
		retry.WithBackoff(retry.Exponential(5*time.Millisecond, 2, 20*time.Millisecond)),
		retry.WithTracerProvider(tp),
		retry.WithMeterProvider(mp),
	)
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(mp), otelgrpc.WithPropagators(prop))),
		grpc.WithChainUnaryInterceptor(
			grpcretry.UnaryClientInterceptor(retrier),
			grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(group)),
		),
	)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := inventorypb.NewInventoryServiceClient(conn)
	healthClient := healthpb.NewHealthClient(conn)
	tracer := tp.Tracer(scopeName)

	// call makes one GetItem in a span of its own and prints its outcome.
	n := 0
	call := func(sku string) (trace.TraceID, error) {
		n++
		cctx, span := tracer.Start(ctx, "get item", trace.WithAttributes(attribute.String("inventory.sku", sku)))
		before := inv.attempts.Load()
		item, err := client.GetItem(cctx, &inventorypb.GetItemRequest{Sku: sku})
		span.End()
		sent := inv.attempts.Load() - before
		changesMu.Lock()
		ch := strings.Join(changes, ", ")
		changes = nil
		changesMu.Unlock()
		line := fmt.Sprintf("  call %2d: ", n)
		switch {
		case err == nil:
			line += fmt.Sprintf("ok       %s, %d in stock", item.GetName(), item.GetStock())
		case errors.Is(err, circuitbreaker.ErrOpen) || errors.Is(err, circuitbreaker.ErrTooManyRequests):
			line += fmt.Sprintf("rejected %s (breaker open, not sent)", status.Code(err))
		default:
			line += fmt.Sprintf("failed   %s: %s", status.Code(err), status.Convert(err).Message())
		}
		line += fmt.Sprintf("  [attempts reaching the server: %d]", sent)
		if ch != "" {
			line += "  breaker " + ch
		}
		fmt.Fprintln(out, line)
		return span.SpanContext().TraceID(), err
	}
	checkHealth := func() {
		resp, err := healthClient.Check(ctx, &healthpb.HealthCheckRequest{Service: serviceName})
		if err != nil {
			fmt.Fprintf(out, "  health %s: %v\n", serviceName, err)
			return
		}
		fmt.Fprintf(out, "  health %s: %s\n", serviceName, resp.GetStatus())
	}

	fmt.Fprintln(out, "1. the server is up")
	checkHealth()
	if _, err := call("sku-1"); err != nil {
		return fmt.Errorf("first call: %w", err)
	}

	fmt.Fprintln(out, "\n2. one attempt fails with Unavailable: the retry hides it")
	inv.failNext.Store(1)
	retried, err := call("sku-1")
	if err != nil {
		return fmt.Errorf("retried call: %w", err)
	}

	fmt.Fprintln(out, "\n3. the server is down: retries fail, the breaker opens and rejects calls")
	inv.down.Store(true)
	for range 5 {
		_, _ = call("sku-1")
	}
	checkHealth()

	fmt.Fprintln(out, "\n4. the server recovers: after the open time a probe goes through and the breaker closes")
	inv.down.Store(false)
	time.Sleep(openFor + 20*time.Millisecond)
	for range 3 {
		_, _ = call("sku-1")
	}
	checkHealth()
	if st := group.Get("/" + serviceName + "/GetItem").State(); st != circuitbreaker.StateClosed {
		return fmt.Errorf("breaker %v after recovery; want closed", st)
	}

	fmt.Fprintln(out, "\n5. the span tree of the retried call (2.)")
	exampleotel.Tree{
		Attrs:       []attribute.Key{semconv.RPCResponseStatusCodeKey},
		NoDurations: true,
	}.Print(out, "  ", otelp.Spans.Trace(retried))

	// The gateway: REST/JSON, gRPC-Web and Connect in front of the same
	// server.
	fmt.Fprintln(out, "\n6. the same service through the gateway, as REST/JSON")
	if err := throughGateway(ctx, out, addr, tp, mp); err != nil {
		return err
	}
	return nil
}

// throughGateway serves a gateway on a loopback port whose routes
// transcode the inventory's REST paths (and gRPC-Web and Connect) to the
// gRPC server at addr over h2c, and calls them as curl would.
func throughGateway(ctx context.Context, out io.Writer, addr string, tp trace.TracerProvider, mp metric.MeterProvider) error {
	tr, err := transcode.New("inventory", transcode.WithService(serviceName))
	if err != nil {
		return err
	}
	g, err := gateway.New(
		gateway.WithTracerProvider(tp),
		gateway.WithMeterProvider(mp),
		gateway.WithUpstreams(gateway.Upstream{
			Name:    "inventory",
			Targets: []gateway.Target{{URL: "http://" + addr}},
			H2C:     true,
			Breaker: &gateway.Breaker{},
		}),
		gateway.WithRoutes(tr.Routes(gateway.Route{Timeout: 5 * time.Second})...),
	)
	if err != nil {
		return err
	}
	defer g.Close()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hsrv := &http.Server{Handler: g, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hsrv.Serve(lis)
	}()
	defer func() {
		_ = hsrv.Shutdown(context.WithoutCancel(ctx))
		<-served
	}()
	base := "http://" + lis.Addr().String()
	fmt.Fprintf(out, "  gateway on %s, routes %s → upstream inventory (h2c)\n", base, strings.Join(tr.Patterns(), ", "))

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/items/sku-1", ""},
		{"POST", "/v1/items/sku-2:reserve", `{"quantity":2,"orderId":"o-17"}`},
		{"POST", "/v1/items/sku-2:reserve", `{"quantity":5,"orderId":"o-18"}`},
		{"GET", "/v1/items/sku-9", ""},
	} {
		if err := curl(ctx, out, client, c.method, base+c.path, c.body); err != nil {
			return err
		}
	}
	return nil
}

// curl sends a request and prints it and its answer as curl -i would
// (the headers that matter).
func curl(ctx context.Context, out io.Writer, client *http.Client, method, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	line := "  $ curl -i"
	if method != "GET" {
		line += " -X " + method
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
		line += fmt.Sprintf(" -H 'Content-Type: application/json' -d '%s'", body)
	}
	fmt.Fprintf(out, "%s %s\n", line, url)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %s %s\n  Content-Type: %s\n\n  %s\n\n", resp.Proto, resp.Status, resp.Header.Get("Content-Type"), strings.TrimSpace(string(raw)))
	return nil
}

// discardLogger keeps the health's logs (a check failing) out of the
// program's output, which says it already.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
