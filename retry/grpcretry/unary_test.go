package grpcretry_test

import (
	"context"
	"errors"
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

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

const (
	unaryCall  = "/grpc.testing.TestService/UnaryCall"
	emptyCall  = "/grpc.testing.TestService/EmptyCall"
	outputCall = "/grpc.testing.TestService/StreamingOutputCall"
	duplexCall = "/grpc.testing.TestService/FullDuplexCall"
	inputCall  = "/grpc.testing.TestService/StreamingInputCall"
)

// fast is a retrier that does not wait between attempts.
func fast(opts ...retry.Option) *retry.Retrier {
	return retry.New(append([]retry.Option{retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(4)}, opts...)...)
}

func failing(n int, err error) func(string, int) *fault {
	return func(_ string, attempt int) *fault {
		if attempt <= n {
			return &fault{err: err}
		}
		return nil
	}
}

func unaryClient(t *testing.T, srv *server, r *retry.Retrier, opts ...grpcretry.Option) testpb.TestServiceClient {
	cc := serve(t, srv, false, nil, grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(r, opts...)))
	return testpb.NewTestServiceClient(cc)
}

func TestUnaryRetriesUnavailableUntilSuccess(t *testing.T) {
	srv := &server{script: failing(2, status.Error(codes.Unavailable, "down"))}
	c := unaryClient(t, srv, fast(), grpcretry.WithMethods(unaryCall))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "acme")
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	require.NoError(t, err)
	assert.Equal(t, "3", resp.Username, "the answer of the third attempt")
	assert.Equal(t, 3, srv.count("UnaryCall"))
	for i, md := range srv.metadata() {
		assert.Equal(t, []string{"acme"}, md.Get("x-tenant"), "attempt %d: the caller's metadata is sent again", i+1)
		want := []string(nil)
		if i > 0 {
			want = []string{strconv.Itoa(i)}
		}
		assert.Equal(t, want, md.Get(grpcretry.PreviousAttemptsKey), "attempt %d", i+1)
	}
}

func TestUnaryDoesNotRetryUnsafeMethods(t *testing.T) {
	srv := &server{script: failing(1, status.Error(codes.Unavailable, "down"))}
	c := unaryClient(t, srv, fast(), grpcretry.WithMethods(emptyCall))
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, 1, srv.count("UnaryCall"))
	var re *grpcretry.Error
	assert.False(t, errors.As(err, &re), "an unsafe method's error is gRPC's, untouched")
}

func TestUnarySafePredicate(t *testing.T) {
	srv := &server{script: failing(1, status.Error(codes.Unavailable, "down"))}
	c := unaryClient(t, srv, fast(), grpcretry.WithSafe(func(m string) bool { return m == unaryCall }))
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
	assert.Equal(t, 2, srv.count("UnaryCall"))
}

// TestUnaryClassification checks which codes are retried, with the
// default codes and with and without a pushback.
func TestUnaryClassification(t *testing.T) {
	pb := func(v string) metadata.MD { return metadata.Pairs(grpcretry.PushbackKey, v) }
	cases := []struct {
		code    codes.Code
		trailer metadata.MD
		opts    []grpcretry.Option
		retried bool
	}{
		{code: codes.Unavailable, retried: true},
		{code: codes.Unavailable, trailer: pb("0"), retried: true},
		{code: codes.Unavailable, trailer: pb("-1")},
		{code: codes.Unavailable, trailer: pb("soon")},
		{code: codes.Unavailable, trailer: pb("1.5")},
		{code: codes.Unavailable, trailer: metadata.Pairs(grpcretry.PushbackKey, "1", grpcretry.PushbackKey, "2")},
		{code: codes.Unavailable, trailer: pb("60000")}, // longer than the 30s maximum
		{code: codes.ResourceExhausted},
		{code: codes.ResourceExhausted, trailer: pb("1"), retried: true},
		{code: codes.DeadlineExceeded},
		{code: codes.Internal},
		{code: codes.Unknown},
		{code: codes.Aborted},
		{code: codes.InvalidArgument},
		{code: codes.NotFound},
		{code: codes.AlreadyExists},
		{code: codes.PermissionDenied},
		{code: codes.Unauthenticated},
		{code: codes.FailedPrecondition},
		{code: codes.Unimplemented},
		{code: codes.DataLoss},
		{code: codes.Aborted, opts: []grpcretry.Option{grpcretry.WithRetryCodes(codes.Aborted)}, retried: true},
		{code: codes.Unavailable, opts: []grpcretry.Option{grpcretry.WithRetryCodes(codes.Aborted)}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v/%v/%d", tc.code, tc.trailer.Get(grpcretry.PushbackKey), len(tc.opts)), func(t *testing.T) {
			srv := &server{script: func(_ string, n int) *fault {
				if n == 1 {
					return &fault{err: status.Error(tc.code, "scripted"), trailer: tc.trailer}
				}
				return nil
			}}
			c := unaryClient(t, srv, fast(), append([]grpcretry.Option{grpcretry.WithMethods(unaryCall)}, tc.opts...)...)
			_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
			if tc.retried {
				assert.NoError(t, err)
				assert.Equal(t, 2, srv.count("UnaryCall"))
				return
			}
			assert.Equal(t, tc.code, status.Code(err))
			assert.Equal(t, 1, srv.count("UnaryCall"), "not retried")
		})
	}
}

