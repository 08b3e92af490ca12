package gateway

import (
	"fmt"
	"log"
	"net/http"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultRequestIDHeader is the header that carries a request's ID unless
// [WithRequestIDHeader] names another.
const DefaultRequestIDHeader = "X-Request-Id"

// Option configures a [Gateway]. [New] takes every option; [Gateway.Update]
// takes those that make up the routing table ([WithUpstreams], [WithRoutes],
// [WithTrustedProxies], [WithRequestIDHeader], [WithDroppedHeaders],
// [WithUnderscoreHeaders], [WithStrictPaths]) and refuses the others,
// which only New can set.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is what the options say. The table part is validated and built
// by build; the rest only by New.
type config struct {
	upstreams   []Upstream
	routes      []Route
	trusted     []string
	requestID   string
	dropped     []string
	underscores bool
	strictPaths bool

	// New only; newOnly names those given, for Update's error.
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	transport      http.RoundTripper
	errorLog       *log.Logger
	clock          func() int64 // withClock's
	newOnly        []string

	// nilOpts are the faults of nil options, which New and Update report
	// with the table's other errors.
	nilOpts []error
}

func newConfig(opts []Option) *config {
	c := &config{requestID: DefaultRequestIDHeader}
	for i, o := range opts {
		if o == nil {
			c.nilOpts = append(c.nilOpts, fmt.Errorf("gateway: opts[%d] is nil", i))
			continue
		}
		o.apply(c)
	}
	return c
}

// WithUpstreams adds upstream services that routes send requests to.
// Each Name must be unique among the gateway's upstreams. Several calls
// add up.
func WithUpstreams(us ...Upstream) Option {
	return optionFunc(func(c *config) { c.upstreams = append(c.upstreams, us...) })
}

// WithRoutes adds routes. Routes are matched by their Pattern as
// [http.ServeMux] matches patterns, then by their header and query
// matchers; see [Route]. Several calls add up; errors name a route by its
// position among all of them ("routes[3]").
func WithRoutes(rs ...Route) Option {
	return optionFunc(func(c *config) { c.routes = append(c.routes, rs...) })
}

// WithTrustedProxies sets the proxies (load balancers, CDNs) in front of
// the gateway whose forwarding headers it believes, as CIDR prefixes
// ("10.0.0.0/8") or single addresses ("192.0.2.7"). Several calls add up.
//
// A request whose connection comes from a trusted proxy keeps its
// X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto and Forwarded
// headers, and the gateway appends its own hop; its client address
// ([ClientIP]) is the right-most address of the X-Forwarded-For chain (or,
// without one, of the Forwarded for= chain) that is not a trusted proxy. A
// request from any other peer has those headers (and X-Real-Ip,
// X-Forwarded-Port, -Prefix, -Ssl and -Scheme) removed
// before anything sees them, and its client address is the peer's.
//
// By default no proxy is trusted.
func WithTrustedProxies(cidrs ...string) Option {
	return optionFunc(func(c *config) { c.trusted = append(c.trusted, cidrs...) })
}

// WithDroppedHeaders removes the named request headers from every
// request on arrival, whichever route it takes and whoever sent it,
// before middleware, handlers or telemetry see them. List the headers
// that something in the gateway sets for upstreams to believe, such as
// the claim headers of gateway/auth (auth.WithClaimHeaders): auth
// removes them on the routes it guards, but on a route without it a
// client could set them itself. Their spellings with underscores
// ("X_User_Id") are removed too (see [WithUnderscoreHeaders]), and a name
// given with underscores is removed in its spelling with hyphens too.
// Several calls add up.
func WithDroppedHeaders(names ...string) Option {
	return optionFunc(func(c *config) { c.dropped = append(c.dropped, names...) })
}

// WithUnderscoreHeaders passes on request headers whose names contain
// an underscore ("X_Custom"), which the gateway removes by default, as
// nginx does unless told otherwise (underscores_in_headers off). Many
// servers read "_" and "-" in a name as one character: nginx with that
// setting on, CGI and WSGI (which map both to HTTP_X_CLIENT_ID), and
// frameworks built on them. To such an upstream "X_Client_Id" is the
// "X-Client-Id" that [WithDroppedHeaders] or the trusted-proxy rules
// remove, so a client could forge it under the other spelling. With this
// option, a header with an underscore is still removed when, with its
// underscores read as hyphens, it is one of those the gateway removes or
// sets: the forwarding headers (whoever the peer), the dropped headers
// and the request-ID header. Middleware that sets headers of its own for
// upstreams to believe should have them listed in WithDroppedHeaders.
// By default headers with underscores are removed.
func WithUnderscoreHeaders() Option {
	return optionFunc(func(c *config) { c.underscores = true })
}

// WithStrictPaths refuses, with 400, requests whose path has an escaped
// slash (%2F), a backslash (bare or %5C) or a NUL (%00). The gateway
// routes "/files/a%2Fb" as one segment "a/b" and passes it on escaped;
// an upstream that unescapes before routing sees two segments, and
// "/files/..%2Fadmin" as a step up to /admin, past the gateway's routes
// and their middleware. Set it unless some upstream needs escaped
// slashes in its paths (IDs that contain "/", say). Traefik rejects the
// same characters when asked to. By default they pass.
func WithStrictPaths() Option {
	return optionFunc(func(c *config) { c.strictPaths = true })
}

// WithRequestIDHeader names the header that carries the request ID. A
// request that arrives with a well-formed ID (1 to 128 printable ASCII
// characters, no spaces) keeps it; any other gets a new random one. The
// ID is sent to the upstream and set on the response. The default is
// [DefaultRequestIDHeader] (X-Request-Id); "" turns request IDs off.
func WithRequestIDHeader(name string) Option {
	return optionFunc(func(c *config) { c.requestID = name })
}

// WithTracerProvider sets where the gateway's spans go: the server span of
// each request and the client span of each attempt to an upstream (both
// through otelhttp), and the spans of the retriers it builds. The default,
// also used when tp is nil, is the global provider at the time of New.
// Only [New] takes it.
//
// When tp is a no-op provider (go.opentelemetry.io/otel/trace/noop) and
// so is [WithMeterProvider]'s, the gateway leaves otelhttp out
// altogether, for speed; the trace context of incoming requests still
// reaches upstreams, as any other header does.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		c.tracerProvider = tp
		c.newOnly = append(c.newOnly, "WithTracerProvider")
	})
}

