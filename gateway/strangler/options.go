package strangler

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of a [Shadow] whose fields are left zero.
const (
	DefaultShadowWorkers          = 8
	DefaultShadowQueue            = 1024
	DefaultShadowTimeout          = 10 * time.Second
	DefaultShadowMaxBodyBytes     = 1 << 20
	DefaultShadowMaxResponseBytes = 1 << 20
	DefaultShadowSamples          = 100
	DefaultShadowMaxQueuedBytes   = 64 << 20
)

// ShadowHeader is set to "1" on every shadow copy of a request, so that
// the side that receives it can tell it from real traffic (and, say, send
// no e-mail for it). The facade removes it from the requests it routes,
// so that a client cannot pass a real request off as a copy.
const ShadowHeader = "X-Strangler-Shadow"

const (
	maxRouteSeries = 1024
	otherRoute     = "_OTHER"
	buckets        = 10_000 // the percentage's resolution: 0.01 %
)

// Option configures a [Facade].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	rules          []rule
	percent        float64
	keys           []Key
	keysSet        bool
	shadow         *Shadow
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	errs           []string
}

// Shadow configures shadow traffic ([WithShadow]): a copy of each
// eligible request is sent to the side that did not answer it, and the
// two responses are compared. Zero fields take their defaults.
//
// The copy is the request as the primary got it, credentials included:
// its Authorization header and cookies go to the other side too, which
// needs them to answer the same caller the same way. Both sides must be
// trusted with them. To keep them from a side, wrap its handler in one
// that deletes them from the requests that carry [ShadowHeader].
type Shadow struct {
	// Methods are the request methods that are shadowed. The default,
	// nil, is GET, HEAD and OPTIONS: safe methods, whose copy changes
	// nothing on the other side. Listing PUT, POST or DELETE is the
	// opt-in for writes; do it only when the other side's data is kept
	// apart, or when the write is idempotent and the two systems are
	// meant to receive it twice (dual write). Requests that upgrade the
	// protocol (WebSockets) are never shadowed; leave streaming routes,
	// whose answer ends late, unshadowed.
	Methods []string

	// Headers are the response headers compared, case-insensitively.
	// The default, nil, compares Content-Type; an empty non-nil slice
	// compares none. The values of a header that differs are kept in
	// the samples ([Facade.Diffs]): do not list Set-Cookie or others
	// that carry secrets.
	Headers []string

	// Ignore lists the parts of JSON bodies left out of the comparison:
	// ids, timestamps and other values that differ by nature. A path is
	// object keys and array indexes separated by dots, from the
	// document's root:
	//
	//	id               the top-level key "id"
	//	customer.email   a key of a nested object
	//	items.0          the first element of the array "items"
	//	items.*.id       "id" of every element ("*": any one key or index)
	//	**.created_at    "created_at" at any depth ("**": any number of levels)
	//	meta\.version    the key "meta.version" (a backslash escapes . * \)
	//
	// An ignored path takes its whole subtree with it. Differences are
	// reported with the same paths after "body." ([FieldDiff].Field
	// "body.items.0.price" is the path "items.0.price" here).
	Ignore []string

	// Workers is the number of goroutines that send shadow copies and
	// compare, which bounds the shadow calls in flight. The default is
	// [DefaultShadowWorkers].
	Workers int

	// Queue is the number of copies that may wait for a worker. When it
	// is full a copy is dropped (and counted), never waited for: the
	// primary is never slowed by its shadow. The default is
	// [DefaultShadowQueue].
	Queue int

	// Timeout bounds each shadow call, which runs on a context of its
	// own: the client's leaving or the route's timeout does not cut it
	// short. The default is [DefaultShadowTimeout].
	Timeout time.Duration

	// MaxBodyBytes bounds the request body kept for the copy. The body
	// of a shadowed method is read up to this bound before the primary
	// gets it (from memory). A request with a longer body goes to the
	// primary as it came, the part read first, and is not shadowed
	// (counted as dropped, reason body_too_large). The default is
	// [DefaultShadowMaxBodyBytes].
	MaxBodyBytes int64

	// MaxResponseBytes bounds the response body captured on each side
	// for the comparison. A primary response longer than that is not
	// shadowed (dropped, reason response_too_large); a shadow response
	// longer than a primary one that fits differs from it. The default
	// is [DefaultShadowMaxResponseBytes].
	MaxResponseBytes int64

	// Percent is the share of the eligible requests that are shadowed,
	// in percent (to 0.01): every request at 100, one in ten, evenly
	// spaced, at 10. A shadow costs the gateway a second proxied call
	// and a comparison; on a busy route a share is enough to find the
	// differences. The default, 0, means 100; a share that rounds to 0
	// (below 0.005) is an error.
	Percent float64

	// MaxQueuedBytes bounds the memory of the copies waiting for a
	// worker or in flight: the sum of their request bodies and headers
	// and of the primary answers kept to compare them with. A copy that would go
	// past it is dropped (reason queue_full), as when the queue is full:
	// bounded by count alone, a queue of large answers could hold
	// Queue × (MaxBodyBytes + MaxResponseBytes). It must hold one copy
	// of each at their bounds. The default is
	// [DefaultShadowMaxQueuedBytes], or that sum if larger.
	MaxQueuedBytes int64

	// Samples is the number of the latest differences kept for
	// [Facade.Diffs] and [Facade.DiffHandler]. The default is
	// [DefaultShadowSamples].
	Samples int
}

