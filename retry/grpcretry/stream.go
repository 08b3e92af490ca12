package grpcretry

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/otelpatterns/patterns/retry"
)

// StreamClientInterceptor returns a client interceptor that retries
// streams of safe methods with r, as [UnaryClientInterceptor] retries
// unary calls, but only until the stream is committed: until the first
// message arrives from the server (or Header returns the server's
// metadata). After that, a failure is the caller's to handle, as with no
// interceptor. r must not be nil.
//
// To send the request again, the interceptor keeps the messages the caller
// sent ([WithMaxBuffered], by default 64; a stream that sent more is not
// retried) and whether it closed its side, and replays them on the new
// stream, as gRPC's own retries do (gRFC A6). It keeps references, not
// copies: gRPC already forbids changing a message after SendMsg. A
// server-streaming call's single request is so replayed.
//
// The retries happen inside the first RecvMsg: a stream that fails to
// open, or whose first attempt fails before any response, is opened again
// there, after the backoff or the server's pushback, and RecvMsg returns
// the first message of the attempt that succeeded. Opening the stream
// fails at once only with an error not worth retrying. Until the stream
// is committed, SendMsg on an attempt that has broken returns nil rather
// than io.EOF, since the message is kept for the retry (as with gRPC's own
// retries); RecvMsg reports the failure if the stream is not retried.
// SendMsg and RecvMsg may run on two goroutines, as gRPC allows. Header
// does not retry: on a stream that failed to open it returns the failure.
//
// The stream's context, metadata, per-attempt timeout and telemetry
// behave as for unary calls; each attempt is a stream of its own for a
// stats handler. StreamClientInterceptor panics when r is nil or an
// option is invalid, naming every fault.
func StreamClientInterceptor(r *retry.Retrier, opts ...Option) grpc.StreamClientInterceptor {
	c := newConfig("StreamClientInterceptor", opts)
	if r == nil {
		panic("grpcretry: StreamClientInterceptor: r is nil: a retry.Retrier is required")
	}
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
		if !c.safeMethod(method) {
			return streamer(ctx, desc, cc, method, callOpts...)
		}
		s := &stream{c: c, r: r, ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, opts: callOpts}
		if err := s.open(ctx, false); err != nil {
			if _, _, retryable := c.judge(err, nil, s.attemptTimedOut()); !retryable {
				return nil, err
			}
			s.pending = err // retried by the first RecvMsg
		}
		return s, nil
	}
}

// stream is a client stream that retries until committed. mu guards cur,
// sent, closed and committed, which RecvMsg changes on a retry while
// SendMsg may run on another goroutine.
type stream struct {
	c        *config
	r        *retry.Retrier
	ctx      context.Context
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption

	mu        sync.Mutex
	cur       grpc.ClientStream // nil while the stream failed to open
	pending   error             // the error of an attempt that failed to open
	sent      []any
	overflow  bool // more was sent than could be kept: no retry
	closed    bool // CloseSend was called
	committed bool
	timedOut  *atomic.Bool // the current attempt's per-attempt timeout fired
	timer     *time.Timer
	last      error // the last attempt's error, for RecvMsg's goroutine
}

