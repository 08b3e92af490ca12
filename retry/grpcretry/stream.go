package grpcretry

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/retry"
)

// StreamClientInterceptor returns a client interceptor that retries
// streams of safe methods with r, as [UnaryClientInterceptor] retries
// unary calls, but only until the stream is committed: until the server's
// response headers or first message arrive (Header returning them commits
// too), or the caller has sent more than can be kept. After that, a
// failure is the caller's to handle, as with no interceptor. r must not
// be nil.
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
// the first message of the attempt that succeeded. The caller's
// grpc.OnFinish options are called once, with the stream's final status
// (or the error RecvMsg returned when the retries ended, or the context's
// status for a stream that failed to open and was abandoned before
// RecvMsg), not once per attempt. A server that sent its response headers
// has committed the stream too (gRFC A6), unless the per-attempt timeout
// cut the attempt short. Opening the stream fails at once only with an
// error not worth retrying; a stream that never opened fails every
// RecvMsg with the final error, and SendMsg on it with io.EOF. Until the
// stream is committed, SendMsg on an attempt that has broken returns nil
// rather than io.EOF, since the message is kept for the retry (as with
// gRPC's own retries); RecvMsg reports the failure if the stream is not
// retried. SendMsg and RecvMsg may run on two goroutines, as gRPC allows.
// Header does not retry: on a stream that failed to open it returns the
// failure.
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
		s.takeOnFinish()
		if err := s.open(ctx, false); err != nil {
			if _, _, retryable := c.judge(err, nil, s.attemptTimedOut()); !retryable {
				s.finish(err)
				return nil, err
			}
			s.pending = err // retried by the first RecvMsg
			s.watchAbandon()
		}
		return s, nil
	}
}

// stream is a client stream that retries until committed. mu guards cur,
// att, pending, sent, overflow, closed, committed and final, which RecvMsg
// changes on a retry while SendMsg may run on another goroutine.
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
	att       *attemptCtl       // the latest attempt's cancel and timer
	pending   error             // the error of the latest attempt that failed to open
	sent      []any
	overflow  bool // more was sent than could be kept: no retry
	closed    bool // CloseSend was called
	committed bool
	final     error // the error RecvMsg returned when it gave up
	last      error // the last attempt's error, for RecvMsg's goroutine

	onFinish []grpc.OnFinishCallOption // the caller's, called once for the stream
	finished sync.Once
	abandon  func() bool // stops watchAbandon's watch; set before the caller has s
	// fmu guards the attempts' done, err and final. It is not mu: gRPC
	// may call an attempt's OnFinish from inside SendMsg, while open
	// replays under mu.
	fmu sync.Mutex
}

// takeOnFinish takes the caller's grpc.OnFinish options out of the
// attempts' options: they are called once, with the stream's final
// status, not once per attempt.
func (s *stream) takeOnFinish() {
	n := 0
	for _, o := range s.opts {
		if _, ok := o.(grpc.OnFinishCallOption); ok {
			n++
		}
	}
	if n == 0 {
		return
	}
	opts := make([]grpc.CallOption, 0, len(s.opts)-n)
	for _, o := range s.opts {
		if f, ok := o.(grpc.OnFinishCallOption); ok {
			s.onFinish = append(s.onFinish, f)
			continue
		}
		opts = append(opts, o)
	}
	s.opts = opts
}

// finish calls the caller's OnFinish options, once.
func (s *stream) finish(err error) {
	if len(s.onFinish) == 0 {
		return
	}
	s.finished.Do(func() {
		for _, f := range s.onFinish {
			f.OnFinish(err)
		}
	})
}

// watchAbandon finishes a stream that failed to open if the caller's
// context ends before the first RecvMsg: with no attempt alive, gRPC
// would not, and a caller may abandon a stream without RecvMsg, by
// cancelling its context. The first RecvMsg stops the watch: it retries,
// and finishes the stream as the retries end.
func (s *stream) watchAbandon() {
	if len(s.onFinish) == 0 {
		return
	}
	s.abandon = context.AfterFunc(s.ctx, func() {
		s.finish(status.FromContextError(s.ctx.Err()).Err())
	})
}

// attemptFinished is gRPC's report that attempt a's stream has ended.
// It is the stream's end for the caller when a is the committed attempt,
// or when the caller's context has ended (no retry can follow).
func (s *stream) attemptFinished(a *attemptCtl, err error) {
	a.stop()
	s.fmu.Lock()
	a.done, a.err = true, err
	forward := a.final || s.ctx.Err() != nil
	s.fmu.Unlock()
	if forward {
		s.finish(err)
	}
}

