package grpcretry_test

import (
	"context"
	"errors"
	"io"
	"sync"
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

func streamClient(t *testing.T, srv *server, r *retry.Retrier, opts ...grpcretry.Option) testpb.TestServiceClient {
	return streamClientWith(t, srv, r, nil, opts...)
}

func streamClientWith(t *testing.T, srv *server, r *retry.Retrier, inner grpc.StreamClientInterceptor, opts ...grpcretry.Option) testpb.TestServiceClient {
	ints := []grpc.StreamClientInterceptor{grpcretry.StreamClientInterceptor(r, opts...)}
	if inner != nil {
		ints = append(ints, inner)
	}
	cc := serve(t, srv, false, nil, grpc.WithChainStreamInterceptor(ints...))
	return testpb.NewTestServiceClient(cc)
}

func outputRequest(sizes ...int32) *testpb.StreamingOutputCallRequest {
	req := &testpb.StreamingOutputCallRequest{}
	for _, s := range sizes {
		req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{Size: s})
	}
	return req
}

func recvAll[T any](s interface{ Recv() (*T, error) }) ([]*T, error) {
	var out []*T
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// TestServerStreamRetriedBeforeFirstMessage: a server-streaming call that
// fails before its first message is replayed, request included.
func TestServerStreamRetriedBeforeFirstMessage(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n <= 2 {
			return &fault{err: status.Error(codes.Unavailable, "down"), sendFirst: 0}
		}
		return nil
	}}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(outputCall))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "acme")
	st, err := c.StreamingOutputCall(ctx, outputRequest(1, 2, 3))
	require.NoError(t, err)
	msgs, err := recvAll(st)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	for i, m := range msgs {
		assert.Len(t, m.Payload.Body, i+1)
	}
	assert.Equal(t, 3, srv.count("StreamingOutputCall"))
	assert.Equal(t, []int{3, 3, 3}, srv.reqs, "the request was sent again, whole")
	for i, md := range srv.metadata() {
		assert.Equal(t, []string{"acme"}, md.Get("x-tenant"), "attempt %d", i+1)
	}
}

// TestServerStreamNotRetriedAfterFirstMessage: once a message has
// arrived, a failure is the caller's.
func TestServerStreamNotRetriedAfterFirstMessage(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		return &fault{err: status.Error(codes.Unavailable, "down"), sendFirst: 1}
	}}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(outputCall))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1, 2, 3))
	require.NoError(t, err)
	msgs, err := recvAll(st)
	assert.Len(t, msgs, 1)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	var ge *grpcretry.Error
	assert.False(t, errors.As(err, &ge), "gRPC's own error after the commit")
	assert.Equal(t, 1, srv.count("StreamingOutputCall"))
}

func TestServerStreamEmptySuccess(t *testing.T) {
	srv := &server{}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(outputCall))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest())
	require.NoError(t, err)
	_, err = st.Recv()
	assert.ErrorIs(t, err, io.EOF)
	_, err = st.Recv()
	assert.ErrorIs(t, err, io.EOF)
}

// TestBidiStreamReplaysBufferedMessages: what the client sent on the
// failed attempt is sent again, in order, with its CloseSend.
func TestBidiStreamReplaysBufferedMessages(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{err: status.Error(codes.Unavailable, "down"), sendFirst: 0}
		}
		return nil
	}}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(duplexCall))
	st, err := c.FullDuplexCall(context.Background())
	require.NoError(t, err)
	for _, n := range []int32{4, 5, 6} {
		require.NoError(t, st.Send(outputRequest(n)))
	}
	require.NoError(t, st.CloseSend())
	msgs, err := recvAll(st)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	for i, m := range msgs {
		assert.Len(t, m.Payload.Body, 4+i)
	}
	assert.Equal(t, [][]int32{{4, 5, 6}, {4, 5, 6}}, srv.recvd)
}

func TestBidiStreamOverBufferNotRetried(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		return &fault{err: status.Error(codes.Unavailable, "down"), sendFirst: 0}
	}}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(duplexCall), grpcretry.WithMaxBuffered(2))
	st, err := c.FullDuplexCall(context.Background())
	require.NoError(t, err)
	for _, n := range []int32{1, 2, 3} {
		require.NoError(t, st.Send(outputRequest(n)))
	}
	require.NoError(t, st.CloseSend())
	_, err = st.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, 1, srv.count("FullDuplexCall"))
}

func TestClientStreamRetried(t *testing.T) {
	srv := &server{script: failing(1, status.Error(codes.Unavailable, "down"))}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(inputCall))
	st, err := c.StreamingInputCall(context.Background())
	require.NoError(t, err)
	for _, n := range []int{3, 4} {
		require.NoError(t, st.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}))
	}
	resp, err := st.CloseAndRecv()
	require.NoError(t, err)
	assert.Equal(t, int32(7), resp.AggregatedPayloadSize)
	assert.Equal(t, 2, srv.count("StreamingInputCall"))
}

// TestStreamOpenFailureRetried: a stream that fails to open with a
// retryable code (a channel in transient failure) is opened again by the
// first Recv, with the request kept meanwhile.
func TestStreamOpenFailureRetried(t *testing.T) {
	srv := &server{}
	opens := 0
	inner := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		opens++
		if opens == 1 {
			return nil, status.Error(codes.Unavailable, "no connection")
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	c := streamClientWith(t, srv, fast(), inner, grpcretry.WithMethods(outputCall))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(7))
	require.NoError(t, err, "the failure to open is retried, not returned")
	msgs, err := recvAll(st)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Len(t, msgs[0].Payload.Body, 7)
	assert.Equal(t, 2, opens)
	assert.Equal(t, 1, srv.count("StreamingOutputCall"))
}

