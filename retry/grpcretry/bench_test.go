package grpcretry_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

// The interceptor alone, around an invoker that succeeds at once, so that
// what a first attempt costs shows apart from a call's network and codec
// (benchmarks/grpc_test.go compares whole loopback calls with peers). A
// method not declared safe passes straight through.

func BenchmarkUnaryClientInterceptor(b *testing.B) {
	intercept := grpcretry.UnaryClientInterceptor(retry.New(), grpcretry.WithMethods("/svc/Safe"))
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx := context.Background()
	for _, method := range []string{"/svc/Safe", "/svc/Unsafe"} {
		b.Run(method[len("/svc/"):], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := intercept(ctx, method, nil, nil, nil, invoker); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
