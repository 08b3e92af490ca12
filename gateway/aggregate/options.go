package aggregate

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
)

// Option configures a [Handler].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	cache      *cache.Cache[Entry]
	ttl        time.Duration
	clientType ClientType
	shapes     map[string]Shape
	shapesSet  bool
	unsafe     bool
	key        func(*http.Request) string
	transport  http.RoundTripper
	tp         trace.TracerProvider
	mp         metric.MeterProvider
}

// WithCache sets the cache that holds parts' answers (for parts with a
// TTL) and whole documents ([WithTTL]). Its own TTL is how long an
// answer is kept, and so how long after its last success an answer may
// stand in, stale, for a failing part: set it longer than every part's
// TTL. An L2 store (cache/rediscache) shares answers across instances.
// A write to it is bounded by 250 ms and by the request's deadline, so
// that a slow L2 does not hold up a complete answer; one that fails is
// not retried. The handler does not close it. The default is no cache.
//
// Handlers may share a cache: a part's answer is kept by the request
// it sent, and a document by its handler's configuration, whose
// functions (Request, shapes, the client type, WithKey's) count by
// their names. Two closures of one function literal have one name,
// whatever they captured: two [Select] shapes, or two Request functions
// made by one constructor. Handlers that differ only in such closures
// must not share a cache with [WithTTL] as they are: give each a cache
// of its own, or a [WithKey] whose function returns a name of its own:
//
//	aggregate.WithKey(func(*http.Request) string { return "mobile" })
func WithCache(c *cache.Cache[Entry]) Option {
	return optionFunc(func(o *config) { o.cache = c })
}

// WithTTL keeps whole documents in the cache ([WithCache]) for d and
// answers identical requests (same path and query, client type,
// caller, credentials and forwarded headers: see [WithKey]) from it
// without running any part. Only complete documents are kept: none
// with a failed or stale part. The default, 0, keeps none.
func WithTTL(d time.Duration) Option { return optionFunc(func(o *config) { o.ttl = d }) }

// WithShapes shapes the document per client type: clientType tells the
// type of a request ([FromHeader], [FromPathValue], [FromClaim] or a
// function of one's own), and shapes[type] reshapes the merged document
// for it. A type that shapes lacks gets shapes[""] if there is one, and
// the document as merged otherwise. The default is the document as
// merged for everyone. shapes must not be empty.
func WithShapes(clientType ClientType, shapes map[string]Shape) Option {
	return optionFunc(func(o *config) { o.clientType, o.shapes, o.shapesSet = clientType, shapes, true })
}

// WithUnsafeMethods accepts requests with methods other than GET and
// HEAD, and parts that send methods other than GET, HEAD and OPTIONS.
// Fanning a POST out to several upstreams is not atomic: one may act
// while another fails, and the client sees a failure for what was
// partly done. Such requests, and those of a handler with a part that
// may write (its Method, or any Request function's with this option),
// are never collapsed or answered from the cache ([WithTTL]). Without
// this option they get 405.
func WithUnsafeMethods() Option { return optionFunc(func(o *config) { o.unsafe = true }) }

// WithKey adds key(r) to the key that identical requests share (for
// collapsing them and for the cache of [WithTTL]), for parts whose
// Request reads something of the request that the key lacks (another
// header, say). The key holds the request's path and query, its client
// type, the caller ([gateway.PrincipalFrom]), the headers parts name,
// and a digest (never the value) of its Authorization,
// Proxy-Authorization and Cookie headers: two callers with different
// credentials never share an aggregation or a document, even when the
// gateway found no principal and a Request function sends them on.
// A key that returns a constant of its own tells apart handlers that
// share a cache (see [WithCache]). The default adds nothing.
func WithKey(key func(r *http.Request) string) Option {
	return optionFunc(func(o *config) { o.key = key })
}

// WithTransport sets the round tripper the parts' calls go through,
// whose requests name an upstream as their host ("http://orders/orders/42").
// The default is [gateway.UpstreamTransport], the upstreams of the gateway
// serving the request; a handler served outside a gateway takes
// [gateway.Gateway.Transport] of one. A nil rt keeps the default.
func WithTransport(rt http.RoundTripper) Option {
	return optionFunc(func(o *config) {
		if rt != nil {
			o.transport = rt
		}
	})
}

// WithTracerProvider sets where the handler's spans go. The default,
// also used when tp is nil, is the global provider at the time of New.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(o *config) { o.tp = tp })
}

// WithMeterProvider sets where the handler's metrics go. The default,
// also used when mp is nil, is the global provider at the time of New.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(o *config) { o.mp = mp })
}
