package grpcretry_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

// TestStreamNeverOpenedAfterGivingUp: a stream that failed to open on
// every attempt reports the failure on every later RecvMsg (it used to
// dereference a nil stream), and SendMsg on it reports io.EOF rather than
// pretending to send.
func TestStreamNeverOpenedAfterGivingUp(t *testing.T) {
	inner := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, grpc.Streamer, ...grpc.CallOption) (grpc.ClientStream, error) {
		return nil, status.Error(codes.Unavailable, "no connection")
	}
	c := streamClientWith(t, &server{}, fast(), inner, grpcretry.WithMethods(duplexCall))
	st, err := c.FullDuplexCall(context.Background())
	require.NoError(t, err, "the failure to open is left to Recv")
	_, err = st.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err))
	_, err = st.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err), "the second Recv too")
	assert.ErrorIs(t, st.Send(outputRequest(1)), io.EOF, "nothing can be sent on a stream that gave up")
	md, err := st.Header()
	assert.Nil(t, md)
	assert.Equal(t, codes.Unavailable, status.Code(err))
}

// TestStreamNotRetriedAfterHeaders: a server that sent its response
// headers has committed the call (gRFC A6): a failure before the first
// message is not retried.
func TestStreamNotRetriedAfterHeaders(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{err: status.Error(codes.Unavailable, "down after headers"), header: true}
		}
		return nil
	}}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(outputCall))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1))
	require.NoError(t, err)
	_, err = recvAll(st)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, 1, srv.count("StreamingOutputCall"), "committed by the headers")
	assert.Equal(t, []string{"headers"}, func() []string { md, _ := st.Header(); return md.Get("x-attempt") }())
}

// retryOnRetry is a retrier option that calls f before each wait.
func retryOnRetry(f func()) retry.Option {
	return retry.WithOnRetry(func(context.Context, int, error, time.Duration) { f() })
}

// TestStreamOverflowDuringRetryNotReplayed: messages sent while the
// retry waits, past the buffer limit, can no longer be replayed: the call
// must not be retried with part of them (it used to replay nothing and
// let the new attempt answer as if the client had sent nothing).
func TestStreamOverflowDuringRetryNotReplayed(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{err: status.Error(codes.Unavailable, "down"), afterRecv: 1}
		}
		return nil
	}}
	waiting := make(chan struct{})
	resume := make(chan struct{})
	r := fast(retryOnRetry(func() {
		close(waiting)
		<-resume
	}))
	c := streamClient(t, srv, r, grpcretry.WithMethods(duplexCall), grpcretry.WithMaxBuffered(2))
	st, err := c.FullDuplexCall(context.Background())
	require.NoError(t, err)
	require.NoError(t, st.Send(outputRequest(1)))
	recvd := make(chan error, 1)
	go func() {
		_, err := recvAll(st)
		recvd <- err
	}()
	<-waiting // the first attempt failed; the retrier is about to wait
	for _, n := range []int32{2, 3} {
		_ = st.Send(outputRequest(n)) // the third message overflows the buffer
	}
	_ = st.CloseSend()
	close(resume)
	err = <-recvd
	assert.Equal(t, codes.Unavailable, status.Code(err), "not retried: the messages cannot all be sent again")
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i, got := range srv.recvd[1:] {
		assert.Equal(t, []int32{1, 2, 3}, got, "attempt %d got every message or did not happen", i+2)
	}
}

// slowFirstRecv is a client stream whose first RecvMsg, once it has the
// message, waits until the attempt's context ends: the per-attempt timer
// fires between the message's arrival and the commit.
type slowFirstRecv struct {
	grpc.ClientStream
	ctx  context.Context
	once bool
}

func (s *slowFirstRecv) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil && !s.once {
		s.once = true
		<-s.ctx.Done()
	}
	return err
}

// TestStreamTimerRacesFirstMessage: a per-attempt timeout that fires as
// the first message arrives cancels that attempt; it must then be
// retried, not handed to the caller as committed (it used to be, and the
// next Recv failed with Canceled).
func TestStreamTimerRacesFirstMessage(t *testing.T) {
	// The first attempt sends one message, then hangs until cancelled.
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{block: true, sendFirst: 1}
		}
		return nil
	}}
	attempts := 0
	inner := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		attempts++
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || attempts > 1 {
			return cs, err
		}
		return &slowFirstRecv{ClientStream: cs, ctx: ctx}, nil
	}
	c := streamClientWith(t, srv, fast(), inner, grpcretry.WithMethods(outputCall), grpcretry.WithPerAttemptTimeout(300*time.Millisecond))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1, 2))
	require.NoError(t, err)
	msgs, err := recvAll(st)
	require.NoError(t, err)
	assert.Len(t, msgs, 2)
	assert.Equal(t, 2, attempts, "the cancelled attempt was retried")
}