// attemptCtl ends an attempt: its context's cancel, and its per-attempt
// timer, if any. state settles the race between the timer and the first
// message: the timer cancels the attempt only if it moves state from
// running to timedOut, and the first message commits it only if it moves
// state from running to committed.
type attemptCtl struct {
	cancel context.CancelFunc
	timer  *time.Timer
	state  atomic.Int32

	// Guarded by the stream's fmu.
	done  bool  // gRPC reported the attempt's end, with err
	err   error //
	final bool  // the stream is committed to this attempt
}

const (
	attemptRunning int32 = iota
	attemptExpired
	attemptCommitted
)

// stop ends the attempt's timer and cancels its context: an attempt that
// is no longer current, or whose stream has finished, holds nothing.
func (a *attemptCtl) stop() {
	if a.timer != nil {
		a.timer.Stop()
	}
	a.cancel()
}

// settle commits the attempt against its timer: false if the timer fired
// first (the attempt's context has ended with DeadlineExceeded).
func (a *attemptCtl) settle() bool {
	return a.state.CompareAndSwap(attemptRunning, attemptCommitted) || a.state.Load() == attemptCommitted
}

// timeoutCtx is the context of an attempt under a per-attempt timeout,
// which its timer ends with DeadlineExceeded, so that gRPC fails the
// attempt with DeadlineExceeded, as a unary attempt's deadline does (a
// breaker further in counts it; Canceled it would ignore). It has no
// deadline of its own, unlike a context.WithDeadline one: gRPC would send
// that to the server, and a committed stream, which the timeout no longer
// bounds, could not outlive it on either side.
type timeoutCtx struct {
	context.Context // the call's
	done            chan struct{}
	unfollow        func() bool // stops following the call's context

	mu  sync.Mutex
	err error
}

func newTimeoutCtx(parent context.Context) *timeoutCtx {
	c := &timeoutCtx{Context: parent, done: make(chan struct{})}
	c.unfollow = context.AfterFunc(parent, func() { c.end(parent.Err()) })
	return c
}

func (c *timeoutCtx) Done() <-chan struct{} { return c.done }

