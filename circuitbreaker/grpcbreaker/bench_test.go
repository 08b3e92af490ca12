package grpcbreaker_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/otelpatterns/patterns/circuitbreaker/grpcbreaker"
)

// The interceptors alone, around an invoker or handler that does nothing,
// so that what they cost shows apart from a call's network and codec
// (benchmarks/grpc_test.go compares whole loopback calls with peers).

func BenchmarkUnaryClientInterceptor(b *testing.B) {
	intercept := grpcbreaker.UnaryClientInterceptor()
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := intercept(ctx, "/svc/Method", nil, nil, nil, invoker); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnaryServerInterceptor(b *testing.B) {
	intercept := grpcbreaker.UnaryServerInterceptor(grpcbreaker.WithMaxConcurrent(64))
	info := &grpc.UnaryServerInfo{FullMethod: "/svc/Method"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := intercept(ctx, nil, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}
