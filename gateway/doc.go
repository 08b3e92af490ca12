// Package gateway is an API gateway to embed in a Go service: a
// [net/http.Handler] that routes requests to upstream services, spreads
// them over each service's instances, checks their health, retries what
// is safe to retry and degrades gracefully, with OpenTelemetry spans and
// metrics built in. A team builds it in Go code, in its own binary,
// instead of running KrakenD, Kong or Traefik beside it.
//
//	g, err := gateway.New(
//		gateway.WithUpstreams(gateway.Upstream{
//			Name: "orders",
//			Targets: []gateway.Target{
//				{URL: "http://10.0.0.7:8080"},
//				{URL: "http://10.0.0.8:8080"},
//			},
//			HealthCheck: &gateway.HealthCheck{Path: "/healthz"},
//			Retry:       &gateway.Retry{},
//		}),
//		gateway.WithRoutes(gateway.Route{
//			Pattern:  "GET /api/orders/{id}",
//			Upstream: "orders",
//			Rewrite:  "/orders/{id}",
//			Timeout:  5 * time.Second,
//		}),
//		gateway.WithTrustedProxies("10.0.0.0/8"),
//	)
//	if err != nil {
//		log.Fatal(err) // every configuration error, each naming its field
//	}
//	defer g.Close()
//	log.Fatal(http.ListenAndServe(":8080", g))
//
// # The path of a request
//
// A request goes through these steps; each may answer it itself:
//
//	client
//	  |
//	  v
//	Gateway           server span, trusted-proxy chain, dropped headers,
//	  |               request ID
//	  v
//	route             the most specific Pattern, then Header and Query
//	  |               matchers (none matches: 404); the route's
//	  |               MaxBodyBytes (413) and Timeout start here
//	  v
//	Middleware        the route's, first outermost: auth (401, 403),
//	  |               rate limit (429), your own
//	  v
//	Handler set? --yes--> the route's own handler (aggregate, strangler),
//	  | no                which calls upstreams through Gateway.Proxy,
//	  v                   ProxyTo or Transport: retry, balancer, breaker
//	retry  <---------+    Upstream.Retry: requests safe to repeat,
//	  |              |    within the retry budget
//	  v              |
//	balancer         |    a target in service (health checks, outlier
//	  |              |    ejection) not tried yet for this request
//	  v              |
//	breaker          |    the target's; an open one sends the balancer
//	  |              |    to another target
//	  v              |
//	attempt ---------+    Retry.PerTryTimeout; a failure or a status
//	  |                   of Retry.Status (502, 503, 504) is tried again
//	  v
//	upstream answered? --yes--> its answer, whatever its status, to the
//	  | no                      client (and a 200 to a GET kept in the
//	  v                         fallback's cache)
//	Fallback set? --yes--> static response, handler, or the cached answer
//	  | no
//	  v
//	503 (no target could take it), 504 (time ran out), 502 (otherwise)
//
// # Routes
//
// A [Route]'s Pattern is an [http.ServeMux] pattern, with its precedence:
// the most specific pattern wins. Header and query matchers ([Match])
// choose among routes that share a pattern, so one path can go to two
// versions of a service by header. A route proxies to an [Upstream],
// rewriting the path if asked (StripPrefix, or a Rewrite template that
// uses the pattern's wildcards), or hands the request to its own
// Handler: the place for aggregation and strangler routing built on top.
// Such a handler reaches the gateway's upstreams by name, with their
// balancing, breakers and retries: [Gateway.Proxy] proxies the request to
// one, [Gateway.Transport] is a round tripper for calls of its own.
// Routes take [Middleware], run after the gateway's own handling, so they
// see the client's address ([ClientIP]), the route ([RouteFrom]) and the
// request ID. The sub-packages provide what a route commonly needs:
//
//   - [github.com/otelpatterns/patterns/gateway/auth]: authentication
//     (JWTs, API keys) and roles or scopes per route, as Middleware that
//     puts who the caller is in the context ([PrincipalFrom]);
//   - [github.com/otelpatterns/patterns/gateway/ratelimit]: rate limits,
//     as Middleware, in process or in Redis;
//   - [github.com/otelpatterns/patterns/gateway/aggregate]: a Handler
//     that fans one request out to several upstreams and merges their
//     answers (backend for frontend);
//   - [github.com/otelpatterns/patterns/gateway/strangler]: a Handler
//     that moves a route from a legacy upstream to a new one, with
//     shadow traffic, and its sub-package pgcdc, which copies the legacy
//     database's changes.
//
// [Gateway.Update] swaps the whole routing table at run time: requests
// in flight finish on the table they started with, and a table that
// fails validation is refused, leaving the live one untouched.
//
// # Proxying
//
// Requests are proxied by [net/http/httputil.ReverseProxy] with a Rewrite
// function, which sees the request after hop-by-hop headers (and those
// the client names in Connection) are removed:
//
//   - X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto and Forwarded
//     are believed only from the proxies of [WithTrustedProxies]; from any
//     other peer they (and X-Real-Ip, X-Forwarded-Port,
//     X-Forwarded-Prefix, X-Forwarded-Ssl, X-Forwarded-Scheme,
//     True-Client-Ip, X-Client-Ip and Front-End-Https) are removed on
//     arrival, before middleware, handlers or telemetry read them. The
//     gateway appends its hop to both chains; a trusted proxy's chain
//     that comes in one of them only is made in the other too, so that
//     the upstream reads the same client in either.
//   - Headers the client names in Connection are hop-by-hop, for the
//     gateway alone: they are removed on arrival (once the client's
//     address has been read from a trusted proxy's X-Forwarded-For),
//     before middleware sees them, so that a client cannot have the
//     proxy remove a header that middleware sets, such as a claim header
//     of gateway/auth. A credential named there is not used. Upgrade
//     stays, for WebSockets, and so does TE, whose "trailers" the proxy
//     passes on for gRPC. Trailers that a client sends after a chunked
//     body are passed on too.
//   - Headers named by [WithDroppedHeaders] (those the gateway's own
//     middleware sets for upstreams to believe) are removed on arrival,
//     on every route.
//   - Headers whose names contain an underscore ("X_Client_Id") are
//     removed on arrival, as nginx removes them: an upstream behind
//     nginx, CGI or WSGI reads "_" as "-", and would take them for the
//     headers above. [WithUnderscoreHeaders] lets them through, except
//     those that read as a removed or gateway-set header.
//   - A request ID ([WithRequestIDHeader], X-Request-Id by default) is
//     kept if well formed, made otherwise, and sent both ways.
//   - Server-sent events and responses of unknown length are flushed as
//     they come; WebSocket and other protocol upgrades pass through.
//   - A body over the route's MaxBodyBytes gets 413; one that cannot be
//     read (a malformed chunk) gets 400. Neither counts against the
//     target, in its breaker or its outlier detection.
//   - Paths keep the client's escaping, so "%2F" stays inside its
//     segment; [WithStrictPaths] refuses escaped slashes, backslashes
//     and NULs instead, for upstreams that unescape before routing.
//   - Upstreams may speak HTTP/2 without TLS ([Upstream].H2C).
//
// The gateway answers for the upstream only when the upstream did not
// answer: 503 with Retry-After when no target can take the request, 504
// when the time ran out, 502 when the upstream could not be reached or
// broke off, never 500 for an upstream's fault. An upstream's own answer,
// error statuses included, is passed on as it is. Nothing is written
// once a response has started: a response cut off mid-way is cut off
// for the client too.
//
// # Upstreams
//
// An [Upstream] holds its targets and how they are used:
//
//   - Balance: [RoundRobin], [WeightedRoundRobin] (smooth, as nginx
//     does) or [LeastRequest] (the power of two choices).
//   - [HealthCheck]: active checks that take failing targets out of
//     service and put them back when they pass again.
//   - [Outlier]: passive ejection of a target that fails requests in a
//     row, for a time that doubles with each ejection.
//   - [Breaker]: a circuit breaker per target
//     ([github.com/otelpatterns/patterns/circuitbreaker]).
//   - [Retry]: retries on another target
//     ([github.com/otelpatterns/patterns/retry]), only for
//     requests that are safe to repeat, with a per-try timeout and a
//     retry budget, sending the same body bytes every time.
//
// # Fallbacks
//
// A route's [Fallback] answers instead of the gateway's error when the
// upstream is unavailable, times out or fails: a static response, a
// handler, or the last good response kept in a cache
// ([github.com/otelpatterns/patterns/cache]).
// Fallback responses carry [FallbackHeader] and are counted.
//
// # Telemetry
//
// The server span of each request and the client span of each attempt
// come from otelhttp (scope go.opentelemetry.io/contrib/.../otelhttp),
// through the [WithTracerProvider] provider (the global one by default);
// trace context goes to the upstream through the global propagator.
//
//   - {method} {route} (server): the request, named by the route's
//     pattern (a request that matches none is named {method} alone).
//     Attributes as otelhttp records them (http.request.method,
//     url.scheme, url.path, server.address, server.port,
//     network.peer.address, network.peer.port, user_agent.original,
//     network.protocol.name, network.protocol.version,
//     http.request.method_original, http.request.body.size,
//     http.response.body.size, http.response.status_code), plus
//     http.route, and client.address from the trusted-proxy chain
//     rather than the X-Forwarded-For header as sent. When the gateway
//     answers with its own 502, 503 or 504, error.type says why:
//     gateway.upstream_unavailable, gateway.attempt_timeout,
//     context.DeadlineExceeded (the route's timeout) or the transport
//     error's type; when it passes on an upstream's 5xx, the status
//     ("503"), on the span and on http.server.request.duration.
//   - {method} (client): one attempt to a target, a child of the server
//     span (or of the retry span of package retry, from the second
//     attempt): http.request.method, url.full, server.address and
//     server.port of the chosen target, network.protocol.version,
//     http.response.status_code, user_agent.original,
//     http.request.method_original, error.type, and
//     http.request.resend_count on retries.
//
// Span events on the server span:
//
//   - gateway.fallback: a fallback answered; gateway.fallback.reason,
//     gateway.fallback.source and the error.type of the cause (the
//     span's own status and error.type stay those of the answer).
//   - gateway.response_aborted: the upstream failed after the response
//     had started, so nothing more could be sent.
//
// The HTTP metrics come from otelhttp too, through the
// [WithMeterProvider] provider. Their attributes are http.request.method,
// url.scheme, server.address, server.port, network.protocol.name,
// network.protocol.version, http.response.status_code, error.type (as
// on the span), and on server metrics http.route: never a path or a
// user. On server metrics, server.address and server.port are the
// matched route's host (else the local address) and the local port, not
// the client's Host header, whose every spelling would otherwise make a
// new series. A server span is named by its method and http.route, the
// route pattern's path (without its method and host).
//
//   - http.server.request.duration (histogram, s)
//   - http.server.request.body.size (histogram, By)
//   - http.server.response.body.size (histogram, By)
//   - http.client.request.duration (histogram, s), per attempt
//   - http.client.request.body.size (histogram, By), per attempt
//
// The gateway's own metrics come from the meter named [ScopeName]:
//
//   - gateway.upstream.selections (counter, {selection}): targets chosen
//     by the balancer, one per attempt; gateway.upstream, server.address
//     and server.port.
//   - gateway.upstream.health (gauge, {target}): 1 while a target is in
//     service (healthy, not ejected, breaker not open), 0 while not;
//     gateway.upstream, server.address and server.port.
//   - gateway.upstream.ejections (counter, {ejection}): outlier
//     ejections; gateway.upstream, server.address and server.port.
//   - gateway.upstream.unavailable (counter, {request}): attempts that
//     no target of the upstream could take; gateway.upstream.
//   - gateway.fallbacks (counter, {response}): fallback responses, by
//     http.route, gateway.fallback.reason (unavailable, timeout or
//     failure) and gateway.fallback.source (cache, handler or static).
//
// These are counted in memory and reported by asynchronous (observable)
// instruments when the SDK collects, for the targets and routes of the
// live table; a target removed by [Gateway.Update] takes its series with
// it. [Gateway.Close] unregisters them: shut the meter provider down (or
// flush it) before Close, or their last counts are not exported.
//
// Breakers and retriers report under their own packages' scopes
// (circuitbreaker.* named "{upstream}/{host:port}", retry.* named after
// the upstream, and the retry span). Health checks make no spans.
package gateway
