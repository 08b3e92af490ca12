package grpcretry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/retry"
)

// PushbackKey is the trailer metadata key by which a server tells the
// client how long to wait before retrying, in milliseconds (gRFC A6).
const PushbackKey = "grpc-retry-pushback-ms"

// PreviousAttemptsKey is the metadata key sent with every retry: how many
// attempts of the call came before (gRFC A6).
const PreviousAttemptsKey = "grpc-previous-rpc-attempts"

// UnaryClientInterceptor returns a client interceptor that retries unary
// calls of safe methods with r: its attempts, backoff, jitter, budget and
// elapsed-time limit, its telemetry (the retry span and metrics), and its
// hooks. r must not be nil.
//
// A method is safe when listed by [WithMethods], accepted by [WithSafe],
// or marked in its proto definition with option idempotency_level =
// IDEMPOTENT or NO_SIDE_EFFECTS (unless [WithoutIdempotencyLevel]); calls of
// other methods go through untouched. A failed attempt is retried when its
// status code is one of [WithRetryCodes] (by default Unavailable), or
// ResourceExhausted with a pushback, or DeadlineExceeded from the
// per-attempt timeout ([WithPerAttemptTimeout]) while the call's deadline
// has not passed.
//
// The server's pushback, the grpc-retry-pushback-ms trailer, replaces the
// backoff's wait; a negative or malformed one, or one longer than
// [WithMaxPushback], ends the retries (gRFC A6). No wait goes past the
// call's deadline: the retries end instead, with the last attempt's
// status.
//
// Each attempt is a new call down the chain: the caller's outgoing
// metadata is sent again, with grpc-previous-rpc-attempts on retries, and a
// stats handler (otelgrpc) makes a client span per attempt and injects its
// trace context; the retries' spans are children of r's retry span.
//
// The error of a call that was retried and failed has the last attempt's
// status (Canceled or DeadlineExceeded if the call's context ended while
// waiting) and unwraps to the [*retry.Error] that holds every attempt's
// error. A call that failed once, with an error not worth retrying or
// because its context ended during the attempt, returns that error
// untouched.
//
// UnaryClientInterceptor panics when r is nil or an option is invalid (a
// nil one among them), naming every fault.
func UnaryClientInterceptor(r *retry.Retrier, opts ...Option) grpc.UnaryClientInterceptor {
	c := newConfig("UnaryClientInterceptor", opts)
	if r == nil {
		panic("grpcretry: UnaryClientInterceptor: r is nil: a retry.Retrier is required")
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		if !c.safeMethod(method) {
			return invoker(ctx, method, req, reply, cc, callOpts...)
		}
		var trailer metadata.MD
		// The attempts' options: the caller's, but for OnFinish, called once
		// for the call below rather than once per attempt, and with the
		// trailer, for the pushback.
		withTrailer := make([]grpc.CallOption, 0, len(callOpts)+1)
		var onFinish []grpc.OnFinishCallOption
		for _, o := range callOpts {
			if f, ok := o.(grpc.OnFinishCallOption); ok {
				onFinish = append(onFinish, f)
				continue
			}
			withTrailer = append(withTrailer, o)
		}
		withTrailer = append(withTrailer, grpc.Trailer(&trailer))
		var last error
		err := r.Do(ctx, func(actx context.Context) error {
			if retry.ResendCount(actx) > 0 {
				resetResults(callOpts)
			}
			actx = attemptContext(actx, method)
			var cancel context.CancelFunc
			var until time.Time
			if c.perAttempt > 0 {
				until = time.Now().Add(c.perAttempt)
				actx, cancel = context.WithDeadline(actx, until)
			}
			trailer = nil
			last = invoker(actx, method, req, reply, cc, withTrailer...)
			timedOut := false
			if cancel != nil {
				cancel()
				timedOut = attemptTimedOut(ctx, until)
			}
			return c.verdict(actx, last, trailer, timedOut)
		})
		err = result(ctx, err, last)
		for _, f := range onFinish {
			f.OnFinish(err)
		}
		return err
	}
}

// resetResults clears what the caller's grpc.Header, grpc.Trailer and
// grpc.Peer options received from an earlier attempt: gRPC fills them only
// for an attempt that reached a server, and the caller must not get the
// headers, trailer (a pushback) or peer of an attempt other than the last.
func resetResults(callOpts []grpc.CallOption) {
	for _, o := range callOpts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			if o.HeaderAddr != nil {
				*o.HeaderAddr = nil
			}
		case grpc.TrailerCallOption:
			if o.TrailerAddr != nil {
				*o.TrailerAddr = nil
			}
		case grpc.PeerCallOption:
			if o.PeerAddr != nil {
				*o.PeerAddr = peer.Peer{}
			}
		}
	}
}

// attemptTimedOut reports whether an attempt whose own deadline was until
// has run out of time while the call as a whole has not. It reads the
// clock rather than the attempt context's error: the server, which knows
// the deadline too, may end the call before the client's timer fires.
func attemptTimedOut(ctx context.Context, until time.Time) bool {
	now := time.Now()
	if now.Before(until) || ctx.Err() != nil {
		return false
	}
	dl, ok := ctx.Deadline()
	return !ok || now.Before(dl)
}

// attemptContext prepares the context of an attempt: from the first retry
// on, it carries grpc-previous-rpc-attempts and names the method on the
// retry span.
func attemptContext(ctx context.Context, method string) context.Context {
	n := retry.ResendCount(ctx)
	if n == 0 {
		return ctx
	}
	if n == 1 {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.SetAttributes(semconv.RPCSystemNameGRPC, semconv.RPCMethod(rpcMethod(method)))
		}
	}
	return metadata.AppendToOutgoingContext(ctx, PreviousAttemptsKey, strconv.Itoa(n))
}

