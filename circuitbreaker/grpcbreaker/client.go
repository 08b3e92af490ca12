package grpcbreaker

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// UnaryClientInterceptor returns a client interceptor that sends each unary
// call through the circuit breaker of its method (or of the key chosen by
// [WithKey]), from the interceptor's group ([WithGroup]).
//
// While the breaker rejects, calls fail at once, without reaching the
// network, with an error whose status code is Unavailable and which
// matches [circuitbreaker.ErrOpen] (or [circuitbreaker.ErrTooManyRequests]
// while half-open) with [errors.Is]; [errors.As] finds the
// [*circuitbreaker.RejectedError]. The calls it admits are counted by their
// status code: a code of [WithFailureCodes] as a failure, Canceled as
// nothing, any other code (OK, InvalidArgument, NotFound...) as a success.
// The breaker's classifier sees the call's error for a failure, nil for a
// success and [context.Canceled] for Canceled, which the default
// classifier counts as those outcomes.
//
// A call whose context has already ended when it starts (its deadline
// spent upstream) goes to gRPC, which fails it at once, without the
// breaker: it says nothing of the server. DeadlineExceeded during the
// call counts as a failure, although the deadline is the caller's: a
// slow server is its usual cause. Callers whose deadlines are too short
// for the server's normal latency would trip the breaker of a healthy
// server; leave DeadlineExceeded out of [WithFailureCodes] for them.
// Canceled counts for nothing even when the server (or a proxy), not the
// caller, cancelled the call: gRPC gives the client no way to tell.
//
// UnaryClientInterceptor panics on invalid options (a nil one among them),
// naming every one.
func UnaryClientInterceptor(opts ...Option) grpc.UnaryClientInterceptor {
	c := newClientConfig("UnaryClientInterceptor", opts)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		if ctx.Err() != nil {
			// The caller's deadline passed, or it gave up, before the call:
			// gRPC fails it at once, and that says nothing of the server.
			return invoker(ctx, method, req, reply, cc, callOpts...)
		}
		b := c.group.Get(c.key(ctx, target(cc), method))
		var callErr error
		called := false
		err := b.Execute(ctx, func(ctx context.Context) error {
			called = true
			callErr = invoker(ctx, method, req, reply, cc, callOpts...)
			return c.outcome(callErr)
		})
		if !called {
			return rejected(err)
		}
		return callErr
	}
}

// StreamClientInterceptor returns a client interceptor that sends each
// stream through the circuit breaker of its method (or of the key chosen by
// [WithKey]), from the interceptor's group ([WithGroup]). A rejected stream
// fails to open, with the error [UnaryClientInterceptor] describes.
//
// A stream's outcome is its final status, the one gRPC reports when the
// stream ends: io.EOF from RecvMsg counts as a success, an error status by
// its code as for a unary call. A stream ends, for gRPC and so for the
// breaker, when RecvMsg returns an error (io.EOF included), when a
// non-server-streaming call has received its response, or when the stream's
// context is cancelled. A caller that abandons a stream must cancel its
// context, as gRPC requires to free the stream: the cancellation counts
// for nothing and releases a half-open probe slot at once. A stream that is
// never ended holds its probe slot until the breaker's probe timeout
// ([circuitbreaker.WithProbeTimeout]).
//
// StreamClientInterceptor panics on invalid options (a nil one among
// them), naming every one.
func StreamClientInterceptor(opts ...Option) grpc.StreamClientInterceptor {
	c := newClientConfig("StreamClientInterceptor", opts)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
		if ctx.Err() != nil { // as for unary calls: not the server's doing
			return streamer(ctx, desc, cc, method, callOpts...)
		}
		b := c.group.Get(c.key(ctx, target(cc), method))
		done, err := b.Allow(ctx)
		if err != nil {
			return nil, rejected(err)
		}
		// gRPC calls OnFinish once, with the stream's final status, however
		// the stream ends, cancellation included.
		finish := grpc.OnFinish(func(err error) { done(c.outcome(err)) })
		s, err := streamer(ctx, desc, cc, method, append(callOpts[:len(callOpts):len(callOpts)], finish)...)
		if err != nil {
			// An interceptor further in may fail before gRPC's stream
			// exists, and so before OnFinish is armed; done is idempotent.
			done(c.outcome(err))
		}
		return s, err
	}
}

func target(cc *grpc.ClientConn) string {
	if cc == nil {
		return ""
	}
	return cc.Target()
}

// outcome turns a call's error into the error the breaker's classifier
// sees: nil for a success, context.Canceled for a call that counts for
// nothing, err for a failure.
func (c *clientConfig) outcome(err error) error {
	if err == nil {
		return nil
	}
	return classify(err, c.failures)
}

func classify(err error, failures codeSet) error {
	// The code gRPC reports for err: a handler's plain context error
	// (ctx.Err(), or a driver's error wrapping it) is sent as Canceled or
	// DeadlineExceeded, not Unknown.
	code := status.Code(err)
	if _, ok := status.FromError(err); !ok {
		code = status.FromContextError(err).Code()
	}
	switch {
	case code == codes.Canceled:
		return context.Canceled
	case failures.has(code):
		return err
	}
	return nil
}

// rejected turns a breaker's rejection into a gRPC error: status
// Unavailable, wrapping the rejection.
func rejected(err error) error {
	var re *circuitbreaker.RejectedError
	if !errors.As(err, &re) { // ErrNilBreaker from a misused group cannot happen; keep the error
		return status.Error(codes.Unavailable, err.Error())
	}
	return &RejectedError{re}
}

// RejectedError is the error of a call that a breaker did not let
// through. Its gRPC status ([status.Code], [status.FromError]) is
// Unavailable, and it unwraps to the breaker's
// [*circuitbreaker.RejectedError], so that [errors.Is] matches
// [circuitbreaker.ErrOpen] or [circuitbreaker.ErrTooManyRequests], and a
// retry interceptor (such as grpcretry's) gives up at once.
type RejectedError struct {
	*circuitbreaker.RejectedError
}

// Error returns the status's text: "rpc error: code = Unavailable desc = "
// and the breaker's message.
func (e *RejectedError) Error() string {
	return "rpc error: code = Unavailable desc = " + e.RejectedError.Error()
}

// GRPCStatus returns the status Unavailable with the breaker's message.
func (e *RejectedError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.RejectedError.Error())
}

// Unwrap returns the breaker's rejection.
func (e *RejectedError) Unwrap() error { return e.RejectedError }

// ErrorType returns the rejection's error.type:
// "circuitbreaker.open" or "circuitbreaker.too_many_requests".
func (e *RejectedError) ErrorType() string { return telemetry.ErrorTypeString(e.RejectedError) }