// WithPaths sends the requests whose path matches one of patterns to t.
// Patterns have [http.ServeMux]'s syntax ("/products/", "GET
// /orders/{id}", "/reports/{$}"), matched against the request as the
// route received it. Gateway routes already split by path; WithPaths is
// for splitting inside one route, such as moving "/api/products/" of a
// route "/api/".
func WithPaths(t Target, patterns ...string) Option {
	return optionFunc(func(c *config) {
		name := fmt.Sprintf("WithPaths(%v, %q)", t, patterns)
		r, errs := pathRule(t, patterns)
		for _, e := range errs {
			c.errs = append(c.errs, name+": "+e)
		}
		c.addRule(name, t, r)
	})
}

// WithHeader sends the requests that carry the header name with the
// value value to t; an empty value matches any value. A client can set
// any header it likes: use it for testers and internal callers, not to
// keep anyone out of a side.
func WithHeader(t Target, name, value string) Option {
	return optionFunc(func(c *config) {
		label := fmt.Sprintf("WithHeader(%v, %q, %q)", t, name, value)
		if !validToken(name) {
			c.errs = append(c.errs, label+": name: not a header name")
		}
		c.addRule(label, t, headerRule(name, value, t))
	})
}

// WithCookie sends the requests that carry the cookie name with the
// value value to t; an empty value matches any value. Like a header, a
// cookie is the client's to set.
func WithCookie(t Target, name, value string) Option {
	return optionFunc(func(c *config) {
		label := fmt.Sprintf("WithCookie(%v, %q, %q)", t, name, value)
		if !validToken(name) {
			c.errs = append(c.errs, label+": name: not a cookie name")
		}
		c.addRule(label, t, cookieRule(name, value, t))
	})
}

// WithFlag asks flag, a feature-flag callback, where a request goes: it
// returns the target and true to decide, or false to leave the request
// to the next rule. It sees the request and, through
// gateway.PrincipalFrom, who the caller was authenticated as (put the
// auth middleware before the facade). It runs on every request that
// reaches it, so it must be quick and must not block on the network:
// ask a flag SDK's in-memory state. A flag that panics or returns an
// unknown target decides nothing; the panic is recorded on the
// request's span.
func WithFlag(flag func(*http.Request) (Target, bool)) Option {
	return optionFunc(func(c *config) {
		if flag == nil {
			c.errs = append(c.errs, fmt.Sprintf("WithFlag (rules[%d]): flag must not be nil", len(c.rules)))
		}
		c.rules = append(c.rules, rule{kind: ruleFlag, decide: flagRule(flag)})
	})
}

// WithPercent sets the share, in percent (0 to 100, to 0.01), of the
// requests no rule decided that go to the new side, by the sticky key
// ([WithStickyKey]). [Facade.SetPercent] changes it at run time. The
// default is 0: everything to the legacy side.
func WithPercent(percent float64) Option {
	return optionFunc(func(c *config) { c.percent = percent })
}

// WithStickyKey sets what keeps a caller on one side while the
// percentage moves: the first of keys that a request has. The default
// is [BySubject] then [ByClientIP]. A request that has none of them goes
// to the legacy side (rule default) unless the percentage is 100.
func WithStickyKey(keys ...Key) Option {
	return optionFunc(func(c *config) {
		c.keys = keys
		c.keysSet = true
	})
}

// WithShadow sends a copy of each eligible request to the side that did
// not answer it and compares the responses, as s says. By default
// nothing is shadowed. [Facade.SetShadow] turns it off and on at run
// time.
func WithShadow(s Shadow) Option {
	return optionFunc(func(c *config) { c.shadow = &s })
}

// WithTracerProvider sets the tracer provider of the shadow spans. The
// default is the global provider at the time of [New]. A nil provider is
// ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp != nil {
			c.tracerProvider = tp
		}
	})
}

// WithMeterProvider sets the meter provider of the facade's metrics. The
// default is the global provider at the time of [New]. A nil provider is
// ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}