// TestUnaryCallOptionsFromLastAttemptOnly: grpc.OnFinish is called once
// for the call, not once per attempt, and grpc.Header, grpc.Trailer and
// grpc.Peer hold nothing of an earlier attempt when the last one never
// reached a server (they used to keep the first attempt's trailer, its
// pushback included).
func TestUnaryCallOptionsFromLastAttemptOnly(t *testing.T) {
	srv := &server{script: func(string, int) *fault {
		return &fault{err: status.Error(codes.Unavailable, "down"), trailer: metadata.Pairs("x-attempt", "1")}
	}}
	calls := 0
	inner := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		calls++
		if calls > 1 { // no connection: the attempt never reaches a server
			return status.Error(codes.Unavailable, "no connection")
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	cc := serve(t, srv, false, nil, grpc.WithChainUnaryInterceptor(
		grpcretry.UnaryClientInterceptor(fast(retry.WithMaxAttempts(2)), grpcretry.WithMethods(unaryCall)), inner))
	var finished []error
	var header, trailer metadata.MD
	var p peer.Peer
	_, err := testpb.NewTestServiceClient(cc).UnaryCall(context.Background(), &testpb.SimpleRequest{},
		grpc.OnFinish(func(err error) { finished = append(finished, err) }), grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, 2, calls)
	require.Len(t, finished, 1, "OnFinish once for the call")
	assert.Equal(t, err, finished[0], "with the call's error")
	assert.Nil(t, trailer, "not the first attempt's trailer")
	assert.Nil(t, header)
	assert.Nil(t, p.Addr)
}

// TestStreamCallOptionsFromLastAttemptOnly: as for unary calls, the
// caller's grpc.Trailer (and grpc.Header, grpc.Peer) holds nothing of an
// earlier attempt when the last one never reached a server (it used to
// keep the first attempt's trailer while the stream's Trailer said nil).
func TestStreamCallOptionsFromLastAttemptOnly(t *testing.T) {
	srv := &server{script: func(string, int) *fault {
		return &fault{err: status.Error(codes.Unavailable, "down"), trailer: metadata.Pairs("x-attempt", "1")}
	}}
	var opens int
	inner := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		opens++ // RecvMsg's goroutine only
		if opens > 1 {
			return nil, status.Error(codes.Unavailable, "no connection")
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	c := streamClientWith(t, srv, fast(retry.WithMaxAttempts(2)), inner, grpcretry.WithMethods(outputCall))
	var tr metadata.MD
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1), grpc.Trailer(&tr))
	require.NoError(t, err)
	_, err = recvAll(st)
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, 2, opens, "the second attempt failed to open")
	assert.Nil(t, st.Trailer(), "the last attempt has no trailer")
	assert.Nil(t, tr, "not the first attempt's trailer")
}

// TestStreamOnFinishWhenAbandonedBeforeOpen: a stream whose first attempt
// failed to open with a retryable code is handed back with the failure
// left to the first RecvMsg; a caller that abandons it by cancelling its
// context, without RecvMsg, gets its grpc.OnFinish called once, with
// Canceled, as gRPC does for a stream it opened (it used to be never
// called: with no attempt alive, nothing watched the context).
func TestStreamOnFinishWhenAbandonedBeforeOpen(t *testing.T) {
	inner := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, grpc.Streamer, ...grpc.CallOption) (grpc.ClientStream, error) {
		return nil, status.Error(codes.Unavailable, "no connection")
	}
	c := streamClientWith(t, &server{}, fast(), inner, grpcretry.WithMethods(duplexCall))
	finished := make(chan error, 2)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.FullDuplexCall(ctx, grpc.OnFinish(func(err error) { finished <- err }))
	require.NoError(t, err, "the failure to open is left to Recv")
	cancel() // abandon the stream, as gRPC asks
	select {
	case err := <-finished:
		assert.Equal(t, codes.Canceled, status.Code(err))
	case <-time.After(10 * time.Second):
		t.Fatal("OnFinish never called for a stream cancelled by its caller")
	}
	_, err = st.Recv()
	assert.Equal(t, codes.Canceled, status.Code(err))
	assert.Empty(t, finished, "OnFinish called once")
}

// TestStreamOnFinishOnce: a caller's grpc.OnFinish is called once, with
// the stream's final status, not once per attempt (it used to get the
// failed attempt's Unavailable too: a breaker's stream interceptor
// outside the retry would count a failure for a call that succeeded).
func TestStreamOnFinishOnce(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{err: status.Error(codes.Unavailable, "down")}
		}
		return nil
	}}
	c := streamClient(t, srv, fast(), grpcretry.WithMethods(outputCall))
	var mu sync.Mutex
	var finished []error
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1), grpc.OnFinish(func(err error) {
		mu.Lock()
		finished = append(finished, err)
		mu.Unlock()
	}))
	require.NoError(t, err)
	msgs, err := recvAll(st)
	require.NoError(t, err)
	assert.Len(t, msgs, 1)
	assert.Equal(t, 2, srv.count("StreamingOutputCall"))
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []error{nil}, finished, "once, with the final status")

	// A stream that gives up: once, with the error Recv returned.
	srv2 := &server{script: failing(10, status.Error(codes.Unavailable, "down"))}
	c2 := streamClient(t, srv2, fast(retry.WithMaxAttempts(2)), grpcretry.WithMethods(outputCall))
	var finished2 []error
	st, err = c2.StreamingOutputCall(context.Background(), outputRequest(1), grpc.OnFinish(func(err error) { finished2 = append(finished2, err) }))
	require.NoError(t, err)
	_, err = recvAll(st)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, []error{err}, finished2)
}

