package grpcretry_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

// TestOtelgrpcSpanPerAttempt: with otelgrpc's stats handler on the
// connection, each attempt is a client span of its own, whose trace
// context the server receives in the attempt's metadata.
func TestOtelgrpcSpanPerAttempt(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prop := propagation.TraceContext{}
	srv := &server{script: failing(2, status.Error(codes.Unavailable, "down"))}
	r := fast(retry.WithTracerProvider(tp))
	cc := serve(t, srv, false, nil,
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop))),
		grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods(unaryCall))))

	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	_, err := testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{})
	root.End()
	require.NoError(t, err)

	var attempts []sdktrace.ReadOnlySpan
	var retrySpan sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch {
		case s.SpanKind() == trace.SpanKindClient:
			attempts = append(attempts, s)
		case s.Name() == "retry":
			retrySpan = s
		}
	}
	require.Len(t, attempts, 3, "one client span per attempt")
	require.NotNil(t, retrySpan)
	assert.Equal(t, root.SpanContext().SpanID(), retrySpan.Parent().SpanID())
	attrs := map[string]string{}
	for _, kv := range retrySpan.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	assert.Equal(t, "grpc", attrs[string(semconv.RPCSystemNameKey)])
	assert.Equal(t, "grpc.testing.TestService/UnaryCall", attrs[string(semconv.RPCMethodKey)])
	assert.Equal(t, "UNAVAILABLE", attrs[string(semconv.RPCResponseStatusCodeKey)])

	parents := map[trace.SpanID]int{}
	ids := map[trace.SpanID]bool{}
	for _, s := range attempts {
		parents[s.Parent().SpanID()]++
		ids[s.SpanContext().SpanID()] = true
		assert.Equal(t, root.SpanContext().TraceID(), s.SpanContext().TraceID())
	}
	assert.Equal(t, 1, parents[root.SpanContext().SpanID()], "the first attempt under the caller's span")
	assert.Equal(t, 2, parents[retrySpan.SpanContext().SpanID()], "the retries under the retry span")

	mds := srv.metadata()
	require.Len(t, mds, 3)
	seen := map[trace.SpanID]bool{}
	for i, md := range mds {
		carrier := propagation.MapCarrier{}
		for k, v := range md {
			carrier[k] = v[0]
		}
		sc := trace.SpanContextFromContext(prop.Extract(context.Background(), carrier))
		require.True(t, sc.IsValid(), "attempt %d carries trace context", i+1)
		assert.True(t, ids[sc.SpanID()], "attempt %d: the parent is that attempt's client span", i+1)
		assert.False(t, seen[sc.SpanID()], "attempt %d: a span of its own", i+1)
		seen[sc.SpanID()] = true
	}
}

// TestOtelgrpcSpanPerStreamAttempt: a retried stream is two client spans,
// each attempt with its own trace context on the wire.
func TestOtelgrpcSpanPerStreamAttempt(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prop := propagation.TraceContext{}
	srv := &server{script: failing(1, status.Error(codes.Unavailable, "down"))}
	cc := serve(t, srv, false, nil,
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop))),
		grpc.WithStreamInterceptor(grpcretry.StreamClientInterceptor(fast(retry.WithTracerProvider(tp)), grpcretry.WithMethods(outputCall))))

	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	st, err := testpb.NewTestServiceClient(cc).StreamingOutputCall(ctx, outputRequest(1, 2))
	require.NoError(t, err)
	msgs, err := recvAll(st)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	root.End()

	ids := map[trace.SpanID]bool{}
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			ids[s.SpanContext().SpanID()] = true
		}
	}
	assert.Len(t, ids, 2, "one client span per stream attempt")
	mds := srv.metadata()
	require.Len(t, mds, 2)
	seen := map[trace.SpanID]bool{}
	for i, md := range mds {
		carrier := propagation.MapCarrier{}
		for k, v := range md {
			carrier[k] = v[0]
		}
		sc := trace.SpanContextFromContext(prop.Extract(context.Background(), carrier))
		assert.True(t, ids[sc.SpanID()], "attempt %d carries its own client span", i+1)
		seen[sc.SpanID()] = true
	}
	assert.Len(t, seen, 2)
}
