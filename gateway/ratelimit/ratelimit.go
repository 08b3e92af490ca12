package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/otelpatterns/patterns/gateway"
)

// Limiter enforces one [Limit] on the requests of the routes that list its
// [Limiter.Middleware]. Its budgets are its own: two limiters never share
// one in process, whatever their names (in Redis, limiters of the same
// name do, on purpose). It is safe for concurrent use and starts no
// goroutine. A Limiter is made by [New]: the Middleware of one that was
// not (the zero Limiter) panics when the chain is built.
type Limiter struct {
	limit      Limit
	burst      int
	ipv6Prefix int
	failClosed bool
	table      *table
	redis      *redisLimiter
	policy     []string // the RateLimit-Policy value, shared by every response
	item       string   // the RateLimit item's name, an SF string
	problem    []byte   // the body of a 429
	tel        *instruments
}

// Decision is what a limiter decided for one request.
type Decision struct {
	// Allowed reports whether the request may go on.
	Allowed bool
	// Limit is the bucket's size (the limit's Burst).
	Limit int
	// Remaining is how many more requests the bucket allows now.
	Remaining int
	// RetryAfter, when not allowed, is how long until a request would be.
	RetryAfter time.Duration
	// Reset is how long until the bucket gains its next token; 0 when it
	// is full.
	Reset time.Duration
}

// New returns a limiter that enforces limit. Every bad field or option is
// reported at once, each naming itself; a nil option as "opts[i] is nil".
func New(limit Limit, opts ...Option) (*Limiter, error) {
	cfg := config{
		maxKeys:      DefaultMaxKeys,
		redisTimeout: DefaultRedisTimeout,
		redisPrefix:  DefaultRedisKeyPrefix,
		ipv6Prefix:   DefaultIPv6Prefix,
	}
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("ratelimit: opts[%d] is nil", i))
			continue
		}
		o.apply(&cfg)
	}
	if err := errors.Join(append(errs, validate(limit, &cfg))...); err != nil {
		return nil, err
	}
	burst := limit.Burst
	if burst == 0 {
		burst = limit.Requests
	}
	l := &Limiter{
		limit:      limit,
		burst:      burst,
		ipv6Prefix: cfg.ipv6Prefix,
		failClosed: cfg.failClosed,
		item:       sfString(limit.Name),
		tel:        newInstruments(limit.Name, cfg.failClosed),
	}
	l.policy = []string{policy(l.item, limit)}
	l.problem = problem(l.item)
	if cfg.redis != nil {
		l.redis = newRedisLimiter(cfg.redis, limit, burst, cfg.redisPrefix, cfg.redisTimeout)
	} else {
		l.table = newTable(cfg.maxKeys, rate.Limit(float64(limit.Requests)/limit.Per.Seconds()), burst)
	}
	l.tel.observe(l, cfg.meterProvider)
	return l, nil
}

func validate(l Limit, c *config) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("ratelimit: "+format, args...)) }
	if l.Name == "" {
		bad("Limit.Name: required")
	}
	for i := 0; i < len(l.Name); i++ {
		if ch := l.Name[i]; ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' {
			bad("Limit.Name %q: printable ASCII without quotes or backslashes", l.Name)
			break
		}
	}
	if l.Requests <= 0 {
		bad("Limit.Requests (%d): must be positive", l.Requests)
	}
	if l.Per <= 0 {
		bad("Limit.Per (%v): must be positive", l.Per)
	} else if l.Requests > 0 && l.Per/time.Duration(l.Requests) <= 0 {
		bad("Limit.Per (%v): must be at least 1ns per request", l.Per)
	}
	if l.Burst < 0 {
		bad("Limit.Burst (%d): must not be negative", l.Burst)
	}
	switch l.Key.kind {
	case keyNone:
		bad("Limit.Key: required (ByClientIP, ByClaim, ByHeader or AllClients)")
	case keyClaim:
		if l.Key.name == "" {
			bad("Limit.Key: ByClaim needs a claim name")
		}
	case keyHeader:
		if !validToken(l.Key.name) {
			bad("Limit.Key: ByHeader(%q): not a valid header name", l.Key.name)
		}
	}
	if l.Scope != PerRoute && l.Scope != AcrossRoutes {
		bad("Limit.Scope: required (PerRoute or AcrossRoutes)")
	}
	if c.maxKeys <= 0 {
		bad("WithMaxKeys(%d): must be positive", c.maxKeys)
	}
	if c.redisTimeout <= 0 {
		bad("WithRedisTimeout(%v): must be positive", c.redisTimeout)
	}
	if c.ipv6Prefix < 1 || c.ipv6Prefix > 128 {
		bad("WithIPv6Prefix(%d): must be in 1..128", c.ipv6Prefix)
	}
	if c.redisSet && isNil(c.redis) {
		bad("WithRedis: the client is nil")
	} else if c.redis != nil {
		if on, known := contextTimeoutEnabled(c.redis); known && !on {
			bad("WithRedis: the client's ContextTimeoutEnabled is false, so WithRedisTimeout could not interrupt a stuck Redis")
		}
	}
	return errors.Join(errs...)
}

