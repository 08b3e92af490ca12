package grpcbreaker_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/circuitbreaker/grpcbreaker"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

func shedServer(t *testing.T, srv *server, opts ...grpcbreaker.ServerOption) testpb.TestServiceClient {
	cc := serve(t, srv, false, []grpc.ServerOption{
		grpc.UnaryInterceptor(grpcbreaker.UnaryServerInterceptor(opts...)),
		grpc.StreamInterceptor(grpcbreaker.StreamServerInterceptor(opts...)),
	})
	return testpb.NewTestServiceClient(cc)
}

func pushbackOf(t *testing.T, md metadata.MD) int64 {
	t.Helper()
	vs := md.Get(grpcbreaker.PushbackKey)
	require.Len(t, vs, 1, "one pushback in %v", md)
	n, err := strconv.ParseInt(vs[0], 10, 64)
	require.NoError(t, err)
	return n
}

func TestServerShedsWhileBreakerOpen(t *testing.T) {
	cases := []struct {
		name string
		prep func(b *circuitbreaker.Breaker)
		opts []grpcbreaker.ServerOption
		want func(t *testing.T, ms int64)
	}{
		{"tripped", func(b *circuitbreaker.Breaker) { b.Trip() }, nil, func(t *testing.T, ms int64) { assert.Equal(t, int64(1000), ms) }},
		{"open", nil, nil, func(t *testing.T, ms int64) {
			assert.Positive(t, ms)
			assert.LessOrEqual(t, ms, int64(30000), "until the breaker's open period ends")
		}},
		{"fixed", nil, []grpcbreaker.ServerOption{grpcbreaker.WithPushback(250 * time.Millisecond)}, func(t *testing.T, ms int64) { assert.Equal(t, int64(250), ms) }},
		{"do not retry", nil, []grpcbreaker.ServerOption{grpcbreaker.WithPushback(-1)}, func(t *testing.T, ms int64) { assert.Equal(t, int64(-1), ms) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := circuitbreaker.New("server", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(30*time.Second))
			if tc.prep != nil {
				tc.prep(b)
			} else {
				_ = b.Execute(context.Background(), func(context.Context) error { return context.DeadlineExceeded })
			}
			srv := &server{}
			c := shedServer(t, srv, append([]grpcbreaker.ServerOption{grpcbreaker.WithBreaker(b)}, tc.opts...)...)
			var tr metadata.MD
			_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&tr))
			assert.Equal(t, codes.Unavailable, status.Code(err))
			assert.Contains(t, status.Convert(err).Message(), `breaker "server"`)
			tc.want(t, pushbackOf(t, tr))

			st, err := c.StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
			require.NoError(t, err)
			_, err = st.Recv()
			assert.Equal(t, codes.Unavailable, status.Code(err))
			tc.want(t, pushbackOf(t, st.Trailer()))
			assert.Equal(t, 0, srv.count("UnaryCall")+srv.count("StreamingOutputCall"), "no handler ran")
		})
	}
}

func TestServerBreakerCountsHandlerCodes(t *testing.T) {
	codesSeq := []codes.Code{codes.NotFound, codes.Internal, codes.InvalidArgument, codes.Unavailable, codes.Canceled, codes.OK}
	srv := &server{script: func(_ string, n int) *fault {
		if c := codesSeq[n-1]; c != codes.OK {
			return &fault{err: status.Error(c, "scripted")}
		}
		return nil
	}}
	b := circuitbreaker.New("server", circuitbreaker.WithCountWindow(100), circuitbreaker.WithMinimumCalls(100))
	c := shedServer(t, srv, grpcbreaker.WithBreaker(b))
	for range codesSeq {
		_, _ = c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	}
	s := b.Snapshot()
	assert.Equal(t, 5, s.Calls, "Canceled counts for nothing")
	assert.Equal(t, 2, s.Failures, "Internal and Unavailable")
}

func TestServerConcurrencyLimit(t *testing.T) {
	srv := &server{entered: make(chan struct{}, 10), gate: make(chan struct{})}
	c := shedServer(t, srv, grpcbreaker.WithMaxConcurrent(1))
	done := make(chan error)
	go func() {
		_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		done <- err
	}()
	<-srv.entered // the one slot is taken

	var tr metadata.MD
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&tr))
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, int64(grpcbreaker.DefaultPushback/time.Millisecond), pushbackOf(t, tr))

	close(srv.gate)
	require.NoError(t, <-done)
	_, err = c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	assert.NoError(t, err, "the slot is free again")
	assert.Equal(t, 2, srv.count("UnaryCall"))
}

func TestServerStreamConcurrencyLimit(t *testing.T) {
	srv := &server{entered: make(chan struct{}, 10), gate: make(chan struct{})}
	c := shedServer(t, srv, grpcbreaker.WithMaxConcurrent(1), grpcbreaker.WithPushback(time.Second))
	req := &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := c.StreamingOutputCall(ctx, req)
	require.NoError(t, err)
	<-srv.entered

	st, err := c.StreamingOutputCall(context.Background(), req)
	require.NoError(t, err)
	_, err = st.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, int64(1000), pushbackOf(t, st.Trailer()))
	close(srv.gate)
}

// TestShedAndRetryCompose: a client with grpcretry waits the server's
// pushback and retries a shed call, and does not retry when the server
// says not to.
func TestShedAndRetryCompose(t *testing.T) {
	for _, tc := range []struct {
		pushback time.Duration
		attempts int
	}{{time.Millisecond, 3}, {-1, 1}} {
		t.Run(tc.pushback.String(), func(t *testing.T) {
			b := circuitbreaker.New("server")
			b.Trip()
			var delays []time.Duration
			r := retry.New(retry.WithMaxAttempts(3), retry.WithOnRetry(func(_ context.Context, _ int, _ error, d time.Duration) { delays = append(delays, d) }))
			srv := &server{}
			cc := serve(t, srv, false,
				[]grpc.ServerOption{grpc.UnaryInterceptor(grpcbreaker.UnaryServerInterceptor(grpcbreaker.WithBreaker(b), grpcbreaker.WithPushback(tc.pushback)))},
				grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods(unaryCall))))
			_, err := testpb.NewTestServiceClient(cc).UnaryCall(context.Background(), &testpb.SimpleRequest{})
			assert.Equal(t, codes.Unavailable, status.Code(err))
			assert.Len(t, delays, tc.attempts-1)
			for _, d := range delays {
				assert.Equal(t, tc.pushback, d, "the server's pushback, not the backoff")
			}
		})
	}
}

// TestServerBreakerHandlerContextErrors: a handler that returns its
// context's plain error (a driver's error wrapping ctx.Err()) is answered
// DeadlineExceeded by gRPC; the server's breaker must judge that code, not
// Unknown. With WithServerFailureCodes(Unknown), "count the handler's own
// errors, not timeouts", it used to count such calls as failures and shed.
func TestServerBreakerHandlerContextErrors(t *testing.T) {
	srv := &server{script: func(string, int) *fault {
		return &fault{err: fmt.Errorf("query: %w", context.DeadlineExceeded)}
	}}
	b := circuitbreaker.New("server", circuitbreaker.WithConsecutiveFailures(1))
	c := shedServer(t, srv, grpcbreaker.WithBreaker(b), grpcbreaker.WithServerFailureCodes(codes.Unknown))
	for range 2 {
		_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "what gRPC answers")
	}
	assert.Equal(t, circuitbreaker.StateClosed, b.State())
	assert.Equal(t, 0, b.Snapshot().Failures)
	assert.Equal(t, 2, srv.count("UnaryCall"), "nothing shed")
}
