package grpcbreaker

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/circuitbreaker"
)

// PushbackKey is the trailer metadata key by which a server tells a gRPC
// client how long to wait before retrying, in milliseconds (gRFC A6); a
// negative or malformed value means "do not retry".
const PushbackKey = "grpc-retry-pushback-ms"

// UnaryServerInterceptor returns a server interceptor that sheds load
// before handlers run: while the breaker of [WithBreaker] rejects, or while
// [WithMaxConcurrent] calls are in flight, a call is answered at once with
// status Unavailable and a grpc-retry-pushback-ms trailer ([WithPushback]),
// and its handler is not called. The calls the breaker admits count by
// their handler's status code ([WithServerFailureCodes]); a handler that
// panics counts as a failure (the panic goes on, for a recovery
// interceptor further out).
//
// Put it first among the server's interceptors (after a recovery
// interceptor, if any), so that shed calls cost as little as possible.
// With otelgrpc's stats handler, a shed call still gets its server span,
// with status Unavailable.
//
// UnaryServerInterceptor panics on invalid options (a nil one among them),
// naming every one, and when neither WithBreaker nor WithMaxConcurrent is
// given.
func UnaryServerInterceptor(opts ...ServerOption) grpc.UnaryServerInterceptor {
	s := newShedder(newServerConfig("UnaryServerInterceptor", opts))
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if s.cfg.maxInFlight > 0 {
			if s.inFlight.Add(1) > s.cfg.maxInFlight {
				s.inFlight.Add(-1)
				return nil, s.shed(ctx, nil, nil)
			}
			defer s.inFlight.Add(-1)
		}
		if s.cfg.breaker == nil {
			return handler(ctx, req)
		}
		var resp any
		var herr error
		called := false
		err := s.cfg.breaker.Execute(ctx, func(ctx context.Context) error {
			called = true
			resp, herr = handler(ctx, req)
			return s.outcome(herr)
		})
		if !called {
			return nil, s.shed(ctx, nil, err)
		}
		return resp, herr
	}
}

// StreamServerInterceptor is [UnaryServerInterceptor] for streams: a shed
// stream is answered with Unavailable and the pushback trailer before its
// handler runs. An admitted stream counts by the status its handler
// returns.
func StreamServerInterceptor(opts ...ServerOption) grpc.StreamServerInterceptor {
	s := newShedder(newServerConfig("StreamServerInterceptor", opts))
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if s.cfg.maxInFlight > 0 {
			if s.inFlight.Add(1) > s.cfg.maxInFlight {
				s.inFlight.Add(-1)
				return s.shed(ss.Context(), ss, nil)
			}
			defer s.inFlight.Add(-1)
		}
		if s.cfg.breaker == nil {
			return handler(srv, ss)
		}
		var herr error
		called := false
		err := s.cfg.breaker.Execute(ss.Context(), func(context.Context) error {
			called = true
			herr = handler(srv, ss)
			return s.outcome(herr)
		})
		if !called {
			return s.shed(ss.Context(), ss, err)
		}
		return herr
	}
}

type shedder struct {
	cfg      serverConfig
	inFlight atomic.Int64
	limitMD  metadata.MD // the trailer of calls shed by the limit, built once
	fixedMD  metadata.MD // the trailer when WithPushback is set, built once
}

func newShedder(cfg serverConfig) *shedder {
	s := &shedder{cfg: cfg}
	if cfg.pushbackSet {
		s.fixedMD = pushbackMD(cfg.pushback)
		s.limitMD = s.fixedMD
	} else {
		s.limitMD = pushbackMD(DefaultPushback)
	}
	return s
}

// pushbackMD returns the trailer for a pushback of d, in whole
// milliseconds rounded up; -1 for a negative d.
func pushbackMD(d time.Duration) metadata.MD {
	ms := int64(-1)
	if d >= 0 {
		ms = int64((d + time.Millisecond - 1) / time.Millisecond)
	}
	return metadata.Pairs(PushbackKey, strconv.FormatInt(ms, 10))
}

func (s *shedder) outcome(err error) error {
	if err == nil {
		return nil
	}
	return classify(err, s.cfg.failures)
}

// shed answers a shed call: it sets the pushback trailer and returns the
// status. rej is the breaker's rejection, nil for the concurrency limit.
func (s *shedder) shed(ctx context.Context, ss grpc.ServerStream, rej error) error {
	md := s.limitMD
	msg := "grpcbreaker: server overloaded: too many calls in flight"
	if rej != nil {
		msg = rej.Error()
		if s.fixedMD != nil {
			md = s.fixedMD
		} else {
			md = pushbackMD(rejectionPushback(rej, time.Now()))
		}
	}
	if ss != nil {
		ss.SetTrailer(md)
	} else {
		_ = grpc.SetTrailer(ctx, md) // fails only outside a server call
	}
	if rej != nil {
		var re *circuitbreaker.RejectedError
		if errors.As(rej, &re) {
			return &RejectedError{re}
		}
	}
	return status.Error(codes.Unavailable, msg)
}

// rejectionPushback is how long a client should wait after a rejection by
// the breaker: until it lets a probe through, at least 1ms; 1s when
// unknown (half-open, or opened by hand).
func rejectionPushback(err error, now time.Time) time.Duration {
	var re *circuitbreaker.RejectedError
	if !errors.As(err, &re) || re.Until.IsZero() {
		return time.Second
	}
	return max(re.Until.Sub(now), time.Millisecond)
}
