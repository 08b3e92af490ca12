// Package strangler moves a legacy system to a new one route by route,
// behind a [gateway.Gateway]: the strangler fig pattern. A [Facade] is a
// route's Handler that sends each request to the legacy side or the new
// one, by rules (path, header, cookie, a feature flag) and by a
// percentage that keeps each user on one side while it moves, and that
// can shadow requests to the other side and compare the two answers, so
// that a team sees what would change before it flips a route.
//
// The two sides are http.Handlers, in practice the gateway's proxies to
// two upstreams, which gives both the gateway's balancing, breakers,
// retries, forwarding headers and client spans:
//
//	orders, err := strangler.New(
//		gateway.ProxyTo("legacy"), gateway.ProxyTo("new"),
//		strangler.WithShadow(strangler.Shadow{
//			Ignore: []string{"id", "**.created_at", "items.*.id"},
//		}),
//	)
//	// ...
//	g, err := gateway.New(gateway.WithUpstreams(legacy, modern),
//		gateway.WithRoutes(
//			gateway.Route{Pattern: "/orders/", Handler: orders,
//				Middleware: []gateway.Middleware{authn.Middleware()}},
//			gateway.Route{Pattern: "GET /admin/strangler/orders",
//				Handler: orders.DiffHandler(),
//				Middleware: []gateway.Middleware{
//					authn.Middleware(auth.RequireAnyRole("admin"))}},
//		))
//	// and, when shutting down: orders.Shutdown(ctx), then g.Close()
//
// (authn is an Authenticator of
// [github.com/otelpatterns/patterns/gateway/auth]. [gateway.ProxyTo]
// proxies to an upstream of the gateway serving the request, so the
// facade is built before the gateway; g.Proxy does the same for a
// gateway at hand.)
//
// # The way of a request
//
// A request is split, answered by one side, and maybe shadowed to the
// other:
//
//	request
//	  |
//	  v
//	rules, in the order given:     --decides--> that side
//	WithPaths, WithHeader,
//	WithCookie, WithFlag
//	  | none decides
//	  v
//	sticky key (WithStickyKey)?    --none-----> legacy (new at 100%)
//	  |
//	  v
//	Bucket(key) < percent?         --yes------> new
//	  | no
//	  v
//	legacy
//
//	primary side --answer--> client
//	  |
//	  | shadowed (WithShadow: its method, body size, Shadow.Percent)
//	  v
//	queue (Shadow.Queue, Shadow.MaxQueuedBytes; full: dropped)
//	  |
//	  v
//	workers (Shadow.Workers) --copy with ShadowHeader--> other side
//	  |                        (within Shadow.Timeout)
//	  |
//	  v
//	compare legacy with new: status, Shadow.Headers, body without
//	Shadow.Ignore --> match, mismatch (kept for Diffs), or error
//
// # Moving a route
//
// A route moves in steps, each undone by the step before it:
//
//  1. Percent 0, no shadow: everything goes to legacy, and
//     gateway.strangler.routed counts it. Routes already done elsewhere
//     can point at the new upstream directly with a [gateway.Route].
//  2. Shadow: [WithShadow]. Clients still get legacy's answers; a copy
//     of each GET goes to the new side, and the answers are compared.
//     Watch gateway.strangler.shadow by result and read the differences
//     from [Facade.DiffHandler]; ignore what differs by nature (ids,
//     timestamps) and fix the new system until mismatches are gone.
//  3. Testers first: [WithHeader], [WithCookie] or a [WithFlag] callback
//     on a claim send chosen callers to the new side.
//  4. [Facade.SetPercent](10), then 50: one caller in ten, then one in
//     two, goes to the new side, by a hash of a sticky key (the
//     authenticated subject, or the client's address). Shadowing goes on
//     in the other direction for them: the new side answers and legacy
//     is compared against it.
//  5. SetPercent(100), then [Facade.SetShadow](false). When the route
//     has been quiet for long enough, point it at the new upstream and
//     retire the facade.
//
// SetPercent takes effect at once, without a restart, and is what an
// admin endpoint or a flag service's callback calls.
//
// # Rules
//
// Rules are tried in the order their options were given, and the first
// that decides wins: [WithPaths] (ServeMux patterns), [WithHeader],
// [WithCookie], [WithFlag] (a callback: the request, and the claims of
// [gateway.PrincipalFrom], in; a decision out). A request no rule decides
// goes by [WithPercent]: to the new side when the bucket of its sticky
// key ([WithStickyKey]: [BySubject], [ByClaim], [ByCookie], [ByHeader],
// [ByClientIP]) is below the percentage. Buckets come from [Bucket], a
// fixed hash (FNV-1a with MurmurHash3's finalizer) that is the same in
// every process and on every replica: a user stays on one side across
// restarts and gateway instances, and raising the percentage only moves
// users from legacy to new, never back.
//
// # Shadow traffic
//
// With [WithShadow], a request whose method is listed (GET, HEAD and
// OPTIONS by default: listing a write is the explicit opt-in) and whose
// body fits [Shadow].MaxBodyBytes is answered by its primary side as
// usual while the facade keeps a bounded copy of what was written. Then
// the request, its body and that answer are queued for a fixed pool of
// workers; when the queue is full ([Shadow].Queue copies, or
// [Shadow].MaxQueuedBytes of bodies) the copy is dropped and counted. The
// primary never waits for its shadow: the shadow is sent after the
// primary has answered, on a context of its own (the request's values
// without its cancellation, with [Shadow].Timeout), and carries the
// [ShadowHeader]. On a busy route, [Shadow].Percent shadows a share of
// the requests, evenly spread: each shadow costs the gateway a second
// proxied call and a comparison.
//
// The answers are compared as legacy against new, whichever answered
// the client: the status, the headers of [Shadow].Headers (Content-Type
// as a media type: "text/html;charset=UTF-8" is "text/html;
// charset=utf-8"), and the bodies: JSON (by Content-Type)
// structurally, key order and number spelling aside, without the paths
// of [Shadow].Ignore; anything else byte for byte; gzip decoded first.
// The latest differences are kept ([Shadow].Samples) with the field
// paths and both values, for [Facade.Diffs] and [Facade.DiffHandler].
// An answer that the gateway made for the shadow side (a 502 or 503
// when its upstream could not be reached) is compared like any other,
// as a status difference. One that the gateway made for the primary
// side, because the client left or the request's time ran out first,
// is not compared: the copy is dropped.
//
// [Facade.Shutdown] stops shadowing and waits for the queued copies;
// [Facade.Close] drops them. Either returns once every worker has
// exited. Shut the facade down before closing the gateway.
//
// # Telemetry
//
// Through the providers of [WithTracerProvider] and [WithMeterProvider]
// (the global ones by default), under the scope [ScopeName]. On the
// request's span (the gateway's server span), when it is recording:
//
//   - gateway.strangler.target: legacy or new, the side that answered;
//   - gateway.strangler.rule: what decided (path, header, cookie, flag,
//     percent, or default for a request without a sticky key);
//   - event gateway.strangler.flag_panic, with exception.message, when
//     a flag callback panicked.
//
// Spans:
//
//   - gateway.strangler.shadow (internal): a shadow call, the root of a
//     trace of its own, linked to the request's span; the gateway's
//     client span of the call is its child. Attributes:
//     http.request.method, http.route, gateway.strangler.target (the
//     side shadowed), gateway.strangler.primary (the side that
//     answered), gateway.strangler.shadow.result,
//     http.response.status_code, and error.type when the call failed
//     (gateway.strangler.shadow_timeout, gateway.strangler.panic when
//     the side's handler panicked or the answer broke off,
//     gateway.strangler.closed when Shutdown cancelled it).
//
// Metrics:
//
//   - gateway.strangler.routed (counter, {request}): requests by
//     gateway.strangler.target, gateway.strangler.rule and http.route.
//   - gateway.strangler.shadow (counter, {request}): shadow copies by
//     gateway.strangler.shadow.result (match, mismatch, error or
//     dropped), gateway.strangler.target (the side shadowed) and
//     http.route; dropped ones by gateway.strangler.shadow.reason too:
//     queue_full, body_too_large, response_too_large, closed, or
//     request_ended (the client left, or the request's time ran out,
//     before the primary side answered).
//
// http.route is the gateway route's ([gateway.RouteFrom]), absent outside
// a gateway; past 1024 routes the rest count as "_OTHER". Counts are
// kept in memory and reported when the SDK collects.
package strangler
