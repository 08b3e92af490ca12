// Package transcode exposes gRPC services behind the gateway to clients
// that cannot speak gRPC: browsers and HTTP tools get REST/JSON (from
// the methods' google.api.http annotations), gRPC-Web and Connect, and
// the gRPC server sees plain gRPC. The conversion is done by
// connectrpc.com/vanguard; the call goes to the upstream through the
// gateway, so the route's auth, rate limits and telemetry run in front of
// it and the upstream's balancing, health checks, breakers and retries
// behind it.
//
//	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"))
//	if err != nil {
//		log.Fatal(err)
//	}
//	g, err := gateway.New(
//		gateway.WithUpstreams(gateway.Upstream{
//			Name:    "inventory",
//			Targets: []gateway.Target{{URL: "http://10.0.0.7:9090"}},
//			H2C:     true, // gRPC without TLS; an https target negotiates HTTP/2
//			Breaker: &gateway.Breaker{},
//		}),
//		gateway.WithRoutes(tr.Routes(gateway.Route{
//			Middleware: []gateway.Middleware{authn.Middleware(), limiter.Middleware()},
//		})...),
//	)
//
// Then, with GetItem annotated option (google.api.http) = {get:
// "/v1/items/{sku}"}:
//
//	curl https://api.example.com/v1/items/sku-1
//	{"sku":"sku-1","name":"Espresso cup","stock":"12","priceCents":"1250"}
//
// # The path of a call
//
//	client (REST, gRPC-Web, Connect, gRPC)
//	  |
//	  v
//	Gateway        server span, client address, request ID
//	  |
//	  v
//	Middleware     the route's: auth (401, 403), rate limit (429), ...
//	  |
//	  v
//	Transcoder     vanguard: the request becomes a gRPC call over HTTP/2
//	  |            (REST path and query, JSON body -> protobuf message)
//	  v
//	ProxyTo        the upstream's balancer, breakers, retries (only with an
//	  |            Idempotency-Key: gRPC calls are POSTs), client span,
//	  v            trace context in the traceparent header (= metadata)
//	gRPC server
//
// The answer goes back the same way: a gRPC status becomes an HTTP status
// as vanguard maps it (NOT_FOUND 404, INVALID_ARGUMENT and
// FAILED_PRECONDITION 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403,
// RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, ...)
// with a JSON body (a google.rpc.Status for REST, Connect's error JSON
// for Connect); trailers reach gRPC-Web and Connect clients as trailers.
// When the upstream does not answer, the gateway's own 502, 503 or 504
// becomes UNAVAILABLE, as gRPC maps those HTTP statuses, and so a 503
// for a REST client; the message names the gateway's status, and a 503
// keeps its Retry-After header. Middleware runs before
// the transcoder, so its refusals are plain HTTP: a gRPC-Web or Connect
// client reads a 401 as UNAUTHENTICATED and a 429 as UNAVAILABLE, as
// those protocols map HTTP statuses.
//
// # Breakers and retries
//
// The gateway's breakers count transport errors, timeouts and statuses
// of 500 and above, and, for a gRPC answer (HTTP 200 whatever the
// outcome), its grpc-status: UNAVAILABLE, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED and INTERNAL count as failures of the target, as
// grpcbreaker's client interceptor counts them by default, read from the
// headers of a trailers-only answer or from the trailers once the
// answer's body has been copied (a server stream counts when it ends).
// Outlier detection counts UNAVAILABLE and DEADLINE_EXCEEDED. Protect
// the server from its own overload with grpcbreaker's server
// interceptor, and clients of the service with its
// client interceptor. Leave the upstream's HealthCheck unset (or point
// it at an HTTP endpoint the target serves besides gRPC): the gateway's
// health checks are HTTP GETs, which a gRPC server refuses, so they would
// take every target out of service. The gateway retries only requests that are safe to
// repeat, and a gRPC call is a POST: send an Idempotency-Key header to
// make one retryable.
//
// # Telemetry
//
// None of its own: the gateway's server span and metrics cover each
// call, named by the route's pattern ("POST /inventory.v1.InventoryService/"
// for gRPC-Web and Connect calls, "GET /v1/items/" for REST ones), and
// the gateway's client span covers each attempt to the upstream, whose
// otelgrpc server span becomes its child through the traceparent header.
package transcode
