package grpcretry_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

// exampleConn serves srv in memory and dials it with opts; stop closes both.
func exampleConn(srv *server, opts ...grpc.DialOption) (cc *grpc.ClientConn, stop func()) {
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
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

// A server that is unavailable twice, then answers: the call succeeds on
// its third attempt.
func ExampleUnaryClientInterceptor() {
	srv := &server{script: failing(2, status.Error(codes.Unavailable, "restarting"))}
	r := retry.New(retry.WithMaxAttempts(4), retry.WithBackoff(retry.Constant(0)))
	cc, stop := exampleConn(srv, grpc.WithChainUnaryInterceptor(
		grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods("/grpc.testing.TestService/UnaryCall")),
	))
	defer stop()

	resp, err := testpb.NewTestServiceClient(cc).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	fmt.Println(err, "- answered by attempt", resp.GetUsername())
	// Output: <nil> - answered by attempt 3
}

// A method that is not declared safe is never retried.
func ExampleWithMethods() {
	srv := &server{script: failing(1, status.Error(codes.Unavailable, "restarting"))}
	r := retry.New(retry.WithBackoff(retry.Constant(0)))
	cc, stop := exampleConn(srv, grpc.WithChainUnaryInterceptor(
		grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods("/grpc.testing.TestService/EmptyCall")),
	))
	defer stop()

	_, err := testpb.NewTestServiceClient(cc).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	fmt.Println(status.Code(err))
	// Output: Unavailable
}

// A server-streaming call that fails before its first message is opened
// again, its request replayed.
func ExampleStreamClientInterceptor() {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{err: status.Error(codes.Unavailable, "restarting")}
		}
		return nil
	}}
	r := retry.New(retry.WithBackoff(retry.Constant(0)))
	cc, stop := exampleConn(srv, grpc.WithChainStreamInterceptor(
		grpcretry.StreamClientInterceptor(r, grpcretry.WithMethods("/grpc.testing.TestService/StreamingOutputCall")),
	))
	defer stop()

	st, err := testpb.NewTestServiceClient(cc).StreamingOutputCall(context.Background(), outputRequest(1, 2))
	if err != nil {
		panic(err)
	}
	msgs, err := recvAll(st)
	fmt.Println(len(msgs), "messages,", err, "- attempts:", srv.count("StreamingOutputCall"))
	// Output: 2 messages, <nil> - attempts: 2
}