// Allow spends a token of the bucket key, for use outside HTTP: key is the
// whole bucket key (the limit's Key and Scope are not applied). With
// [WithRedis] it returns Redis's error, after the timeout at most, and
// counts it, but leaves the failure policy to the caller.
func (l *Limiter) Allow(ctx context.Context, key string) (Decision, error) {
	route, _ := gateway.RouteFrom(ctx)
	d, err := l.decide(ctx, []byte(key))
	l.tel.record(ctx, route, d, err)
	return d, err
}

func (l *Limiter) decide(ctx context.Context, key []byte) (Decision, error) {
	if l.redis != nil {
		return l.redis.allow(ctx, string(key))
	}
	return l.table.allow(key), nil
}

// Middleware limits the requests of the routes that list it; a method
// value l.Middleware is a gateway.Middleware. An allowed request goes on
// with the RateLimit and RateLimit-Policy headers (of
// draft-ietf-httpapi-ratelimit-headers-10) set on its response; a limited
// one is answered 429 with Retry-After and those headers. When the Redis
// limiter cannot decide, the request goes on (fail open, the default) or
// is answered 503 with Retry-After (WithFailClosed).
//
// Middleware panics, when the chain is built, if next is nil or l was
// not made by [New], naming which: the middleware would otherwise fail
// on the first request. gateway.New and Gateway.Update return that
// panic as an error naming the route.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	switch {
	case l == nil || l.tel == nil:
		panic("ratelimit: Middleware: the Limiter was not made by New")
	case next == nil:
		panic(fmt.Sprintf("ratelimit: Middleware of limit %q: next handler is nil", l.limit.Name))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		route, _ := gateway.RouteFrom(ctx)
		var buf [128]byte
		d, err := l.decide(ctx, l.appendBucketKey(buf[:0], r, route))
		l.tel.record(ctx, route, d, err)
		h := w.Header()
		if err != nil {
			if l.failClosed {
				h.Set("Retry-After", "1")
				h.Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write(bodyUnavailable)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		// The policy's one-element slice is shared, capped so that an
		// append (a second limiter's, the upstream's) copies it.
		if vs := h[policyKey]; len(vs) == 0 {
			h[policyKey] = l.policy[:1:1]
		} else {
			h[policyKey] = append(vs, l.policy[0])
		}
		h[stateKey] = append(h[stateKey], l.state(d))
		if !d.Allowed {
			h.Set("Retry-After", strconv.FormatInt(seconds(d.RetryAfter), 10))
			h.Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write(l.problem)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var bodyUnavailable = []byte("rate limit unavailable\n")

// The canonical names of the header fields.
var (
	policyKey = http.CanonicalHeaderKey("RateLimit-Policy")
	stateKey  = http.CanonicalHeaderKey("RateLimit")
)

// problem returns the body of a 429: the quota-exceeded problem type of
// the draft (RFC 9457 problem details) naming the policy item.
func problem(item string) []byte {
	return []byte(`{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded",` +
		`"title":"Request cannot be satisfied as assigned quota has been exceeded",` +
		`"status":429,"violated-policies":[` + item + `]}` + "\n")
}

// policy returns the RateLimit-Policy item of limit: its quota q per window
// w seconds (the sustained rate; sub-second periods are scaled to one
// second, as the draft's windows are whole seconds).
func policy(item string, l Limit) string {
	q, w := int64(l.Requests), int64(math.Ceil(l.Per.Seconds()))
	if l.Per < time.Second {
		q, w = int64(float64(l.Requests)*float64(time.Second)/float64(l.Per)), 1
	} else if l.Per%time.Second != 0 {
		q = int64(float64(l.Requests) * float64(w) * float64(time.Second) / float64(l.Per))
	}
	return item + ";q=" + strconv.FormatInt(q, 10) + ";w=" + strconv.FormatInt(w, 10)
}

// state returns the RateLimit item of a decision: r, the requests left,
// and t, the seconds until the next one comes back (absent when the
// bucket is full).
func (l *Limiter) state(d Decision) string {
	var buf [128]byte
	b := append(append(buf[:0], l.item...), ";r="...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	if d.Reset > 0 {
		b = strconv.AppendInt(append(b, ";t="...), seconds(d.Reset), 10)
	}
	return string(b)
}

// seconds rounds d up to whole seconds, at least 1: a client told 0 would
// retry at once.
func seconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}

// sfString returns s as a structured-field string (RFC 8941, 3.3.3).
func sfString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// validToken reports whether s is an HTTP token (RFC 9110, 5.6.2).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