// TestCancelWithCauseWhileWaiting: a caller that cancels with a cause
// (context.WithCancelCause) while the interceptor waits gets Canceled; it
// used to get the last attempt's Unavailable, since the retrier's reason
// is the cause, not context.Canceled.
func TestCancelWithCauseWhileWaiting(t *testing.T) {
	srv := &server{script: failing(10, status.Error(codes.Unavailable, "down"))}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	shutdown := errors.New("shutting down")
	r := retry.New(retry.WithBackoff(retry.Constant(time.Hour)), retry.WithOnRetry(func(context.Context, int, error, time.Duration) { cancel(shutdown) }))
	c := unaryClient(t, srv, r, grpcretry.WithMethods(unaryCall))
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	assert.Equal(t, codes.Canceled, status.Code(err))
	assert.ErrorIs(t, err, shutdown, "the cause is kept")

	srv2 := &server{script: failing(10, status.Error(codes.Unavailable, "down"))}
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	defer cancel2(nil)
	r2 := retry.New(retry.WithBackoff(retry.Constant(time.Hour)), retry.WithOnRetry(func(context.Context, int, error, time.Duration) { cancel2(shutdown) }))
	st, err := streamClient(t, srv2, r2, grpcretry.WithMethods(outputCall)).StreamingOutputCall(ctx2, outputRequest(1))
	require.NoError(t, err)
	_, err = st.Recv()
	assert.Equal(t, codes.Canceled, status.Code(err), "a stream too")
}

// slowHeader is a client stream whose Header, once it has the server's
// headers, waits until the attempt's context ends: the per-attempt timer
// fires while the caller reads the headers.
type slowHeader struct {
	grpc.ClientStream
	ctx      context.Context
	recvGate chan struct{} // RecvMsg returns only once this is closed
}

func (s *slowHeader) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	<-s.recvGate
	return err
}

func (s *slowHeader) Header() (metadata.MD, error) {
	md, err := s.ClientStream.Header()
	<-s.ctx.Done()
	return md, err
}

// TestStreamHeaderCommitsAgainstTimer: a caller that got the headers from
// Header has committed the stream, even if the per-attempt timeout then
// cuts that attempt: Recv must not retry and mix another attempt's
// messages with those headers (it used to retry, the timer's cut being
// retryable).
func TestStreamHeaderCommitsAgainstTimer(t *testing.T) {
	srv := &server{script: func(_ string, n int) *fault {
		if n == 1 {
			return &fault{header: true, block: true}
		}
		return nil
	}}
	var attempts atomic.Int32
	recvGate := make(chan struct{})
	inner := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		n := attempts.Add(1)
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || n > 1 {
			return cs, err
		}
		return &slowHeader{ClientStream: cs, ctx: ctx, recvGate: recvGate}, nil
	}
	c := streamClientWith(t, srv, fast(), inner, grpcretry.WithMethods(outputCall), grpcretry.WithPerAttemptTimeout(300*time.Millisecond))
	st, err := c.StreamingOutputCall(context.Background(), outputRequest(1))
	require.NoError(t, err)
	recvd := make(chan error, 1)
	go func() { // a receiver already waiting in Recv, as gRPC allows
		_, err := recvAll(st)
		recvd <- err
	}()
	md, err := st.Header()
	require.NoError(t, err)
	assert.Equal(t, []string{"headers"}, md.Get("x-attempt"))
	close(recvGate) // the cut attempt's Recv returns after Header committed
	assert.Error(t, <-recvd, "the committed attempt was cut")
	assert.Equal(t, int32(1), attempts.Load(), "no retry after the caller had the headers")
}

// TestStreamReplayFailureDoesNotDeadlock: a message that gRPC refuses on
// the replay (too large) makes gRPC finish the new stream, calling its
// OnFinish from inside SendMsg while the interceptor replays under its
// lock; that must not deadlock, and Recv reports the refusal.
func TestStreamReplayFailureDoesNotDeadlock(t *testing.T) {
	opens := 0
	inner := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		opens++
		if opens == 1 {
			return nil, status.Error(codes.Unavailable, "no connection")
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	c := streamClientWith(t, &server{}, fast(), inner, grpcretry.WithMethods(duplexCall))
	st, err := c.FullDuplexCall(context.Background(), grpc.MaxCallSendMsgSize(16), grpc.OnFinish(func(error) {}))
	require.NoError(t, err)
	require.NoError(t, st.Send(outputRequest(1, 2, 3, 4, 5, 6, 7, 8)), "kept until a stream opens")
	recvd := make(chan error, 1)
	go func() {
		_, err := st.Recv()
		recvd <- err
	}()
	select {
	case err := <-recvd:
		assert.Equal(t, codes.ResourceExhausted, status.Code(err), "gRPC's refusal of the message")
	case <-time.After(10 * time.Second):
		t.Fatal("Recv still blocked after 10s: deadlock in the replay")
	}
}