func (c *config) addRule(name string, t Target, r rule) {
	if !t.valid() {
		c.errs = append(c.errs, fmt.Sprintf("%s: target: %d is neither TargetLegacy nor TargetNew", name, int(t)))
	}
	c.rules = append(c.rules, r)
}

// validate reports every configuration error at once, naming the field
// or option of each.
func (c *config) validate() []string {
	errs := c.errs
	if math.IsNaN(c.percent) || c.percent < 0 || c.percent > 100 {
		errs = append(errs, fmt.Sprintf("WithPercent(%v): must be in [0, 100]", c.percent))
	}
	if c.keysSet && len(c.keys) == 0 {
		errs = append(errs, "WithStickyKey: name at least one key")
	}
	for i, k := range c.keys {
		if k == nil {
			errs = append(errs, fmt.Sprintf("WithStickyKey: keys[%d]: must not be nil", i))
		}
	}
	if s := c.shadow; s != nil {
		bad := func(format string, args ...any) {
			errs = append(errs, "Shadow."+fmt.Sprintf(format, args...))
		}
		for i, m := range s.Methods {
			if !validToken(m) {
				bad("Methods[%d]: %q is not a method", i, m)
			}
		}
		for i, h := range s.Headers {
			if !validToken(h) {
				bad("Headers[%d]: %q is not a header name", i, h)
			}
		}
		for i, p := range s.Ignore {
			if _, err := parsePath(p); err != nil {
				bad("Ignore[%d]: %q: %v", i, p, err)
			}
		}
		if s.Workers < 0 {
			bad("Workers: must not be negative (got %d)", s.Workers)
		}
		if s.Queue < 0 {
			bad("Queue: must not be negative (got %d)", s.Queue)
		}
		if s.Timeout < 0 {
			bad("Timeout: must not be negative (got %v)", s.Timeout)
		}
		if s.MaxBodyBytes < 0 {
			bad("MaxBodyBytes: must not be negative (got %d)", s.MaxBodyBytes)
		}
		if s.MaxResponseBytes < 0 {
			bad("MaxResponseBytes: must not be negative (got %d)", s.MaxResponseBytes)
		}
		if math.IsNaN(s.Percent) || s.Percent < 0 || s.Percent > 100 {
			bad("Percent: must be in [0, 100] (got %v)", s.Percent)
		} else if s.Percent > 0 && toBasisPoints(s.Percent) == 0 {
			// 0 is the default (100); a share that rounds to it would
			// shadow nothing.
			bad("Percent: %v rounds to 0 at the resolution of 0.01", s.Percent)
		}
		if s.MaxQueuedBytes < 0 {
			bad("MaxQueuedBytes: must not be negative (got %d)", s.MaxQueuedBytes)
		} else if d := s.withDefaults(); s.MaxQueuedBytes > 0 && d.MaxQueuedBytes < d.MaxBodyBytes+d.MaxResponseBytes {
			// Every copy of the largest size allowed would be dropped as
			// queue_full, with the queue empty.
			bad("MaxQueuedBytes: %d is less than one copy may hold, MaxBodyBytes + MaxResponseBytes (%d)",
				s.MaxQueuedBytes, d.MaxBodyBytes+d.MaxResponseBytes)
		}
		if s.Samples < 0 {
			bad("Samples: must not be negative (got %d)", s.Samples)
		}
	}
	return errs
}

// withDefaults returns s with its zero fields set to their defaults.
func (s Shadow) withDefaults() Shadow {
	if s.Methods == nil {
		s.Methods = []string{http.MethodGet, http.MethodHead, http.MethodOptions}
	}
	if s.Headers == nil {
		s.Headers = []string{"Content-Type"}
	}
	s.Methods = slices.Clone(s.Methods)
	s.Headers = slices.Clone(s.Headers)
	for i, h := range s.Headers {
		s.Headers[i] = http.CanonicalHeaderKey(h)
	}
	if s.Workers == 0 {
		s.Workers = DefaultShadowWorkers
	}
	if s.Queue == 0 {
		s.Queue = DefaultShadowQueue
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultShadowTimeout
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = DefaultShadowMaxBodyBytes
	}
	if s.MaxResponseBytes == 0 {
		s.MaxResponseBytes = DefaultShadowMaxResponseBytes
	}
	if s.MaxQueuedBytes == 0 {
		s.MaxQueuedBytes = max(DefaultShadowMaxQueuedBytes, s.MaxBodyBytes+s.MaxResponseBytes)
	}
	if s.Samples == 0 {
		s.Samples = DefaultShadowSamples
	}
	if s.Percent == 0 {
		s.Percent = 100
	}
	return s
}

// validToken reports whether s is an HTTP token (RFC 9110, 5.6.2): a
// header name, a method, a cookie name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
