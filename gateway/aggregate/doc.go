// Package aggregate serves backend-for-frontend routes of a gateway: one
// request fans out to several upstream calls, and their answers come
// back merged into one JSON document, shaped for the client that asked.
// A web page that needs an order, its customer and the product's reviews
// makes one call instead of three, and a mobile app gets fewer fields.
//
// A [Handler] is the Handler of a [gateway.Route]. Its parts call
// upstreams by name through the gateway that serves the request
// ([gateway.UpstreamTransport]), so each call has the upstream's
// balancing, breakers, retries and client span:
//
//	page, err := aggregate.New([]aggregate.Part{
//		{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
//		{Name: "customer", Upstream: "customers",
//			Path: "/customers/{order.customer_id}"},
//		{Name: "reviews", Upstream: "reviews",
//			Path: "/reviews?order={id}", Optional: true,
//			Timeout: 300 * time.Millisecond},
//	})
//	...
//	g, err := gateway.New(
//		gateway.WithUpstreams(orders, customers, reviews),
//		gateway.WithRoutes(gateway.Route{
//			Pattern: "GET /pages/orders/{id}", Handler: page,
//			Timeout: 2 * time.Second,
//		}),
//	)
//
// answers GET /pages/orders/42 with
//
//	{"order": {...}, "customer": {...}, "reviews": [...]}
//
// # Dependencies and stages
//
// The parts of the example above form this graph; an arrow points from
// a part to the parts that need its answer:
//
//	stage 0                          stage 1
//	+----------------------+         +--------------------------------+
//	| order                | ------> | customer                       |
//	| /orders/{id}         |         | /customers/{order.customer_id} |
//	+----------------------+         +--------------------------------+
//	+----------------------+
//	| reviews (optional)   |
//	| /reviews?order={id}  |
//	+----------------------+
//
// and run so, the response leaving when the last part is done:
//
//	order     |=======|
//	customer          |======|
//	reviews   |=============|
//	                         ^ response
//
// A [Part] depends on the parts its Path names ({order.customer_id})
// and those it lists in After, which must come before it. Each part
// starts as soon as the parts it depends on have answered; those that
// depend on none start at once. So a slow part holds up only the parts
// that need it: the customer is fetched when the order arrives, while
// the reviews are still on their way. A part's stage is its depth, for
// telemetry: 0 when it depends on none, else one more than its deepest
// dependency. A part built by a function (Request) reads the answers it
// depends on from [Results], and may return [ErrSkip] to be left out.
//
// # Status policy
//
// Every response is a JSON document; which status it has is decided so:
//
//   - Every part answered (or was skipped): 200 with the document.
//
//   - An optional part failed: 200 without it, and the document says
//     so, per part, in its "_partial" field, and the response in its
//     X-Aggregate-Partial header:
//
//     {"order": {...}, "_partial": {"reviews": {"error": "timeout"}}}
//
//   - A required part failed: the whole response fails, with the
//     upstream's own status when it answered 4xx (a missing order is a
//     404, not a 502), 502 when it answered 5xx or something unusable (a
//     redirect, a body that is not JSON or is over the part's
//     MaxBytes) or could not be reached, 503 when no target could take
//     the call (breakers open, targets out of service, no such
//     upstream), 504 when its Timeout or the route's ran out. The
//     document names the part: {"_failed": {"order": {"error":
//     "status", "status": 404}}}. The parts in flight are cancelled,
//     and those not started yet do not start.
//
//     A 4xx about the gateway's own hop to the upstream, not about the
//     client's request, is a 502 too: 407, 408, 411, 413, 414, 417,
//     421, 426 and 431. So is a 401 without a WWW-Authenticate
//     challenge; a 401 with one is passed on with its challenge.
//
//   - The client went away: 499, as the gateway records it.
//
// A part's failure reason ("error") is one of timeout, unavailable,
// unreachable, status (with the upstream's "status"), too_large,
// invalid, request (its request could not be made: a field it names
// is missing from an earlier answer), dependency (a part it needs
// failed) or canceled. See [PartError]. A required part cannot depend
// on an optional one. Nothing an upstream does gives a 500: that is
// kept for a panic in a [Shape], a [ClientType] or [WithKey]'s
// function, reported to otel.Handle, and for a [Handler] not made by
// [New]. A panic in a part's Request
// function is reported too, and fails that part with reason request,
// so that an optional part's does not fail the response.
//
// The response is the handler's own: the parts' headers (Set-Cookie,
// Cache-Control, their own Content-Type; a 401's WWW-Authenticate
// aside) and the bodies of their error answers are not passed on; the
// document says which part failed and how. Its Vary names the headers
// the parts forward and [FromHeader]'s, added to those a middleware
// set.
//
// Requests with methods other than GET and HEAD get 405, and parts
// cannot send methods other than GET, HEAD and OPTIONS, unless
// [WithUnsafeMethods] says otherwise: a fan-out of writes is not
// atomic, and is never collapsed or cached.
//
// # Shapes
//
// [WithShapes] reshapes the merged document per client type, told by
// a header ([FromHeader]), a path value ([FromPathValue]), a claim of
// the caller's JWT ([FromClaim]) or a function. A [Shape] is a Go
// function; [Select] makes one that keeps and renames fields:
//
//	aggregate.WithShapes(aggregate.FromHeader("X-Client"),
//		map[string]aggregate.Shape{
//			"mobile": aggregate.Select(map[string]string{
//				"id": "order.id", "customer": "customer.name",
//			}),
//		})
//
// # Caching and collapsing
//
// With [WithCache] ([github.com/otelpatterns/patterns/cache]: an
// in-process L1, and Redis as L2 through
// [github.com/otelpatterns/patterns/cache/rediscache]), a part with a
// TTL is answered from the cache for that long. Its key is the request
// it sends (method, URL and headers, which hold the path values and
// earlier answers it uses) and the caller ([gateway.PrincipalFrom]: its
// scheme, subject and issuer, or every claim of a token without a
// subject), unless the part is Public: one user's answer is never
// another's. When the upstream fails (not with a 4xx), an older answer
// still in the cache stands in, and the document lists the part in
// "_stale" (and the X-Aggregate-Stale header):
// {"_stale": ["customer"]}.
//
// Identical GET and HEAD requests (same handler and route, path and
// query, client type, caller, credentials (a digest of Authorization,
// Proxy-Authorization and Cookie), the headers parts forward, and
// [WithKey]) that arrive while one is being aggregated share its
// aggregation: N of them at once make one call per part. With
// [WithTTL], complete documents are kept whole, and identical requests
// within the TTL run no part; the cache is read once for all the
// requests that share an aggregation, and a request that arrives as a
// shared aggregation ends finds its document.
// A shared aggregation runs to its end even when every request waiting
// on it has gone: bound it with the route's Timeout or the parts'. It
// has the deadline of the request that started it. A request whose
// deadline is that one or later gets its answer, which names the part
// that was late; one with an earlier deadline gets 504
// {"_error": "timeout"} when its time runs out.
//
// Headers a part forwards are part of both keys, so forward none that
// changes with every request (a request ID, a trace header): that
// would leave nothing to share.
//
// # Telemetry
//
// Spans come from the tracer named [ScopeName] of the
// [WithTracerProvider] provider (the global one by default):
//
//   - gateway.aggregation (internal): the aggregation, under the
//     gateway's server span; http.route, and
//     gateway.aggregation.client_type with [WithShapes]. A request that
//     joined another's aggregation has gateway.aggregation.collapsed
//     and a link to that one's span. A failed response has status
//     Error and the error.type of its part's failure, or
//     context.DeadlineExceeded (context.Canceled) for a request that
//     stopped waiting for a shared aggregation.
//   - gateway.aggregation.part (internal): one part, a child of the
//     aggregation span, holding the gateway's client span of its call;
//     gateway.aggregation.part, gateway.upstream,
//     gateway.aggregation.stage, http.route and
//     gateway.aggregation.outcome (none for a part whose Request
//     returned [ErrSkip]). A failed call (stale included) sets
//     status Error and error.type: the upstream's status, the
//     gateway's type (gateway.upstream_unavailable,
//     gateway.attempt_timeout, context.DeadlineExceeded), or
//     aggregate.{reason} (aggregate.unreachable for an upstream that
//     could not be reached).
//
// Metrics come from the meter named [ScopeName] of the
// [WithMeterProvider] provider, counted once per aggregation run
// (requests that joined another's count nothing):
//
//   - gateway.aggregation.parts (counter, {part}): parts by
//     gateway.aggregation.outcome: ok, failed, timeout, cached (a fresh
//     answer from the cache, or a whole document's part), stale;
//     gateway.aggregation.part and http.route. Skipped parts are not
//     counted.
//   - gateway.aggregation.stage.duration (histogram, s): the duration of
//     each stage, from the first start to the last end of its parts;
//     gateway.aggregation.stage (0 for the first) and http.route.
package aggregate
