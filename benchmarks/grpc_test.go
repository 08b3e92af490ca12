package benchmarks

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	fscircuitbreaker "github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafegrpc"
	mwretry "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/circuitbreaker/grpcbreaker"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

// grpcUnaryMethod is the method every row calls.
const grpcUnaryMethod = "/grpc.testing.TestService/UnaryCall"

// grpcServer answers UnaryCall at once, after failing the number of calls
// set in fail with Unavailable.
type grpcServer struct {
	testpb.UnimplementedTestServiceServer
	fail  atomic.Int64
	calls atomic.Int64
}

func (s *grpcServer) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	if s.fail.Add(-1) >= 0 {
		return nil, status.Error(codes.Unavailable, "scripted")
	}
	s.fail.Store(0)
	return &testpb.SimpleResponse{}, nil
}

// startGRPCServer serves a grpcServer on loopback TCP until the test or
// benchmark ends.
func startGRPCServer(tb testing.TB) (*grpcServer, string) {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &grpcServer{}
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	tb.Cleanup(func() { gs.Stop(); <-done })
	return srv, lis.Addr().String()
}

// grpcClients are the rows of BenchmarkGRPC: the interceptors each
// implementation puts on the connection. Every retry policy makes at most
// 3 attempts, retries Unavailable, and waits nothing between attempts, so
// that TestGRPCClientsBehaveAlike can check that they do the same work.
// Policies, executors and breakers are built once per connection, as a
// user builds them.
var grpcClients = []struct {
	name         string
	interceptors func() []grpc.UnaryClientInterceptor
}{
	// bare: no interceptor; the reference row.
	{"bare", func() []grpc.UnaryClientInterceptor { return nil }},
	// otelpatterns: grpcretry outside grpcbreaker (breaker per method),
	// global no-op OTel providers, as the package docs compose them.
	{"otelpatterns", func() []grpc.UnaryClientInterceptor {
		return []grpc.UnaryClientInterceptor{
			grpcretry.UnaryClientInterceptor(zeroDelayRetrier(), grpcretry.WithMethods(grpcUnaryMethod)),
			grpcbreaker.UnaryClientInterceptor(),
		}
	}},
	{"otelpatterns-retry", func() []grpc.UnaryClientInterceptor {
		return []grpc.UnaryClientInterceptor{grpcretry.UnaryClientInterceptor(zeroDelayRetrier(), grpcretry.WithMethods(grpcUnaryMethod))}
	}},
	{"otelpatterns-breaker", func() []grpc.UnaryClientInterceptor {
		return []grpc.UnaryClientInterceptor{grpcbreaker.UnaryClientInterceptor()}
	}},
	// grpcmiddleware-retry: go-grpc-middleware/v2's retry interceptor.
	{"grpcmiddleware-retry", func() []grpc.UnaryClientInterceptor {
		return []grpc.UnaryClientInterceptor{mwretry.UnaryClientInterceptor(
			mwretry.WithMax(3), mwretry.WithCodes(codes.Unavailable), mwretry.WithBackoff(mwretry.BackoffLinear(0)))}
	}},
	// failsafe: failsafegrpc's interceptor with its gRPC retry policy
	// (no delay, 2 retries by default) outside a circuit breaker with
	// a threshold of 5 consecutive failures (its default, 1, would open on
	// the first failure), as otelpatterns' row composes them.
	{"failsafe", func() []grpc.UnaryClientInterceptor {
		return []grpc.UnaryClientInterceptor{failsafegrpc.NewUnaryClientInterceptor[any](
			failsafegrpc.NewRetryPolicyBuilder[any]().Build(), fscircuitbreaker.NewBuilder[any]().WithFailureThreshold(5).Build())}
	}},
	{"failsafe-retry", func() []grpc.UnaryClientInterceptor {
		return []grpc.UnaryClientInterceptor{failsafegrpc.NewUnaryClientInterceptor[any](failsafegrpc.NewRetryPolicyBuilder[any]().Build())}
	}},
}

func zeroDelayRetrier() *retry.Retrier {
	return retry.New(retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(3))
}

func dialGRPC(tb testing.TB, addr string, ints []grpc.UnaryClientInterceptor) testpb.TestServiceClient {
	tb.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithChainUnaryInterceptor(ints...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

// BenchmarkGRPC runs a unary call over loopback TCP (client and server in
// this process) through each row's interceptors, as
// BenchmarkGRPC/unary/<impl>; compare.sh pairs the rows with bare.
func BenchmarkGRPC(b *testing.B) {
	_, addr := startGRPCServer(b)
	b.Run("unary", func(b *testing.B) {
		for _, im := range grpcClients {
			b.Run(im.name, func(b *testing.B) {
				c := dialGRPC(b, addr, im.interceptors())
				ctx := context.Background()
				req := &testpb.SimpleRequest{}
				for range 10 { // connect and warm up
					if _, err := c.UnaryCall(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.UnaryCall(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// BenchmarkGRPCInterceptors runs each row's interceptors around an
// invoker that returns nil at once, as BenchmarkGRPCInterceptors/
// chain/<impl>: the interceptors' own cost, without the network. On a
// loaded machine, where a loopback call's time varies by more than the
// interceptors cost, this row divided by BenchmarkGRPC/unary/bare is the
// steadier estimate of what they add to a call.
func BenchmarkGRPCInterceptors(b *testing.B) {
	noop := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	b.Run("chain", func(b *testing.B) {
		for _, im := range grpcClients {
			b.Run(im.name, func(b *testing.B) {
				call := chainUnary(im.interceptors(), noop)
				ctx := context.Background()
				req, reply := &testpb.SimpleRequest{}, &testpb.SimpleResponse{}
				b.ReportAllocs()
				for b.Loop() {
					if err := call(ctx, grpcUnaryMethod, req, reply, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// chainUnary composes interceptors around invoker, the first outermost,
// as grpc.WithChainUnaryInterceptor does.
func chainUnary(ints []grpc.UnaryClientInterceptor, invoker grpc.UnaryInvoker) grpc.UnaryInvoker {
	for i := len(ints) - 1; i >= 0; i-- {
		ic, next := ints[i], invoker
		invoker = func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			return ic(ctx, method, req, reply, cc, next, opts...)
		}
	}
	return invoker
}

// TestGRPCClientsBehaveAlike checks that every row's interceptors do what
// the benchmark claims: one call to the server when it answers, and, when
// it fails twice with Unavailable, three calls and success (bare and the
// breaker alone excepted: they do not retry).
func TestGRPCClientsBehaveAlike(t *testing.T) {
	srv, addr := startGRPCServer(t)
	for _, im := range grpcClients {
		t.Run(im.name, func(t *testing.T) {
			c := dialGRPC(t, addr, im.interceptors())
			ctx := context.Background()
			srv.calls.Store(0)
			if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
				t.Fatalf("UnaryCall() = %v; want nil", err)
			}
			if n := srv.calls.Load(); n != 1 {
				t.Fatalf("server calls = %d; want 1", n)
			}
			srv.calls.Store(0)
			srv.fail.Store(2)
			_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
			srv.fail.Store(0)
			retries := im.name != "bare" && im.name != "otelpatterns-breaker"
			switch {
			case retries && err != nil:
				t.Fatalf("UnaryCall() after two failures = %v; want nil", err)
			case retries && srv.calls.Load() != 3:
				t.Fatalf("server calls = %d; want 3", srv.calls.Load())
			case !retries && status.Code(err) != codes.Unavailable:
				t.Fatalf("UnaryCall() = %v; want Unavailable", err)
			}
		})
	}
}