func (c *timeoutCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// end ends the context with err, unless it has ended already.
func (c *timeoutCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

// cancel ends the context with Canceled, and stops following the call's
// context: it is the attempt's cancel, which every attempt gets.
func (c *timeoutCtx) cancel() {
	c.end(context.Canceled)
	c.unfollow()
}

// errOverflow is open's answer when the messages sent can no longer all
// be replayed.
var errOverflow = errors.New("grpcretry: more messages sent than kept for a retry")

// open starts an attempt with context ctx and makes it current. With
// replay, it first sends the messages kept so far on it, and closes its
// send side if the caller has, holding mu meanwhile: a SendMsg on
// another goroutine waits, then goes to the new stream, so that no
// message is sent twice or out of order. A broken new stream (io.EOF
// while replaying) is reported by the next RecvMsg. With replay, open
// returns errOverflow, without opening a stream or after cancelling the
// one it opened, when the caller has sent more than could be kept.
func (s *stream) open(ctx context.Context, replay bool) error {
	if replay && s.overflowed() {
		return errOverflow
	}
	a := &attemptCtl{}
	if s.c.perAttempt > 0 {
		tc := newTimeoutCtx(ctx)
		ctx, a.cancel = tc, tc.cancel
		a.timer = time.AfterFunc(s.c.perAttempt, func() {
			if a.state.CompareAndSwap(attemptRunning, attemptExpired) {
				tc.end(context.DeadlineExceeded)
			}
		})
	} else {
		ctx, a.cancel = context.WithCancel(ctx)
	}
	opts := append(s.opts[:len(s.opts):len(s.opts)], grpc.OnFinish(func(err error) { s.attemptFinished(a, err) }))
	cs, err := s.streamer(ctx, s.desc, s.cc, s.method, opts...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		a.stop() // an interceptor further in may fail before OnFinish is armed
		if s.att != nil {
			s.att.stop()
		}
		s.cur, s.att, s.pending = nil, a, err
		return err
	}
	if replay && s.overflow {
		a.stop()
		return errOverflow
	}
	if s.att != nil {
		s.att.stop() // the attempt replaced, should it not have ended yet
	}
	s.cur, s.att = cs, a
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

func (s *stream) overflowed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overflow
}

func (s *stream) attemptTimedOut() bool {
	s.mu.Lock()
	a := s.att
	s.mu.Unlock()
	return a != nil && a.state.Load() == attemptExpired
}

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
		if kept {
			return nil // kept for the attempt that RecvMsg will open
		}
		// No stream to send on, and m cannot be kept: the call has
		// failed, or will (RecvMsg says why).
		return io.EOF
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
	cur, pending, final := s.cur, s.pending, s.final
	s.mu.Unlock()
	if cur == nil {
		if final != nil {
			return nil, final
		}
		return nil, pending
	}
	md, err := cur.Header()
	if err == nil && md != nil { // the server's headers (gRPC returns nil, nil for a failed attempt)
		s.commit(nil)
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

// commit ends the retries; final, if not nil, is the error of a stream
// that gave up, which every later RecvMsg returns.
func (s *stream) commit(final error) {
	s.mu.Lock()
	s.committed, s.sent = true, nil
	if final != nil && s.final == nil {
		s.final = final
	}
	a := s.att
	if a != nil && a.timer != nil {
		a.settle()
		a.timer.Stop()
	}
	s.mu.Unlock()
	if final != nil {
		s.finish(final)
		return
	}
	if a == nil {
		return
	}
	s.fmu.Lock()
	a.final = true
	ended, err := a.done, a.err // the attempt committed to has ended already
	s.fmu.Unlock()
	if ended {
		s.finish(err)
	}
}

func (s *stream) RecvMsg(m any) error {
	s.mu.Lock()
	committed, cur, final := s.committed, s.cur, s.final
	s.mu.Unlock()
	if committed {
		if final != nil {
			return final
		}
		return cur.RecvMsg(m)
	}
	if s.abandon != nil {
		s.abandon()
	}
	eof := false
	err := s.r.Do(s.ctx, func(actx context.Context) error {
		return s.attempt(actx, m, &eof)
	})
	if err == nil {
		s.commit(nil)
		if eof {
			return io.EOF
		}
		return nil
	}
	err = result(s.ctx, err, s.last)
	s.commit(err)
	return err
}

// attempt runs one attempt up to its first message and returns the
// verdict on it for the retrier.
func (s *stream) attempt(actx context.Context, m any, eof *bool) error {
	if retry.ResendCount(actx) > 0 {
		// As for unary calls: should this attempt not reach a server, the
		// caller must not get the headers, trailer or peer of the last.
		resetResults(s.opts)
		actx = attemptContext(actx, s.method)
		if err := s.open(actx, true); err != nil {
			if err == errOverflow {
				// The messages can no longer all be sent again: the call is
				// committed to the attempt that failed.
				return retry.Permanent(s.last)
			}
			var trailer metadata.MD
			if s.cur != nil { // opened, but the replay failed
				trailer = s.cur.Trailer()
			}
			return s.verdict(actx, err, trailer)
		}
	} else if s.cur == nil {
		return s.verdict(actx, s.pending, nil)
	}
	cur, a := s.cur, s.att
	err := cur.RecvMsg(m)
	switch err {
	case nil:
		if !a.settle() {
			// The per-attempt timeout fired as the message arrived: the
			// attempt is cancelled, and the caller has seen nothing of it.
			return s.verdict(actx, status.Error(codes.DeadlineExceeded, "grpcretry: per-attempt timeout"), nil)
		}
		return nil
	case io.EOF:
		*eof = true
		return nil
	}
	if a.state.Load() != attemptExpired {
		if md, _ := cur.Header(); md != nil {
			// The server sent its headers before failing: the call is
			// committed (gRFC A6), as with gRPC's own retries.
			s.last = err
			return retry.Permanent(err)
		}
	}
	return s.verdict(actx, err, cur.Trailer())
}

func (s *stream) verdict(ctx context.Context, err error, trailer metadata.MD) error {
	s.last = err
	v := s.c.verdict(ctx, err, trailer, s.attemptTimedOut())
	s.mu.Lock()
	// Overflowed: the messages can no longer all be sent again. Committed:
	// the caller has had the attempt's headers from Header.
	stop := s.overflow || s.committed
	s.mu.Unlock()
	if stop {
		return retry.Permanent(err)
	}
	return v
}
