package grpcbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/circuitbreaker/grpcbreaker"
)

const (
	unaryCall  = "/grpc.testing.TestService/UnaryCall"
	outputCall = "/grpc.testing.TestService/StreamingOutputCall"
)

func invokerFailing(err error) grpc.UnaryInvoker {
	return func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return err }
}

// TestClassification: which codes count against the dependency.
func TestClassification(t *testing.T) {
	cases := []struct {
		code codes.Code
		want circuitbreaker.Outcome
	}{
		{codes.OK, circuitbreaker.Success},
		{codes.Canceled, circuitbreaker.Ignored},
		{codes.Unknown, circuitbreaker.Success},
		{codes.InvalidArgument, circuitbreaker.Success},
		{codes.DeadlineExceeded, circuitbreaker.Failure},
		{codes.NotFound, circuitbreaker.Success},
		{codes.AlreadyExists, circuitbreaker.Success},
		{codes.PermissionDenied, circuitbreaker.Success},
		{codes.ResourceExhausted, circuitbreaker.Failure},
		{codes.FailedPrecondition, circuitbreaker.Success},
		{codes.Aborted, circuitbreaker.Success},
		{codes.OutOfRange, circuitbreaker.Success},
		{codes.Unimplemented, circuitbreaker.Success},
		{codes.Internal, circuitbreaker.Failure},
		{codes.Unavailable, circuitbreaker.Failure},
		{codes.DataLoss, circuitbreaker.Success},
		{codes.Unauthenticated, circuitbreaker.Success},
	}
	for _, tc := range cases {
		t.Run(tc.code.String(), func(t *testing.T) {
			g := circuitbreaker.NewGroup()
			ic := grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(g))
			var err error
			if tc.code != codes.OK {
				err = status.Error(tc.code, "scripted")
			}
			got := ic(context.Background(), unaryCall, nil, nil, nil, invokerFailing(err))
			assert.Equal(t, err, got, "the call's error is handed back untouched")
			assertOutcome(t, g.Get(unaryCall).Snapshot(), tc.want)
		})
	}
	t.Run("WithFailureCodes", func(t *testing.T) {
		g := circuitbreaker.NewGroup()
		ic := grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(g), grpcbreaker.WithFailureCodes(codes.Aborted))
		_ = ic(context.Background(), unaryCall, nil, nil, nil, invokerFailing(status.Error(codes.Aborted, "x")))
		_ = ic(context.Background(), unaryCall, nil, nil, nil, invokerFailing(status.Error(codes.Unavailable, "x")))
		s := g.Get(unaryCall).Snapshot()
		assert.Equal(t, 2, s.Calls)
		assert.Equal(t, 1, s.Failures, "Aborted only")
	})
	t.Run("non-status error", func(t *testing.T) {
		g := circuitbreaker.NewGroup()
		ic := grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(g), grpcbreaker.WithFailureCodes(codes.Unknown))
		_ = ic(context.Background(), unaryCall, nil, nil, nil, invokerFailing(errors.New("plain")))
		assertOutcome(t, g.Get(unaryCall).Snapshot(), circuitbreaker.Failure)
	})
}

func assertOutcome(t *testing.T, s circuitbreaker.Snapshot, want circuitbreaker.Outcome) {
	t.Helper()
	switch want {
	case circuitbreaker.Ignored:
		assert.Equal(t, 0, s.Calls, "ignored")
	case circuitbreaker.Failure:
		assert.Equal(t, 1, s.Calls)
		assert.Equal(t, 1, s.Failures, "a failure")
	default:
		assert.Equal(t, 1, s.Calls)
		assert.Equal(t, 0, s.Failures, "a success")
	}
}

func TestRejectionIsUnavailableAndErrOpen(t *testing.T) {
	g := circuitbreaker.NewGroup()
	g.Get(unaryCall).Trip()
	ic := grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(g))
	called := false
	err := ic(context.Background(), unaryCall, nil, nil, nil, func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		called = true
		return nil
	})
	assert.False(t, called, "a rejected call does not reach the network")
	for _, e := range []error{err, fmt.Errorf("wrapped: %w", err)} {
		assert.Equal(t, codes.Unavailable, status.Code(e))
		st, ok := status.FromError(e)
		assert.True(t, ok)
		assert.Contains(t, st.Message(), "is open")
		assert.ErrorIs(t, e, circuitbreaker.ErrOpen)
		assert.NotErrorIs(t, e, circuitbreaker.ErrTooManyRequests)
		var re *circuitbreaker.RejectedError
		require.ErrorAs(t, e, &re)
		assert.Equal(t, unaryCall, re.Breaker)
	}
	var ge *grpcbreaker.RejectedError
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, "circuitbreaker.open", ge.ErrorType())
}

