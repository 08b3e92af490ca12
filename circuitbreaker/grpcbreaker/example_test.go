package grpcbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/circuitbreaker/grpcbreaker"
)

// exampleConn serves srv in memory, with the server options given, and
// dials it with opts; stop closes both.
func exampleConn(srv *server, serverOpts []grpc.ServerOption, opts ...grpc.DialOption) (cc *grpc.ClientConn, stop func()) {
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(serverOpts...)
	testpb.RegisterTestServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	opts = append(opts,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient("passthrough:///example", opts...)
	if err != nil {
		panic(err)
	}
	return cc, func() { _ = cc.Close(); gs.Stop() }
}

// After three Unavailable answers in a row the method's breaker opens, and
// the next call fails at once without reaching the server.
func ExampleUnaryClientInterceptor() {
	srv := &server{script: func(string, int) *fault { return &fault{err: status.Error(codes.Unavailable, "down")} }}
	breakers := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(3))
	cc, stop := exampleConn(srv, nil, grpc.WithChainUnaryInterceptor(
		grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(breakers)),
	))
	defer stop()
	client := testpb.NewTestServiceClient(cc)

	for range 4 {
		_, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		fmt.Println(status.Code(err), errors.Is(err, circuitbreaker.ErrOpen))
	}
	fmt.Println("calls that reached the server:", srv.count("UnaryCall"))
	// Output:
	// Unavailable false
	// Unavailable false
	// Unavailable false
	// Unavailable true
	// calls that reached the server: 3
}

// One breaker per connection target rather than per method.
func ExamplePerTarget() {
	breakers := circuitbreaker.NewGroup()
	cc, stop := exampleConn(&server{}, nil, grpc.WithChainUnaryInterceptor(
		grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(breakers), grpcbreaker.WithKey(grpcbreaker.PerTarget)),
	))
	defer stop()
	client := testpb.NewTestServiceClient(cc)
	_, _ = client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	_, _ = client.EmptyCall(context.Background(), &testpb.Empty{})
	fmt.Println(breakers.Len(), "breaker,", breakers.Get(cc.Target()).Snapshot().Calls, "calls")
	// Output: 1 breaker, 2 calls
}

// A stream is judged by its final status.
func ExampleStreamClientInterceptor() {
	breakers := circuitbreaker.NewGroup()
	cc, stop := exampleConn(&server{}, nil, grpc.WithChainStreamInterceptor(
		grpcbreaker.StreamClientInterceptor(grpcbreaker.WithGroup(breakers)),
	))
	defer stop()
	st, err := testpb.NewTestServiceClient(cc).StreamingOutputCall(context.Background(),
		&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}})
	if err != nil {
		panic(err)
	}
	for st.RecvMsg(new(testpb.StreamingOutputCallResponse)) == nil {
	}
	b := breakers.Get("/grpc.testing.TestService/StreamingOutputCall")
	for b.Snapshot().Calls == 0 { // gRPC reports the end on its own goroutine
		time.Sleep(time.Millisecond)
	}
	fmt.Println(b.Snapshot().Calls, "call,", b.Snapshot().Failures, "failures")
	// Output: 1 call, 0 failures
}

// While the server's breaker is open, calls are answered with Unavailable
// and a pushback, before the handler runs.
func ExampleUnaryServerInterceptor() {
	b := circuitbreaker.New("inventory-db")
	b.Trip()
	srv := &server{}
	cc, stop := exampleConn(srv, []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(grpcbreaker.UnaryServerInterceptor(grpcbreaker.WithBreaker(b), grpcbreaker.WithPushback(2*time.Second))),
	})
	defer stop()

	var trailer metadata.MD
	_, err := testpb.NewTestServiceClient(cc).UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
	fmt.Println(status.Code(err), trailer.Get(grpcbreaker.PushbackKey), srv.count("UnaryCall"))
	// Output: Unavailable [2000] 0
}

// Above the concurrency limit, streams are shed too.
func ExampleStreamServerInterceptor() {
	srv := &server{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	cc, stop := exampleConn(srv, []grpc.ServerOption{
		grpc.ChainStreamInterceptor(grpcbreaker.StreamServerInterceptor(grpcbreaker.WithMaxConcurrent(1))),
	})
	defer stop()
	client := testpb.NewTestServiceClient(cc)
	req := &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := client.StreamingOutputCall(ctx, req); err != nil { // holds the one slot
		panic(err)
	}
	<-srv.entered
	st, err := client.StreamingOutputCall(context.Background(), req)
	if err != nil {
		panic(err)
	}
	_, err = st.Recv()
	fmt.Println(status.Code(err), st.Trailer().Get(grpcbreaker.PushbackKey))
	close(srv.gate)
	// Output: Unavailable [100]
}