// rpcMethod is the rpc.method attribute of a full method name:
// "package.Service/Method".
func rpcMethod(fullMethod string) string {
	if len(fullMethod) > 0 && fullMethod[0] == '/' {
		return fullMethod[1:]
	}
	return fullMethod
}

// verdict tells the retrier what to make of an attempt's error: nil for a
// success, the error for a retry after the backoff, the error with the
// server's pushback for a retry after it, Permanent otherwise. ctx is the
// attempt's context.
func (c *config) verdict(ctx context.Context, err error, trailer metadata.MD, timedOut bool) error {
	if err == nil {
		return nil
	}
	code := status.Code(err)
	if span := trace.SpanFromContext(ctx); span.IsRecording() && retry.ResendCount(ctx) > 0 {
		span.SetAttributes(semconv.RPCResponseStatusCode(codeName(code)))
	}
	wait, pushed, retryable := c.judge(err, trailer, timedOut)
	switch {
	case !retryable:
		return retry.Permanent(err)
	case pushed:
		return retry.After(wait, err)
	}
	return err
}

// judge decides whether a failed attempt is worth retrying, and after
// which pushback, if the server sent one.
func (c *config) judge(err error, trailer metadata.MD, timedOut bool) (wait time.Duration, pushed, retryable bool) {
	code := status.Code(err)
	wait, pushed, refused := c.pushback(trailer)
	if refused {
		return 0, true, false
	}
	// An attempt cut short by its own timeout fails with DeadlineExceeded,
	// a stream's attempt too (its timeoutCtx).
	retryable = c.retryCodes.has(code) || code == codes.ResourceExhausted && pushed ||
		timedOut && code == codes.DeadlineExceeded
	return wait, pushed, retryable
}

// pushback reads the server's pushback from an attempt's trailer: the
// wait, whether there was one, and whether it forbids retrying (negative,
// malformed or longer than the maximum).
func (c *config) pushback(trailer metadata.MD) (wait time.Duration, pushed, refused bool) {
	vs := trailer.Get(PushbackKey)
	if len(vs) == 0 {
		return 0, false, false
	}
	ms, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || ms < 0 || len(vs) > 1 {
		return 0, true, true
	}
	if ms > int64(c.maxPushback/time.Millisecond) {
		return 0, true, true
	}
	return time.Duration(ms) * time.Millisecond, true, false
}

// result returns what the caller gets from the retrier's error: nil,
// the single attempt's error untouched, or an *Error.
func result(ctx context.Context, err, last error) error {
	if err == nil {
		return nil
	}
	var re *retry.Error
	if !errors.As(err, &re) {
		return err // ErrNilFunc and the like: cannot happen
	}
	if re.Attempts == 1 && (re.Reason == nil || endedDuring(ctx, last)) {
		// Not retried: the attempt's error was not worth a retry, or the
		// call's context ended during the attempt, which gRPC's error
		// says already (the retrier's Reason is then the context's).
		return last
	}
	e := &Error{re: re}
	if re.Reason != nil && ctx.Err() != nil {
		// The retrier stopped because the call's context ended. Its
		// Reason is the context's cause, which may be any error
		// (context.WithCancelCause): the code comes from ctx.Err().
		e.ctxCode = status.FromContextError(ctx.Err()).Code()
	}
	return e
}

// endedDuring reports whether the call's context ended during the attempt
// that failed with last, rather than in a wait after it: gRPC failed the
// attempt with the context's code.
func endedDuring(ctx context.Context, last error) bool {
	err := ctx.Err()
	return err != nil && status.Code(last) == status.FromContextError(err).Code()
}

// Error is the error of a call that the interceptor retried and that
// failed. Its gRPC status ([status.Code], [status.FromError]) is that of the
// last attempt, or Canceled or DeadlineExceeded when the call's context
// ended while the interceptor waited; it unwraps to the [*retry.Error] that
// holds every attempt's error and why the retries ended (errors.Is with
// [retry.ErrExhausted], [retry.ErrBudgetExhausted]).
type Error struct {
	re      *retry.Error
	ctxCode codes.Code // Canceled or DeadlineExceeded when the call's context ended; OK otherwise
}

// Error returns the status's text, then the attempts.
func (e *Error) Error() string {
	st := e.GRPCStatus()
	return fmt.Sprintf("rpc error: code = %s desc = %s", st.Code(), st.Message())
}

// GRPCStatus returns the status of the call: the last attempt's code and
// details, with a message that says how many attempts were made and why
// the retries ended.
func (e *Error) GRPCStatus() *status.Status {
	msg := e.re.Error()
	if e.ctxCode != codes.OK {
		return status.New(e.ctxCode, msg)
	}
	last, _ := status.FromError(e.re.Last)
	p := last.Proto()
	p.Message = msg
	return status.FromProto(p)
}

// Unwrap returns the retrier's error.
func (e *Error) Unwrap() error { return e.re }

// Attempts returns how many attempts the call made.
func (e *Error) Attempts() int { return e.re.Attempts }

// ErrorType returns the value of the error.type attribute: the retrier's
// ("retry.exhausted", "retry.budget_exhausted", a context error's type).
func (e *Error) ErrorType() string { return telemetry.ErrorTypeString(e.re) }

// codeName returns the rpc.response.status_code of a code: its name in
// the gRPC spec, such as "UNAVAILABLE".
func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return strconv.Itoa(int(c))
}

var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}