func TestPerTargetKey(t *testing.T) {
	srv := &server{}
	g := circuitbreaker.NewGroup()
	cc := serve(t, srv, false, nil, grpc.WithUnaryInterceptor(grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(g), grpcbreaker.WithKey(grpcbreaker.PerTarget))))
	c := testpb.NewTestServiceClient(cc)
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
	_, err = c.EmptyCall(context.Background(), &testpb.Empty{})
	require.NoError(t, err)
	assert.Equal(t, 1, g.Len())
	assert.Equal(t, 2, g.Get(cc.Target()).Snapshot().Calls)
}

// TestBreakerOpensUnderUnavailableAndCloses drives a real server: it fails
// with Unavailable until the breaker opens, the open breaker keeps calls
// off the network, and after the open duration a probe that succeeds
// closes it.
func TestBreakerOpensUnderUnavailableAndCloses(t *testing.T) {
	healthy := make(chan struct{})
	srv := &server{script: func(string, int) *fault {
		select {
		case <-healthy:
			return nil
		default:
			return &fault{err: status.Error(codes.Unavailable, "down")}
		}
	}}
	g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(3), circuitbreaker.WithOpenDuration(20*time.Millisecond), circuitbreaker.WithHalfOpenSuccesses(1))
	cc := serve(t, srv, true, nil, grpc.WithUnaryInterceptor(grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(g))))
	c := testpb.NewTestServiceClient(cc)
	b := g.Get(unaryCall)
	for range 3 {
		_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		assert.Equal(t, codes.Unavailable, status.Code(err))
		assert.NotErrorIs(t, err, circuitbreaker.ErrOpen, "the server's own Unavailable")
	}
	assert.Equal(t, circuitbreaker.StateOpen, b.State())
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.ErrorIs(t, err, circuitbreaker.ErrOpen)
	assert.Equal(t, 3, srv.count("UnaryCall"), "the rejected call did not reach the server")

	close(healthy)
	for b.State() == circuitbreaker.StateOpen {
		time.Sleep(5 * time.Millisecond) // the open duration, 20ms, runs out
	}
	_, err = c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
	assert.Equal(t, circuitbreaker.StateClosed, b.State())
}

func TestStreamOutcomeIsFinalStatus(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 2 {
			return &fault{err: status.Error(codes.Unavailable, "down"), sendFirst: 1}
		}
		return nil
	}}
	g := circuitbreaker.NewGroup()
	cc := serve(t, srv, false, nil, grpc.WithStreamInterceptor(grpcbreaker.StreamClientInterceptor(grpcbreaker.WithGroup(g))))
	c := testpb.NewTestServiceClient(cc)
	req := &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}}}
	b := g.Get(outputCall)

	st, err := c.StreamingOutputCall(context.Background(), req)
	require.NoError(t, err)
	drain(t, st, nil)
	waitFor(t, func() bool { return b.Snapshot().Calls == 1 })
	assert.Equal(t, 0, b.Snapshot().Failures, "a stream that ends with io.EOF is a success")

	st, err = c.StreamingOutputCall(context.Background(), req)
	require.NoError(t, err)
	drain(t, st, status.Error(codes.Unavailable, "down"))
	waitFor(t, func() bool { return b.Snapshot().Calls == 2 })
	assert.Equal(t, 1, b.Snapshot().Failures, "Unavailable after a message is still a failure: the final status counts")
}

func TestStreamRejected(t *testing.T) {
	g := circuitbreaker.NewGroup()
	g.Get(outputCall).Trip()
	srv := &server{}
	cc := serve(t, srv, false, nil, grpc.WithStreamInterceptor(grpcbreaker.StreamClientInterceptor(grpcbreaker.WithGroup(g))))
	_, err := testpb.NewTestServiceClient(cc).StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.ErrorIs(t, err, circuitbreaker.ErrOpen)
	assert.Equal(t, 0, srv.count("StreamingOutputCall"))
}

// TestAbandonedStreamReleasesProbe: a half-open probe stream that the
// caller abandons (cancels) frees its slot at once, without waiting for
// the probe timeout.
func TestAbandonedStreamReleasesProbe(t *testing.T) {
	// The first call fails at once with Unavailable, which opens the
	// breaker; every later call hangs until cancelled. (Opening it with a
	// short client deadline instead was flaky: the deadline also covered
	// connecting, and NewStream itself failed on a loaded machine.)
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{err: status.Error(codes.Unavailable, "down")}
		}
		return &fault{block: true}
	}}
	g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(10*time.Millisecond),
		circuitbreaker.WithHalfOpenProbes(1), circuitbreaker.WithProbeTimeout(time.Hour))
	cc := serve(t, srv, false, nil, grpc.WithStreamInterceptor(grpcbreaker.StreamClientInterceptor(grpcbreaker.WithGroup(g))))
	c := testpb.NewTestServiceClient(cc)
	b := g.Get(outputCall)
	req := &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}

	// Open the breaker with a stream that fails.
	st, err := c.StreamingOutputCall(context.Background(), req)
	require.NoError(t, err)
	drain(t, st, status.Error(codes.Unavailable, ""))
	waitFor(t, func() bool { return b.State() == circuitbreaker.StateHalfOpen })

	ctx, cancel := context.WithCancel(context.Background())
	_, err = c.StreamingOutputCall(ctx, req)
	require.NoError(t, err, "the probe")
	assert.Equal(t, 1, b.Snapshot().ProbesInFlight)
	_, err = c.StreamingOutputCall(context.Background(), req)
	assert.ErrorIs(t, err, circuitbreaker.ErrTooManyRequests, "the only probe slot is taken")
	assert.Equal(t, codes.Unavailable, status.Code(err))

	cancel() // abandon the probe without reading it
	waitFor(t, func() bool { return b.Snapshot().ProbesInFlight == 0 })
	assert.Equal(t, circuitbreaker.StateHalfOpen, b.State(), "a cancelled probe counts for nothing")
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	_, err = c.StreamingOutputCall(ctx, req)
	assert.NoError(t, err, "the slot is free again")
}

