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
// A grpc-status outside 0..16 reads as UNKNOWN (HTTP 500), and a
// grpc-message with a % that starts no escape ("50% off") as it was
// sent, as the gRPC spec has a receiver read them.
//
// When the upstream does not answer, the gateway's own answer becomes
// the gRPC status that says why, in every protocol, its headers kept:
//
//	504: the route's Timeout ran out     DEADLINE_EXCEEDED
//	502, 503 (Retry-After kept)          UNAVAILABLE
//	413: a body over MaxBodyBytes; 429   RESOURCE_EXHAUSTED
//	400: a body that could not be read   INVALID_ARGUMENT
//	408: the body came too late          DEADLINE_EXCEEDED
//	499: the client went away            CANCELLED
//	401 (WWW-Authenticate kept)          UNAUTHENTICATED
//	403                                  PERMISSION_DENIED
//
// with a message naming the HTTP status ("HTTP 502 Bad Gateway"). A 502
// that comes once the route's deadline has passed is a 504: a grpc-go
// server resets the call when the grpc-timeout it was sent runs out,
// which may reach the gateway before its own timer goes off. A REST
// client gets the HTTP status of that code, as above: a timeout is 504,
// not the 503 that gRPC's own mapping of 504 (UNAVAILABLE) would make it,
// which gRPC and Connect clients would also retry though the upstream
// may have run the call. A 429, 401 or 403 gets here only from behind
// the transcoder (a [WithUpstreamHandler] handler, a fallback): the
// route's Middleware runs before the transcoder, so its refusals are
// plain HTTP, which a gRPC, gRPC-Web or Connect client maps by its
// protocol's rules (401 UNAUTHENTICATED, 403 PERMISSION_DENIED, but 429
// UNAVAILABLE).
//
// # Deadlines, limits and compression
//
// The call's deadline reaches the gRPC server as grpc-timeout: the
// client's own (Connect-Timeout-Ms, REST's X-Server-Timeout, the
// grpc-timeout of gRPC and gRPC-Web clients), or the time left on the
// route's Timeout when that comes first, so that the server stops
// when the gateway stops waiting, and passes the deadline on
// ([gateway.PropagateGRPCDeadline]). A REST or Connect client's own
// grpc-* headers are dropped: it cannot forge one.
//
// [WithMaxMessageBytes] bounds every message the transcoder holds,
// compressed and decompressed: a gzip body that inflates past it (a
// small body can inflate a thousandfold) is refused before the upstream
// is called. The route's MaxBodyBytes is enforced by the transcoder
// ([Transcoder.Routes]). Either limit answers RESOURCE_EXHAUSTED (HTTP
// 429 for REST), and neither counts against the target. A header whose
// name ends in -bin is binary metadata in gRPC, so a REST, Connect or
// gRPC-Web client's must be base64: one that is not gets
// INVALID_ARGUMENT (HTTP 400), not the server's INTERNAL.
//
// Messages go to the upstream uncompressed, whatever the client sent,
// since a grpc-go server registers no decompressor unless told to;
// [WithUpstreamGzip] passes gzip messages on as they came, for servers
// that take them.
//
// # Streaming over REST
//
// REST carries a streaming method only through a google.api.HttpBody
// (raw bytes: a download for a server stream, an upload for a client
// stream). A REST request for any other streaming binding gets 501 Not
// Implemented with a google.rpc.Status of UNIMPLEMENTED saying so; call
// such a method with gRPC, gRPC-Web or Connect, all of which stream.
//
// # Breakers and retries
//
// The gateway's breakers count transport errors, timeouts and statuses
// of 500 and above, and, for a gRPC answer (HTTP 200 whatever the
// outcome), its grpc-status: UNAVAILABLE, and DEADLINE_EXCEEDED unless
// the deadline that ran out was the client's own (its grpc-timeout,
// Connect-Timeout-Ms or X-Server-Timeout, once that time has passed;
// a stream the server resets then counts for nothing either, and is
// answered DEADLINE_EXCEEDED), count as failures of the target, read
// from the headers of a trailers-only answer or from the trailers once
// the answer's body has been copied (a server stream counts when it
// ends). INTERNAL and RESOURCE_EXHAUSTED do not, though
// grpcbreaker's client interceptor counts them by default: grpc-go
// answers them to a client's malformed or oversized message, and one
// client could open the breaker for all. A message the transcoder
// refuses (over a limit, malformed) is the client's too, and counts for
// nothing. Outlier detection counts UNAVAILABLE and DEADLINE_EXCEEDED.
// Protect the server from its own overload with grpcbreaker's server
// interceptor, and clients of the service with its client interceptor.
// Leave the upstream's HealthCheck unset (or point it at an HTTP
// endpoint the target serves besides gRPC): the gateway's health checks
// are HTTP GETs, which a gRPC server refuses, so they would take every
// target out of service.
//
// The gateway retries only requests that are safe to repeat, and a gRPC
// call is a POST: send an Idempotency-Key header to make one retryable.
// An UNAVAILABLE answered before any of the answer (trailers-only) is
// then retried on another target, as the 503 it stands for is
// ([gateway.Retry].Status accepts 503 by default).
//
// # Telemetry
//
// None of its own: the gateway's server span and metrics cover each
// call, named by the route's pattern ("POST /inventory.v1.InventoryService/"
// for gRPC-Web and Connect calls, "GET /v1/items/" for REST ones), and
// the gateway's client span covers each attempt to the upstream, whose
// otelgrpc server span becomes its child through the traceparent header.
package transcode
