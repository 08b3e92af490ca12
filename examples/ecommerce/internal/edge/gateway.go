package edge

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/hexagonal"
)

// ClientIDHeader carries the caller's client ID (the token's sub) to the
// upstreams. The gateway sets it from the verified token only, and
// removes a client's own on every route.
const ClientIDHeader = "X-Client-Id"

// RateLimitName names the per-client limit in its headers and metrics;
// IPRateLimitName the per-address limit checked before authentication.
const (
	RateLimitName   = "per-client"
	IPRateLimitName = "per-ip"
)

// Routing bounds.
const (
	routeTimeout = 10 * time.Second
	// perTryTimeout abandons an attempt whose headers are late, to try
	// again within the route's time.
	perTryTimeout = 3 * time.Second
	maxOrderBody  = 64 << 10
	// catalogueStale is how long the catalogue's last good answers are
	// kept to stand in while it is down.
	catalogueStale = 10 * time.Minute
)

// gatewayServer is the API gateway's component, "gateway", over TLS. It
// is built when it starts, after the token server has: the
// authenticator fetches the token server's key set then.
//
// Routes, each with the per-address rate limit, then authentication, the
// role it needs and the per-client rate limit:
//
//	POST /api/orders            -> orders    /orders          orders:write
//	GET  /api/orders/{id}       -> orders    /orders/{id}     orders:read
//	GET  /api/products          -> catalogue /products        catalogue:read  (fallback: last good answer)
//	GET  /api/products/{sku}    -> catalogue /products/{sku}  catalogue:read  (fallback: last good answer)
//	GET  /web/orders/{id}       -> web BFF                    orders:read
//	GET  /mobile/orders/{id}    -> mobile BFF                 orders:read
func (e *Edge) gatewayServer() hexagonal.Component {
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{e.cert}, MinVersion: tls.VersionTLS12}
	return e.server("gateway", e.gatewayLn, tlsConfig, gatewayReadTimeout, e.buildGateway)
}