func TestUnaryGivesUpWithLastStatus(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		return &fault{err: status.Errorf(codes.Unavailable, "down %d", n)}
	}}
	c := unaryClient(t, srv, fast(retry.WithMaxAttempts(3)), grpcretry.WithMethods(unaryCall))
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "down 3")
	assert.ErrorIs(t, err, retry.ErrExhausted)
	var ge *grpcretry.Error
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, 3, ge.Attempts())
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 3, re.Attempts)
	assert.Equal(t, codes.Unavailable, status.Code(fmt.Errorf("wrapped: %w", err)), "status.FromError unwraps")
	assert.Equal(t, 3, srv.count("UnaryCall"))
}

// TestUnaryPushbackBeyondDeadline: a pushback that ends after the call's
// deadline ends the retries at once, with the server's status.
func TestUnaryPushbackBeyondDeadline(t *testing.T) {
	srv := &server{script: func(string, int) *fault {
		return &fault{err: status.Error(codes.Unavailable, "busy"), trailer: metadata.Pairs(grpcretry.PushbackKey, "20000")}
	}}
	c := unaryClient(t, srv, fast(), grpcretry.WithMethods(unaryCall))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.ErrorIs(t, err, retry.ErrExhausted)
	assert.Equal(t, 1, srv.count("UnaryCall"))
	assert.NoError(t, ctx.Err(), "gave up without waiting")
}

// TestUnaryPushbackReplacesBackoff: the wait before the retry is the
// server's pushback, not the backoff's.
func TestUnaryPushbackReplacesBackoff(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{err: status.Error(codes.ResourceExhausted, "quota"), trailer: metadata.Pairs(grpcretry.PushbackKey, "3")}
		}
		return nil
	}}
	var delays []time.Duration
	r := retry.New(retry.WithBackoff(retry.Constant(time.Hour)), retry.WithOnRetry(func(_ context.Context, _ int, _ error, d time.Duration) {
		delays = append(delays, d)
	}))
	c := unaryClient(t, srv, r, grpcretry.WithMethods(unaryCall))
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{3 * time.Millisecond}, delays)
}

func TestUnaryPerAttemptTimeout(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{block: true}
		}
		return nil
	}}
	c := unaryClient(t, srv, fast(), grpcretry.WithMethods(unaryCall), grpcretry.WithPerAttemptTimeout(500*time.Millisecond))
	resp, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
	assert.Equal(t, "2", resp.Username)
}

func TestUnaryCallerDeadlineIsNotRetried(t *testing.T) {
	srv := &server{script: func(m string, _ int) *fault {
		if m == "EmptyCall" {
			return nil
		}
		return &fault{block: true}
	}}
	c := unaryClient(t, srv, fast(), grpcretry.WithMethods(unaryCall), grpcretry.WithPerAttemptTimeout(time.Hour))
	_, err := c.EmptyCall(context.Background(), &testpb.Empty{}) // connect first
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{})
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
	assert.LessOrEqual(t, srv.count("UnaryCall"), 1, "the caller's deadline is not retried")
}

// TestUnaryCallerDeadlineDuringOnlyAttemptUntouched: a call whose own
// deadline passes during its first attempt is not retried, and returns
// gRPC's error untouched, as any call that failed once and was not
// retried does: not an *Error, whose message starts "retry:" and which
// matches context.DeadlineExceeded with errors.Is.
func TestUnaryCallerDeadlineDuringOnlyAttemptUntouched(t *testing.T) {
	srv := &server{script: func(m string, _ int) *fault {
		if m == "EmptyCall" {
			return nil
		}
		return &fault{block: true} // until the caller's deadline
	}}
	c := unaryClient(t, srv, fast(), grpcretry.WithMethods(unaryCall))
	_, err := c.EmptyCall(context.Background(), &testpb.Empty{}) // connect first
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{})
	require.Equal(t, codes.DeadlineExceeded, status.Code(err))
	assert.LessOrEqual(t, srv.count("UnaryCall"), 1, "not retried")
	var ge *grpcretry.Error
	assert.False(t, errors.As(err, &ge), "got %T: %v", err, err)
	assert.NotContains(t, status.Convert(err).Message(), "retry:")
}

func TestUnaryCanceledWhileWaiting(t *testing.T) {
	srv := &server{script: failing(10, status.Error(codes.Unavailable, "down"))}
	ctx, cancel := context.WithCancel(context.Background())
	r := retry.New(retry.WithBackoff(retry.Constant(time.Hour)), retry.WithOnRetry(func(context.Context, int, error, time.Duration) { cancel() }))
	c := unaryClient(t, srv, r, grpcretry.WithMethods(unaryCall))
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	assert.Equal(t, codes.Canceled, status.Code(err))
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, srv.count("UnaryCall"))
}

func TestUnaryBudget(t *testing.T) {
	srv := &server{script: failing(100, status.Error(codes.Unavailable, "down"))}
	budget := retry.NewBudget(retry.WithRatio(0), retry.WithMinRetriesPerSecond(0), retry.WithBurst(1))
	c := unaryClient(t, srv, fast(retry.WithBudget(budget)), grpcretry.WithMethods(unaryCall))
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.ErrorIs(t, err, retry.ErrBudgetExhausted)
	assert.Equal(t, 2, srv.count("UnaryCall"), "one retry from the burst")
}

func TestUnaryOverTCP(t *testing.T) {
	srv := &server{script: failing(1, status.Error(codes.Unavailable, "down"))}
	cc := serve(t, srv, true, nil, grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(fast(), grpcretry.WithMethods(unaryCall))))
	_, err := testpb.NewTestServiceClient(cc).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	require.NoError(t, err)
	assert.Equal(t, 2, srv.count("UnaryCall"))
}
