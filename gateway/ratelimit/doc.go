// Package ratelimit limits the rate of a [gateway.Gateway] route's
// requests with token buckets: in process with [golang.org/x/time/rate], or
// in Redis, shared by every instance of the gateway, with the GCRA of
// [github.com/go-redis/redis_rate/v10].
//
// A [Limit] says everything about one limit, and has no silent defaults
// for what matters: the rate (Requests per Per, with a Burst), whose
// budget a request spends (Key: [ByClientIP], [ByClaim], [ByHeader],
// [AllClients]), and whether each route has its own budgets or the routes
// that list the limiter share them (Scope: [PerRoute] or [AcrossRoutes]):
//
//	perClient, err := ratelimit.New(ratelimit.Limit{
//		Name:     "per-client",
//		Requests: 100, Per: time.Minute, Burst: 20,
//		Key:      ratelimit.ByClientIP(),
//		Scope:    ratelimit.AcrossRoutes,
//	})
//	// then list perClient.Middleware on the routes it limits
//
// A limit configured once is applied once: with AcrossRoutes, a client
// has 100 a minute in all, however many routes list the limiter (the
// Traefik bug that applied it once per router); with PerRoute, 100 a
// minute on each. Two limiters never share budgets in process, even with
// the same name. Client addresses come from [gateway.ClientIP], which the
// gateway derives from the trusted-proxy chain, never from headers a
// client can forge. A key from a claim needs the auth middleware before
// this one; a request without the claim is keyed by its address.
//
// # Responses
//
// Every response carries the RateLimit-Policy and RateLimit header fields
// of draft-ietf-httpapi-ratelimit-headers-10 (September 2025):
//
//	RateLimit-Policy: "per-client";q=100;w=60
//	RateLimit: "per-client";r=19;t=1
//
// q per w seconds is the sustained rate, r the requests left in the
// bucket now, t the seconds until the next comes back (absent when the
// bucket is full). A limited request is answered 429 with Retry-After and
// an RFC 9457 problem of the draft's quota-exceeded type. Several limiters
// on one route each add their item.
//
// # Bounded memory
//
// The in-process buckets are kept in a table of at most [WithMaxKeys]
// keys (100,000 by default): a flood of distinct clients makes it evict,
// never grow. It evicts the bucket that has refilled most of a few it
// samples, so the buckets of clients who are being limited stay.
//
// # Redis
//
// [WithRedis] keeps the buckets in Redis, so that every instance spends
// the same budgets. Each call is bounded by [WithRedisTimeout] (50ms by
// default, far below a request's timeout). When Redis cannot decide, the
// limiter fails open (lets the request through) or, with
// [WithFailClosed], closed (503 with Retry-After), and counts it.
//
// # Telemetry
//
// Metrics come from the meter named [ScopeName] of the [WithMeterProvider]
// provider (the global one by default):
//
//   - gateway.ratelimit.decisions (counter, {request}): decisions, by
//     gateway.ratelimit.name, gateway.ratelimit.decision (allowed,
//     limited, or error when Redis could not decide) and http.route (the
//     matched route's pattern; absent outside a gateway). Error points
//     also carry gateway.ratelimit.fail_mode (open: the request went on;
//     closed: it was refused) and error.type. Never the client's key.
//
// Counts are kept in memory and reported when the SDK collects, only for
// the decisions and routes that happened (at most 1024 routes; beyond,
// the route is "_OTHER").
//
// Span events, added to the request's span when it is recording (the
// package starts no span of its own):
//
//   - gateway.ratelimit.limited: gateway.ratelimit.name.
//   - gateway.ratelimit.error: gateway.ratelimit.name,
//     gateway.ratelimit.fail_mode and error.type.
package ratelimit