// open starts an attempt with context ctx and makes it current. With
// replay, it first sends the messages kept so far on it, and closes its
// send side if the caller has, holding mu meanwhile: a SendMsg on
// another goroutine waits, then goes to the new stream, so that no
// message is sent twice or out of order. A broken new stream (io.EOF
// while replaying) is reported by the next RecvMsg.
func (s *stream) open(ctx context.Context, replay bool) error {
	opts := s.opts
	var timedOut *atomic.Bool
	var timer *time.Timer
	var cancel context.CancelFunc
	if s.c.perAttempt > 0 {
		ctx, cancel = context.WithCancel(ctx)
		timedOut = new(atomic.Bool)
		timer = time.AfterFunc(s.c.perAttempt, func() { timedOut.Store(true); cancel() })
		opts = append(opts[:len(opts):len(opts)], grpc.OnFinish(func(error) { timer.Stop(); cancel() }))
	}
	cs, err := s.streamer(ctx, s.desc, s.cc, s.method, opts...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timedOut, s.timer = timedOut, timer
	if err != nil {
		if timer != nil { // an interceptor further in may fail before OnFinish is armed
			timer.Stop()
			cancel()
		}
		s.cur = nil
		return err
	}
	s.cur = cs
	if !replay {
		return nil
	}
	for _, m := range s.sent {
		if err := cs.SendMsg(m); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
	if s.closed {
		if err := cs.CloseSend(); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

func (s *stream) attemptTimedOut() bool { return s.timedOut != nil && s.timedOut.Load() }

func (s *stream) SendMsg(m any) error {
	s.mu.Lock()
	kept := false
	if !s.committed && !s.overflow {
		if len(s.sent) < s.c.maxBuffered {
			s.sent, kept = append(s.sent, m), true
		} else {
			s.overflow, s.sent = true, nil
		}
	}
	cur := s.cur
	s.mu.Unlock()
	if cur == nil {
		return nil // kept for the attempt that RecvMsg will open
	}
	err := cur.SendMsg(m)
	if err == io.EOF && kept {
		// The attempt has broken, but m is kept: the first RecvMsg learns
		// why and, if it retries, sends m again on the new stream. As with
		// gRPC's own retries, the sender goes on meanwhile.
		return nil
	}
	return err
}

func (s *stream) CloseSend() error {
	s.mu.Lock()
	s.closed = true
	cur := s.cur
	s.mu.Unlock()
	if cur == nil {
		return nil
	}
	return cur.CloseSend()
}

func (s *stream) Header() (metadata.MD, error) {
	s.mu.Lock()
	cur, pending := s.cur, s.pending
	s.mu.Unlock()
	if cur == nil {
		return nil, pending
	}
	md, err := cur.Header()
	if err == nil && len(md) > 0 {
		s.commit()
	}
	return md, err
}

func (s *stream) Trailer() metadata.MD {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	if cur == nil {
		return nil
	}
	return cur.Trailer()
}

func (s *stream) Context() context.Context {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	if cur == nil {
		return s.ctx
	}
	return cur.Context()
}

func (s *stream) commit() {
	s.mu.Lock()
	s.committed, s.sent = true, nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
}

func (s *stream) isCommitted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

func (s *stream) RecvMsg(m any) error {
	if s.isCommitted() {
		return s.cur.RecvMsg(m)
	}
	eof := false
	err := s.r.Do(s.ctx, func(actx context.Context) error {
		return s.attempt(actx, m, &eof)
	})
	s.commit()
	switch {
	case err == nil && eof:
		return io.EOF
	case err == nil:
		return nil
	}
	return result(err, s.last)
}

// attempt runs one attempt up to its first message and returns the
// verdict on it for the retrier.
func (s *stream) attempt(actx context.Context, m any, eof *bool) error {
	if retry.ResendCount(actx) > 0 {
		actx = attemptContext(actx, s.method)
		if err := s.open(actx, true); err != nil {
			var trailer metadata.MD
			if s.cur != nil { // opened, but the replay failed
				trailer = s.cur.Trailer()
			}
			return s.verdict(actx, err, trailer)
		}
	} else if s.cur == nil {
		return s.verdict(actx, s.pending, nil)
	}
	err := s.cur.RecvMsg(m)
	switch err {
	case nil:
		return nil
	case io.EOF:
		*eof = true
		return nil
	}
	return s.verdict(actx, err, s.cur.Trailer())
}

func (s *stream) verdict(ctx context.Context, err error, trailer metadata.MD) error {
	s.last = err
	v := s.c.verdict(ctx, err, trailer, s.attemptTimedOut())
	s.mu.Lock()
	overflow := s.overflow
	s.mu.Unlock()
	if overflow {
		return retry.Permanent(err)
	}
	return v
}
