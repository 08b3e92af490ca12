// Package edge is the edge of the ecommerce example: the OAuth2 token
// server, the API gateway in front of the shop's services, and the web
// and mobile backends for frontends (BFFs). It composes the library's
// gateway packages the way a production edge would, in Go code:
//
//	client --- POST /oauth2/token -----------------> auth (token server)
//	   |                                               ^ GET /.well-known/jwks.json
//	   |  Bearer token, TLS                            |
//	   v                                               |
//	gateway (gateway, gateway/auth, gateway/ratelimit)-+
//	   |-- /api/orders...    -> orders service     (breaker, retry)
//	   |-- /api/products...  -> catalogue service  (breaker, retry, fallback)
//	   |-- /web/orders/{id}  -> web BFF    (gateway + gateway/aggregate)
//	   '-- /mobile/orders/{id} -> mobile BFF (gateway + gateway/aggregate)
//	                              |-> orders, catalogue, shipping
//
//	e, err := edge.New(edge.Config{
//		OrdersURL: shop.Orders, CatalogueURL: shop.Catalogue, ShippingURL: shop.Shipping,
//	})
//	if err != nil {
//		return err
//	}
//	defer e.Close()
//	app, err := hexagonal.New(hexagonal.WithComponent(e.Components()...))
//	...
//	token, err := edge.FetchToken(ctx, nil, e.TokenURL(), "web-app", "web-app-secret")
//	client := &http.Client{Transport: &http.Transport{TLSClientConfig: e.ClientTLS()}}
//	// GET e.GatewayURL()+"/web/orders/42" with "Authorization: Bearer "+token
//
// # Token server
//
// POST /oauth2/token grants the client credentials grant (RFC 6749, 4.4)
// to the configured [Client]s, authenticated by HTTP Basic or by
// client_id and client_secret in the form, and answers
// {"access_token", "token_type": "Bearer", "expires_in", "scope"}, or an
// RFC 6749 error: invalid_client (401), unsupported_grant_type,
// invalid_request, invalid_scope (400). A client may ask for fewer
// roles with scope. Access tokens are RS256 JWTs signed with a 2048-bit
// key made at [New], named by its RFC 7638 thumbprint (kid): iss (the
// token server's base URL), aud ([Audience]), sub and client_id (the
// client's ID), roles and scope, iat, nbf, exp ([TokenLifetime]), jti.
// GET /.well-known/jwks.json publishes the public key. The server speaks
// plain HTTP, for loopback and a deployment's private network.
//
// # Gateway
//
// The gateway serves TLS (a certificate from files, or a self-signed
// ECDSA P-256 one made at New; [Edge.ClientTLS] trusts it). It verifies
// tokens with gateway/auth over the token server's JWKS URL (fetched
// when the gateway starts, refreshed in the background), requires a role
// per route, and limits each client (the token's subject) to
// RatePerSecond with a Burst across all routes (429 with Retry-After,
// RateLimit and RateLimit-Policy). Before the token is checked, each
// client address is limited to IPRatePerSecond with an IPBurst, so that
// a flood of bad tokens is refused before it costs signature checks. Each upstream has a circuit breaker
// (five failures in a row open it for five seconds) and retries of
// requests safe to repeat (GETs, and POST /api/orders, which carries an
// Idempotency-Key). The catalogue routes fall back on their last good
// answer, kept ten minutes, when the catalogue cannot answer. Callers'
// client IDs reach the services in [ClientIDHeader], set from the token
// only (the BFFs pass it on to orders and shipping); the token itself is
// not passed on. The Location of a placed
// order is mapped to the gateway's path, /api/orders/{id}.
//
//	POST /api/orders          orders:write    -> orders /orders
//	GET  /api/orders/{id}     orders:read     -> orders /orders/{id}
//	GET  /api/products        catalogue:read  -> catalogue /products
//	GET  /api/products/{sku}  catalogue:read  -> catalogue /products/{sku}
//	GET  /web/orders/{id}     orders:read     -> web BFF
//	GET  /mobile/orders/{id}  orders:read     -> mobile BFF
//
// # BFFs
//
// Each BFF is a server with a gateway of its own over the services, its
// breakers and retries, and one aggregated route (gateway/aggregate).
// The web BFF answers {"order", "products" (the order lines' products,
// by SKU), "shipment"}; the mobile BFF {"order_id", "status",
// "total_cents", "items", "shipment", "tracking"}, without calling the
// catalogue. The shipment is optional: with shipping down (its breaker
// open) or no shipment yet, the answer comes without it and lists it in
// "_partial" and X-Aggregate-Partial. The web page's product list is
// optional too, and kept thirty seconds for every caller; while the
// catalogue fails, the last one stands in ("_stale").
//
// # Lifecycle
//
// [New] binds the four listeners, so every URL is known at once;
// [Edge.Components] returns the servers, as hexagonal components, in
// start order: auth, web-bff, mobile-bff, gateway. The gateways, the
// authenticator and the caches are built when their component starts
// and released when it stops, after the meter provider is flushed (when
// it can be: the SDK's), since a closed gateway reports no more; each
// server stops gracefully
// (hexagonal.HTTPServerListener). [Edge.Close] releases what no stop
// did. With Config.Health set, every server also serves /livez, /readyz
// and /health.
//
// # Telemetry
//
// The edge adds no telemetry names of its own: it passes its providers
// to the packages it uses, whose doc.go tables list what they emit:
// gateway (server and client spans, HTTP metrics, gateway.upstream.*,
// gateway.fallbacks), gateway/auth (gateway.auth.*), gateway/ratelimit
// (gateway.ratelimit.decisions, with gateway.ratelimit.name
// [RateLimitName]), gateway/aggregate (gateway.aggregation spans and
// metrics), circuitbreaker and retry (per upstream), cache (caches
// edge.catalogue, edge.web-bff and edge.mobile-bff), and otelhttp for the
// token server (spans "POST /oauth2/token", "GET /.well-known/jwks.json").
// Trace context crosses the gateway and the BFFs with the global
// propagator.
package edge