// drain reads a stream to its end and checks the final error's code.
func drain(t *testing.T, st grpc.ClientStream, want error) {
	t.Helper()
	for {
		err := st.RecvMsg(new(testpb.StreamingOutputCallResponse))
		if err == nil {
			continue
		}
		if want == nil {
			assert.Equal(t, "EOF", err.Error())
		} else {
			assert.Equal(t, status.Code(want), status.Code(err))
		}
		return
	}
}

// waitFor waits until cond holds, for what gRPC does on its own goroutines
// after a stream ends; it fails the test after 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestExpiredContextNotCounted: a call whose deadline passed before it
// started fails at once in gRPC with DeadlineExceeded; that is no failure
// of the server (it used to count as one and could open the breaker of a
// healthy server, or take its half-open probe slot).
func TestExpiredContextNotCounted(t *testing.T) {
	srv := &server{}
	g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(1))
	cc := serve(t, srv, false, nil,
		grpc.WithUnaryInterceptor(grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(g))),
		grpc.WithStreamInterceptor(grpcbreaker.StreamClientInterceptor(grpcbreaker.WithGroup(g))))
	c := testpb.NewTestServiceClient(cc)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
	_, err = c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
	for _, m := range []string{unaryCall, outputCall} {
		assert.Equal(t, circuitbreaker.StateClosed, g.Get(m).State(), m)
		assert.Equal(t, 0, g.Get(m).Snapshot().Calls, m)
	}
	_, err = c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	assert.NoError(t, err, "the breaker let the next call through")
}

// TestRejectedCallTelemetry: a call rejected by the client interceptor
// fails before gRPC starts the call, and with it the stats handlers, so
// otelgrpc records nothing of it; the breaker records it, as
// circuitbreaker.calls{outcome=rejected} and a circuitbreaker.rejected
// event on the caller's span. A call shed by a server interceptor has
// reached gRPC: otelgrpc records it on both sides.
func TestRejectedCallTelemetry(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	g := circuitbreaker.NewGroup(circuitbreaker.WithMeterProvider(mp))
	shed := circuitbreaker.New("server")
	srv := &server{}
	cc := serve(t, srv, false,
		[]grpc.ServerOption{
			grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp))),
			grpc.UnaryInterceptor(grpcbreaker.UnaryServerInterceptor(grpcbreaker.WithBreaker(shed))),
		},
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp))),
		grpc.WithUnaryInterceptor(grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(g))))
	client := testpb.NewTestServiceClient(cc)
	spans := func(kind trace.SpanKind) int {
		n := 0
		for _, s := range rec.Ended() {
			if s.SpanKind() == kind {
				n++
			}
		}
		return n
	}

	g.Get(unaryCall).Trip()
	ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
	_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
	caller.End()
	require.ErrorIs(t, err, circuitbreaker.ErrOpen)
	require.Equal(t, 0, srv.count("UnaryCall"))
	assert.Zero(t, spans(trace.SpanKindClient), "otelgrpc saw the rejected call")
	assert.Zero(t, spans(trace.SpanKindServer), "otelgrpc saw the rejected call")
	ended := rec.Ended()
	require.Len(t, ended, 1, "the caller's span only")
	var events []string
	for _, e := range ended[0].Events() {
		events = append(events, e.Name)
	}
	assert.Contains(t, events, "circuitbreaker.rejected")
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	assert.Equal(t, int64(1), callsOf(rm, unaryCall, "rejected"), "circuitbreaker.calls{outcome=rejected}")

	g.Get(unaryCall).Reset()
	shed.Trip()
	_, err = client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, 1, spans(trace.SpanKindClient), "otelgrpc records the shed call")
	assert.Equal(t, 1, spans(trace.SpanKindServer), "otelgrpc records the shed call")
}

// callsOf returns the circuitbreaker.calls count of breaker name and
// outcome in rm, 0 if there is none.
func callsOf(rm metricdata.ResourceMetrics, name, outcome string) int64 {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "circuitbreaker.calls" || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				n, _ := dp.Attributes.Value(circuitbreaker.AttrName)
				o, _ := dp.Attributes.Value(circuitbreaker.AttrOutcome)
				if n.AsString() == name && o.AsString() == outcome {
					return dp.Value
				}
			}
		}
	}
	return 0
}