// WithMeterProvider sets where the gateway's metrics go, and those of the
// breakers and retriers it builds. The default, also used when mp is nil,
// is the global provider at the time of New. Only [New] takes it.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		c.meterProvider = mp
		c.newOnly = append(c.newOnly, "WithMeterProvider")
	})
}

// WithErrorLog sets where the gateway logs the errors that no status code
// can report any more: a response body that broke off while it was being
// copied to the client (the upstream's connection reset, the client gone),
// which httputil.ReverseProxy logs. The default, as for net/http's
// Server.ErrorLog, is the log package's standard logger;
// log.New(io.Discard, "", 0) silences them. Every other failure is an
// answer (502, 503, 504) and is in the spans and metrics. Only [New]
// takes it.
func WithErrorLog(l *log.Logger) Option {
	return optionFunc(func(c *config) {
		c.errorLog = l
		c.newOnly = append(c.newOnly, "WithErrorLog")
	})
}

// withClock makes the gateway read the time for ejections from clock
// (monotonic nanoseconds) instead of the system's monotonic clock, so
// that tests of ejection can drive the time themselves. New only.
func withClock(clock func() int64) Option {
	return optionFunc(func(c *config) {
		c.clock = clock
		c.newOnly = append(c.newOnly, "withClock")
	})
}

// WithTransport sets the transport that carries requests to upstreams and
// health checks, for upstreams that set no [Upstream].Transport of their
// own. An *http.Transport is cloned, with HTTP/2 without TLS only, for
// upstreams that set H2C. The gateway never closes it. The default is
// an http.Transport of the gateway's own, with keep-alive, 256 idle
// connections per target, a 5s dial timeout and no environment proxy,
// whose idle connections [Gateway.Close] closes. Only [New] takes it.
func WithTransport(rt http.RoundTripper) Option {
	return optionFunc(func(c *config) {
		c.transport = rt
		c.newOnly = append(c.newOnly, "WithTransport")
	})
}