func TestStreamOpenFailureNotRetryable(t *testing.T) {
	inner := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, grpc.Streamer, ...grpc.CallOption) (grpc.ClientStream, error) {
		return nil, status.Error(codes.PermissionDenied, "no")
	}
	c := streamClientWith(t, &server{}, fast(), inner, grpcretry.WithMethods(outputCall))
	_, err := c.StreamingOutputCall(context.Background(), outputRequest(7))
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
}

func TestStreamPerAttemptTimeoutBeforeFirstMessage(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{block: true, sendFirst: 0}
		}
		return nil
	}}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(outputCall), grpcretry.WithPerAttemptTimeout(500*time.Millisecond))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1))
	require.NoError(t, err)
	msgs, err := recvAll(st)
	require.NoError(t, err)
	assert.Len(t, msgs, 1)
	assert.Equal(t, 2, srv.count("StreamingOutputCall"))
}

// TestStreamPerAttemptTimeoutIsDeadlineExceeded: a stream attempt that
// runs out of its per-attempt time fails with DeadlineExceeded, as a
// unary attempt does, and a stream that gives up so has that status (not
// Canceled: the caller cancelled nothing). A committed stream is no
// longer bound by the per-attempt timeout, on either side.
func TestStreamPerAttemptTimeoutIsDeadlineExceeded(t *testing.T) {
	srv := &server{script: func(string, int) *fault { return &fault{block: true} }}
	c := streamClient(t, srv, fast(retry.WithMaxAttempts(2)), grpcretry.WithMethods(outputCall),
		grpcretry.WithPerAttemptTimeout(200*time.Millisecond))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1))
	require.NoError(t, err)
	_, err = st.Recv()
	require.Error(t, err)
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "the caller did not cancel: %v", err)
	assert.Equal(t, 2, srv.count("StreamingOutputCall"))

	committed := &server{script: func(string, int) *fault { return &fault{sendFirst: 1, block: true} }}
	c = streamClient(t, committed, fast(), grpcretry.WithMethods(outputCall),
		grpcretry.WithPerAttemptTimeout(100*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err = c.StreamingOutputCall(ctx, outputRequest(1, 1))
	require.NoError(t, err)
	_, err = st.Recv()
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	assert.NoError(t, st.Context().Err(), "the committed stream outlived the per-attempt timeout")
	committed.mu.Lock()
	_, hasDeadline := committed.ctxs[0].Deadline()
	committed.mu.Unlock()
	assert.False(t, hasDeadline, "the server got no per-attempt deadline")
	cancel()
	_, err = st.Recv()
	assert.Equal(t, codes.Canceled, status.Code(err))
	assert.Equal(t, 1, committed.count("StreamingOutputCall"))
}

// TestStreamPerAttemptTimeoutCountsForInnerBreaker: grpcbreaker inside the
// retry interceptor judges every attempt; a stream attempt cut by the
// per-attempt timeout reaches it as DeadlineExceeded, a failure, so that
// a server that never answers streams in time trips the breaker.
func TestStreamPerAttemptTimeoutCountsForInnerBreaker(t *testing.T) {
	srv := &server{script: func(string, int) *fault { return &fault{block: true} }}
	var mu sync.Mutex
	var seen []error
	g := circuitbreaker.NewGroup(circuitbreaker.WithClassifier(func(err error) circuitbreaker.Outcome {
		mu.Lock()
		seen = append(seen, err)
		mu.Unlock()
		return circuitbreaker.DefaultClassifier(err)
	}))
	c := streamClientWith(t, srv, fast(retry.WithMaxAttempts(2)), grpcbreaker.StreamClientInterceptor(grpcbreaker.WithGroup(g)),
		grpcretry.WithMethods(outputCall), grpcretry.WithPerAttemptTimeout(200*time.Millisecond))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1))
	require.NoError(t, err)
	_, err = st.Recv()
	require.Error(t, err)
	// gRPC reports an attempt cut by its context from a goroutine of its
	// own, maybe after Recv returned.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 2 },
		10*time.Second, time.Millisecond, "both attempts reported to the breaker")
	mu.Lock()
	defer mu.Unlock()
	for i, e := range seen {
		assert.Equal(t, codes.DeadlineExceeded, status.Code(e), "attempt %d", i+1)
	}
	assert.Equal(t, 2, g.Get(outputCall).Snapshot().Failures, "two timed-out attempts are two failures")
}

func TestStreamUnsafeMethodUntouched(t *testing.T) {
	srv := &server{script: failing(1, status.Error(codes.Unavailable, "down"))}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(unaryCall))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1))
	require.NoError(t, err)
	_, err = recvAll(st)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, 1, srv.count("StreamingOutputCall"))
}

// TestBidiStreamConcurrentSendAndRecv: a sender goroutine goes on sending
// while the receiver's first Recv retries a stream that broke midway; the
// new stream gets every message, in order, and the sender sees no error.
func TestBidiStreamConcurrentSendAndRecv(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{err: status.Error(codes.Unavailable, "down"), afterRecv: 3}
		}
		return nil
	}}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(duplexCall))
	st, err := c.FullDuplexCall(context.Background())
	require.NoError(t, err)
	const n = 40
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := st.Send(outputRequest(int32(i))); err != nil {
				sent <- err
				return
			}
		}
		sent <- st.CloseSend()
	}()
	msgs, err := recvAll(st)
	require.NoError(t, err)
	require.NoError(t, <-sent)
	require.Len(t, msgs, n)
	for i, m := range msgs {
		assert.Len(t, m.Payload.Body, i)
	}
	assert.Equal(t, 2, srv.count("FullDuplexCall"))
	want := make([]int32, n)
	for i := range want {
		want[i] = int32(i)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	assert.Equal(t, want, srv.recvd[len(srv.recvd)-1], "the second attempt got every message, in order")
}
