package grpcbreaker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/otelpatterns/patterns/circuitbreaker"
)

// Option configures [UnaryClientInterceptor] and [StreamClientInterceptor].
type Option interface {
	applyClient(*clientConfig)
}

// ServerOption configures [UnaryServerInterceptor] and
// [StreamServerInterceptor].
type ServerOption interface {
	applyServer(*serverConfig)
}

type clientOptionFunc func(*clientConfig)

func (f clientOptionFunc) applyClient(c *clientConfig) { f(c) }

type serverOptionFunc func(*serverConfig)

func (f serverOptionFunc) applyServer(s *serverConfig) { f(s) }

// codeSet is a set of gRPC codes (0 to 16), one bit each.
type codeSet uint32

func (s codeSet) has(c codes.Code) bool { return c < 32 && s&(1<<c) != 0 }

func setOf(cs ...codes.Code) codeSet {
	var s codeSet
	for _, c := range cs {
		s |= 1 << c
	}
	return s
}

// maxCode is the largest code gRPC defines (Unauthenticated).
const maxCode = codes.Unauthenticated

// checkCodes returns what is wrong with a list of failure codes, or "".
func checkCodes(cs []codes.Code) string {
	if len(cs) == 0 {
		return "at least one code is required"
	}
	for _, c := range cs {
		if c == codes.OK {
			return "OK cannot be a failure"
		}
		if c > maxCode {
			return fmt.Sprintf("unknown code %d", uint32(c))
		}
	}
	return ""
}

// DefaultFailureCodes are the codes that count as failures of the
// dependency on the client side by default: the server is down or
// overloaded, or did not answer in time, or failed internally.
var DefaultFailureCodes = []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal}

// DefaultServerFailureCodes are the codes that count as failures of a
// handler on the server side by default: the errors of a failing server
// (an error that is not a status is reported by gRPC as Unknown), not the
// caller's mistakes.
var DefaultServerFailureCodes = []codes.Code{codes.Unknown, codes.Internal, codes.Unavailable, codes.DataLoss, codes.DeadlineExceeded}

type clientConfig struct {
	group    *circuitbreaker.Group
	key      func(ctx context.Context, target, method string) string
	failures codeSet
	errs     []error
}

// WithGroup makes the interceptor take its breakers from g, so that the
// caller can inspect them (g.Get(method).State()), configure them
// ([circuitbreaker.NewGroup] with breaker options) or share them between
// the unary and the stream interceptor, or between connections. g must not
// be nil. The default is a group of the interceptor's own, with default
// breaker options.
func WithGroup(g *circuitbreaker.Group) Option {
	return clientOptionFunc(func(c *clientConfig) {
		if g == nil {
			c.errs = append(c.errs, errors.New("WithGroup(nil): group must not be nil"))
		}
		c.group = g
	})
}

// WithKey sets how the interceptor picks the breaker of a call, from the
// connection's target ([grpc.ClientConn.Target]) and the full method name
// ("/package.Service/Method"). key must not be nil, and should return few
// distinct keys: each is a breaker, and the group holds a bounded number.
// The default is the method: one breaker per method, so that one failing
// method does not shut the others off. [PerTarget] gives one breaker per
// connection target instead.
func WithKey(key func(ctx context.Context, target, method string) string) Option {
	return clientOptionFunc(func(c *clientConfig) {
		if key == nil {
			c.errs = append(c.errs, errors.New("WithKey(nil): key function must not be nil"))
		}
		c.key = key
	})
}

// PerTarget is a key function for [WithKey]: one breaker per connection
// target, shared by all its methods.
func PerTarget(_ context.Context, target, _ string) string { return target }

// PerMethod is the default key function: one breaker per full method name.
func PerMethod(_ context.Context, _, method string) string { return method }

// WithFailureCodes sets the status codes that count as failures of the
// dependency; every other code, OK included, counts as a success (the
// server answered), except Canceled, which counts for nothing (the caller
// gave up). codes must be at least one, none of them OK. The default is
// [DefaultFailureCodes]: Unavailable, DeadlineExceeded, ResourceExhausted
// and Internal; InvalidArgument, NotFound, PermissionDenied and the like
// are the caller's mistakes and never count against the server.
func WithFailureCodes(cs ...codes.Code) Option {
	return clientOptionFunc(func(c *clientConfig) {
		if msg := checkCodes(cs); msg != "" {
			c.errs = append(c.errs, fmt.Errorf("WithFailureCodes(%v): %s", cs, msg))
		}
		c.failures = setOf(cs...)
	})
}