// buildGateway builds the public gateway and what it uses, and returns
// what closes them.
func (e *Edge) buildGateway() (_ http.Handler, _ func() error, err error) {
	var closers []func() error
	release := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, release())
		}
	}()

	authn, err := auth.New(
		auth.WithJWKS(e.JWKSURL(), "RS256"),
		auth.WithIssuer(e.tokens.issuer),
		auth.WithAudience(Audience),
		auth.WithClaimHeaders(map[string]string{"sub": ClientIDHeader}),
		auth.WithRealm("ecommerce"),
		// A client sends the same token for minutes: checking its
		// signature once a minute is enough.
		auth.WithTokenCache(10_000, time.Minute),
		auth.WithMeterProvider(e.mp),
	)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() error { authn.Close(); return nil })

	// One budget per client (the token's subject) across all routes.
	limit, err := ratelimit.New(ratelimit.Limit{
		Name: RateLimitName, Requests: e.cfg.RatePerSecond, Per: time.Second, Burst: e.cfg.Burst,
		Key: ratelimit.ByClaim("sub"), Scope: ratelimit.AcrossRoutes,
	}, ratelimit.WithMeterProvider(e.mp))
	if err != nil {
		return nil, nil, err
	}

	// One budget per client address across all routes, in front of
	// authentication: a request refused here costs no signature check,
	// so made-up tokens cannot make the gateway spend its CPU on RS256.
	perIP, err := ratelimit.New(ratelimit.Limit{
		Name: IPRateLimitName, Requests: e.cfg.IPRatePerSecond, Per: time.Second, Burst: e.cfg.IPBurst,
		Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes,
	}, ratelimit.WithMeterProvider(e.mp))
	if err != nil {
		return nil, nil, err
	}

	stale, err := cache.New[gateway.CachedResponse](
		cache.WithName("edge.catalogue"), cache.WithTTL(catalogueStale),
		cache.WithTracerProvider(e.tp), cache.WithMeterProvider(e.mp),
	)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, stale.Close)
	// The catalogue is the same for every caller, so its answers are
	// kept under the path alone, although the requests are
	// authenticated (the default key keeps no authenticated answer
	// unless it says it is public).
	catalogueFallback := &gateway.Fallback{
		Cache:    stale,
		CacheKey: func(r *http.Request) string { return "catalogue " + r.URL.RequestURI() },
	}
	guard := func(role string) []gateway.Middleware {
		return []gateway.Middleware{perIP.Middleware, authn.Middleware(auth.RequireAnyRole(role)), limit.Middleware}
	}

	g, err := gateway.New(
		gateway.WithTracerProvider(e.tp), gateway.WithMeterProvider(e.mp),
		gateway.WithErrorLog(slog.NewLogLogger(e.log.Handler(), slog.LevelWarn)),
		gateway.WithStrictPaths(),
		gateway.WithDroppedHeaders(ClientIDHeader),
		gateway.WithUpstreams(
			e.upstream("orders", e.cfg.OrdersURL, retryAttempts),
			e.upstream("catalogue", e.cfg.CatalogueURL, retryAttempts),
			// The BFFs retry their own calls to the services: retrying
			// them too would multiply the attempts a failing service
			// gets.
			e.upstream("web-bff", e.WebBFFURL(), 1),
			e.upstream("mobile-bff", e.MobileBFFURL(), 1),
		),
		gateway.WithRoutes(
			// The Idempotency-Key header goes to the orders service,
			// which de-duplicates commands by it, and makes the POST
			// safe to retry.
			gateway.Route{Pattern: "POST /api/orders", Upstream: "orders", Rewrite: "/orders",
				Timeout: routeTimeout, MaxBodyBytes: maxOrderBody,
				Middleware: append(guard(RoleOrdersWrite), relocate("/orders/", "/api/orders/"))},
			gateway.Route{Pattern: "GET /api/orders/{id}", Upstream: "orders", Rewrite: "/orders/{id}",
				Timeout: routeTimeout, Middleware: guard(RoleOrdersRead)},
			gateway.Route{Pattern: "GET /api/products", Upstream: "catalogue", Rewrite: "/products",
				Timeout: routeTimeout, Middleware: guard(RoleCatalogueRead), Fallback: catalogueFallback},
			gateway.Route{Pattern: "GET /api/products/{sku}", Upstream: "catalogue", Rewrite: "/products/{sku}",
				Timeout: routeTimeout, Middleware: guard(RoleCatalogueRead), Fallback: catalogueFallback},
			gateway.Route{Pattern: "GET /web/orders/{id}", Upstream: "web-bff",
				Timeout: routeTimeout, Middleware: guard(RoleOrdersRead)},
			gateway.Route{Pattern: "GET /mobile/orders/{id}", Upstream: "mobile-bff",
				Timeout: routeTimeout, Middleware: guard(RoleOrdersRead)},
		),
	)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, g.Close)
	return g, release, nil
}

// retryAttempts is the most attempts of a request to a service, the
// first included.
const retryAttempts = 3

// upstream is a service behind a gateway, with a breaker and retries:
// five failures in a row open the breaker for five seconds, and a failed
// attempt of a request safe to repeat is tried again, up to attempts in
// all (within the upstream's retry budget, which bounds them in an
// outage). Breakers log their changes.
//
// A per-try timeout is set only when there is another try to make: with
// one attempt (the BFFs, which retry their own calls within bffTimeout)
// it would only cut short, at perTryTimeout, an answer the upstream
// still has time to give, such as the BFF's after its own retry, and
// the route's Timeout bounds the attempt anyway.
func (e *Edge) upstream(name, url string, attempts int) gateway.Upstream {
	var perTry time.Duration
	if attempts > 1 {
		perTry = perTryTimeout
	}
	return gateway.Upstream{
		Name:    name,
		Targets: []gateway.Target{{URL: url}},
		Breaker: &gateway.Breaker{Options: []circuitbreaker.Option{
			circuitbreaker.WithConsecutiveFailures(5),
			circuitbreaker.WithOpenDuration(5 * time.Second),
			circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
				e.log.Warn("edge: breaker changed state", slog.String("breaker", c.Breaker),
					slog.String("from", c.From.String()), slog.String("to", c.To.String()))
			}),
		}},
		Retry: &gateway.Retry{Attempts: attempts, PerTryTimeout: perTry},
	}
}
