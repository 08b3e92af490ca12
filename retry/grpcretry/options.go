package grpcretry

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Option configures [UnaryClientInterceptor] and [StreamClientInterceptor].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// codeSet is a set of gRPC codes, one bit each.
type codeSet uint32

func (s codeSet) has(c codes.Code) bool { return c < 32 && s&(1<<c) != 0 }

// DefaultRetryCodes are the codes retried by default: Unavailable, the
// code of a server that is down, restarting or shedding load, and of a
// connection that broke. ResourceExhausted is retried too, whatever
// the codes, when the server sent a pushback: it said when to come back.
var DefaultRetryCodes = []codes.Code{codes.Unavailable}

// DefaultMaxPushback is the longest server pushback the interceptors wait
// by default.
const DefaultMaxPushback = 30 * time.Second

// DefaultMaxBuffered is how many messages a stream keeps by default, to
// send them again on a retry.
const DefaultMaxBuffered = 64

type config struct {
	methods     map[string]bool
	safe        func(fullMethod string) bool
	idempotent  *idempotency // nil with WithoutIdempotencyLevel
	retryCodes  codeSet
	perAttempt  time.Duration
	maxPushback time.Duration
	maxBuffered int
	errs        []error
}

// WithMethods declares methods safe to retry, by full name
// ("/package.Service/Method"): calling them twice does no harm. Each
// WithMethods adds to the list. Methods whose proto definition says so
// (option idempotency_level = IDEMPOTENT or NO_SIDE_EFFECTS) are safe
// without being listed.
func WithMethods(fullMethods ...string) Option {
	return optionFunc(func(c *config) {
		if c.methods == nil {
			c.methods = make(map[string]bool)
		}
		for i, m := range fullMethods {
			if len(m) < 3 || m[0] != '/' {
				c.errs = append(c.errs, fmt.Errorf("WithMethods: fullMethods[%d] = %q: want \"/package.Service/Method\"", i, m))
			}
			c.methods[m] = true
		}
	})
}

// WithSafe declares the methods for which safe returns true safe to
// retry, in addition to those of [WithMethods] and those whose proto
// definition says so. safe must not be nil; it is called on every call,
// so it should be quick.
func WithSafe(safe func(fullMethod string) bool) Option {
	return optionFunc(func(c *config) {
		if safe == nil {
			c.errs = append(c.errs, errors.New("WithSafe(nil): predicate must not be nil"))
		}
		c.safe = safe
	})
}

// WithoutIdempotencyLevel stops the interceptors from treating methods
// whose proto definition has option idempotency_level = IDEMPOTENT or
// NO_SIDE_EFFECTS as safe: only [WithMethods] and [WithSafe] decide.
func WithoutIdempotencyLevel() Option {
	return optionFunc(func(c *config) { c.idempotent = nil })
}

// WithRetryCodes sets the status codes retried (besides ResourceExhausted
// with a pushback, always retried). The list must not be empty nor
// contain OK. The default is [DefaultRetryCodes]: Unavailable. Add a code
// only if every safe method may be repeated after the server acted on
// it: Aborted, DeadlineExceeded and Internal may come after the server did
// the work.
func WithRetryCodes(cs ...codes.Code) Option {
	return optionFunc(func(c *config) {
		if len(cs) == 0 {
			c.errs = append(c.errs, errors.New("WithRetryCodes(): at least one code is required"))
		}
		var s codeSet
		for _, code := range cs {
			if code == codes.OK || code > codes.Unauthenticated {
				c.errs = append(c.errs, fmt.Errorf("WithRetryCodes: code %v cannot be retried", code))
				continue
			}
			s |= 1 << code
		}
		c.retryCodes = s
	})
}

// WithPerAttemptTimeout bounds each attempt to d, within the call's own
// deadline: an attempt that runs out of time fails with DeadlineExceeded
// and is retried while the call's deadline allows. For a stream, d bounds
// the attempt until the first message arrives from the server (after
// which the stream is committed and runs under the call's deadline only).
// d must be positive; by default attempts are bounded only by the call's
// deadline.
func WithPerAttemptTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithPerAttemptTimeout(%v): must be positive", d))
		}
		c.perAttempt = d
	})
}

// WithMaxPushback sets the longest pushback (the server's
// grpc-retry-pushback-ms trailer) the interceptors wait: a longer one ends
// the retries, and the call fails with the server's status. d must not be
// negative. The default is [DefaultMaxPushback] (30s). A pushback is never
// waited past the call's deadline either.
func WithMaxPushback(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d < 0 {
			c.errs = append(c.errs, fmt.Errorf("WithMaxPushback(%v): must not be negative", d))
		}
		c.maxPushback = d
	})
}

// WithMaxBuffered sets how many messages a client or bidirectional stream
// keeps to send again on a retry. A stream that has sent more is no longer
// retried. n must be positive. The default is [DefaultMaxBuffered] (64).
func WithMaxBuffered(n int) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithMaxBuffered(%d): must be positive", n))
		}
		c.maxBuffered = n
	})
}

func newConfig(fn string, opts []Option) *config {
	c := &config{
		retryCodes:  1 << codes.Unavailable,
		maxPushback: DefaultMaxPushback,
		maxBuffered: DefaultMaxBuffered,
		idempotent:  &idempotency{files: protoregistry.GlobalFiles},
	}
	for i, o := range opts {
		if o == nil {
			c.errs = append(c.errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(c)
	}
	if err := errors.Join(c.errs...); err != nil {
		panic(fmt.Sprintf("grpcretry: %s: %v", fn, err))
	}
	return c
}

// safeMethod reports whether method may be retried.
func (c *config) safeMethod(method string) bool {
	if c.methods[method] {
		return true
	}
	if c.safe != nil && c.safe(method) {
		return true
	}
	return c.idempotent != nil && c.idempotent.safe(method)
}

// idempotency answers, from the proto descriptors, whether a method has no
// side effects or is idempotent, and remembers the answers.
type idempotency struct {
	files interface {
		FindDescriptorByName(protoreflect.FullName) (protoreflect.Descriptor, error)
	}
	known sync.Map // full method -> bool
}

func (d *idempotency) safe(method string) bool {
	if v, ok := d.known.Load(method); ok {
		return v.(bool)
	}
	ok := d.lookup(method)
	d.known.Store(method, ok)
	return ok
}

func (d *idempotency) lookup(method string) bool {
	// "/package.Service/Method" -> "package.Service.Method"
	if len(method) < 2 || method[0] != '/' {
		return false
	}
	name := []byte(method[1:])
	slash := -1
	for i, b := range name {
		if b == '/' {
			if slash >= 0 {
				return false
			}
			slash = i
		}
	}
	if slash < 0 {
		return false
	}
	name[slash] = '.'
	desc, err := d.files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return false
	}
	md, ok := desc.(protoreflect.MethodDescriptor)
	if !ok {
		return false
	}
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil {
		return false
	}
	switch opts.GetIdempotencyLevel() {
	case descriptorpb.MethodOptions_IDEMPOTENT, descriptorpb.MethodOptions_NO_SIDE_EFFECTS:
		return true
	}
	return false
}