func newClientConfig(fn string, opts []Option) clientConfig {
	c := clientConfig{key: PerMethod, failures: setOf(DefaultFailureCodes...)}
	for i, o := range opts {
		if o == nil {
			c.errs = append(c.errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.applyClient(&c)
	}
	if err := errors.Join(c.errs...); err != nil {
		panic(fmt.Sprintf("grpcbreaker: %s: %v", fn, err))
	}
	if c.group == nil {
		c.group = &circuitbreaker.Group{}
	}
	return c
}

type serverConfig struct {
	breaker     *circuitbreaker.Breaker
	maxInFlight int64
	pushback    time.Duration
	pushbackSet bool
	failures    codeSet
	errs        []error
}

// WithBreaker sheds calls while b rejects them: they are answered with
// Unavailable before the handler runs. The calls b admits are counted by
// their status code ([WithServerFailureCodes]). b must not be nil.
func WithBreaker(b *circuitbreaker.Breaker) ServerOption {
	return serverOptionFunc(func(s *serverConfig) {
		if b == nil {
			s.errs = append(s.errs, errors.New("WithBreaker(nil): breaker must not be nil"))
		}
		s.breaker = b
	})
}

// WithMaxConcurrent sheds calls while n calls are in the handler already:
// the (n+1)th is answered with Unavailable at once instead of queueing.
// n must be positive. Each interceptor counts its own calls: a unary and a
// stream interceptor built with WithMaxConcurrent(100) admit 100 each. By
// default the number of calls is not limited.
func WithMaxConcurrent(n int) ServerOption {
	return serverOptionFunc(func(s *serverConfig) {
		if n <= 0 {
			s.errs = append(s.errs, fmt.Errorf("WithMaxConcurrent(%d): must be positive", n))
		}
		s.maxInFlight = int64(n)
	})
}

// DefaultPushback is the pushback sent with a call shed by the concurrency
// limit when [WithPushback] is not given.
const DefaultPushback = 100 * time.Millisecond

// WithPushback sets the grpc-retry-pushback-ms trailer of shed calls: how
// long the client should wait before trying again, in whole milliseconds
// (rounded up). A negative d tells clients not to retry at all (gRFC A6).
// By default a call shed by the breaker gets the time until the breaker
// lets a probe through (at least 1ms; 1s while half-open or when it was
// opened by hand), and one shed by the concurrency limit [DefaultPushback].
func WithPushback(d time.Duration) ServerOption {
	return serverOptionFunc(func(s *serverConfig) { s.pushback, s.pushbackSet = d, true })
}

// WithServerFailureCodes sets the status codes of a handler's error that
// count as failures for the breaker of [WithBreaker]; every other code
// counts as a success, except Canceled, which counts for nothing. The
// default is [DefaultServerFailureCodes].
func WithServerFailureCodes(cs ...codes.Code) ServerOption {
	return serverOptionFunc(func(s *serverConfig) {
		if msg := checkCodes(cs); msg != "" {
			s.errs = append(s.errs, fmt.Errorf("WithServerFailureCodes(%v): %s", cs, msg))
		}
		s.failures = setOf(cs...)
	})
}

func newServerConfig(fn string, opts []ServerOption) serverConfig {
	s := serverConfig{failures: setOf(DefaultServerFailureCodes...)}
	for i, o := range opts {
		if o == nil {
			s.errs = append(s.errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.applyServer(&s)
	}
	if s.breaker == nil && s.maxInFlight == 0 && len(s.errs) == 0 {
		s.errs = append(s.errs, errors.New("nothing to shed with: give WithBreaker or WithMaxConcurrent"))
	}
	if err := errors.Join(s.errs...); err != nil {
		panic(fmt.Sprintf("grpcbreaker: %s: %v", fn, err))
	}
	return s
}
