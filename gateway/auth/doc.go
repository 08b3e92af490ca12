// Package auth authenticates and authorises the requests of a
// [gateway.Gateway] route: bearer JWTs (RFC 7519) verified with static
// keys or the keys of JWKS URLs, API keys as a second scheme, and per
// route the roles or scopes a caller must have.
//
//	a, err := auth.New(
//		auth.WithJWKS("https://idp.example.com/jwks.json", "RS256"),
//		auth.WithIssuer("https://idp.example.com/"),
//		auth.WithAudience("orders-api"),
//		auth.WithClaimHeaders(map[string]string{"sub": "X-User-Id"}),
//	)
//	if err != nil {
//		return err
//	}
//	defer a.Close()
//	// then list a.Middleware(auth.RequireScopes("orders:write")) on a route
//
// The middleware puts the [gateway.Principal] in the request's context
// ([gateway.PrincipalFrom]) for the middleware and handlers after it (a
// rate limit keyed on the subject, say), sets the claim headers for the
// upstream, and removes the credentials unless the route
// [ForwardCredentials].
//
// # Verifying a token
//
// A token names its key by key ID (kid); the key names the one algorithm
// it verifies ([Key.Algorithm], or the algorithms given to [WithJWKS]),
// and a token is checked with that key only if its alg is that
// algorithm (the key's configuration decides, never the token). So
// "alg": "none" and an HS256 token signed with an RSA public key as the
// HMAC secret are refused before any signature is checked. exp is
// always required; iss and aud when [WithIssuer] and [WithAudience] set
// them; exp, nbf and iat are checked with a leeway ([WithLeeway], 30s by
// default, 5m at most). A required claim that is missing is a failure.
//
// Keys of a JWKS URL (fetched with [github.com/MicahParks/keyfunc/v3]) are
// cached and refreshed in the background. A token naming a key ID the set
// lacks causes one fetch, and then no other for [WithJWKSMinRefresh] (30s):
// random key IDs cannot make the gateway hammer the identity provider, and
// a request never waits for that limit. With several key sets, a key ID
// that one of them holds fetches none of the others. While the identity
// provider is down the cached keys keep working; with no keys at all,
// tokens are refused with 401, never 500. [Authenticator.Close] stops
// the refresh.
// A key of the set whose "use" is not "sig", or whose "key_ops" lack
// "verify", verifies no token (RFC 7517).
//
// Checking a signature costs tens of microseconds (RS256, ES256), so
// tokens that verified are remembered for a minute (never past their
// exp), and a client sending the same token again costs a hash, a lookup
// and a check that the key that verified it is still its kid's key
// ([WithTokenCache] says why this is safe, and turns it off).
//
// # Failures
//
// A request without credentials is answered 401 with a bare Bearer
// challenge; one with bad credentials 401 with error="invalid_token"; one
// lacking a role or scope 403 with error="insufficient_scope". The body is
// the error code alone. Why the request failed is one of a fixed set of
// [Reason] values, recorded in telemetry, never sent to the client.
// [Anonymous] routes let requests without credentials through.
//
// # Telemetry
//
// Metrics come from the meter named [ScopeName] of the [WithMeterProvider]
// provider (the global one by default):
//
//   - gateway.auth.failures (counter, {request}): requests refused, by
//     gateway.auth.reason (missing, malformed, unknown_key, algorithm,
//     signature, expired, not_yet_valid, issuer, audience, claims,
//     api_key, forbidden) and http.route (the matched route's pattern;
//     absent outside a gateway). Never the user: no subject, no token.
//   - gateway.auth.jwks.failures (counter, {fetch}): failed fetches of a
//     key set, by server.address (its host) and error.type.
//
// Counts are kept in memory and reported when the SDK collects, only for
// the reasons and routes that happened (at most 1024 routes; beyond, the
// route is "_OTHER").
//
// Span events, added to the request's span when it is recording (the
// package starts no span of its own):
//
//   - gateway.auth.failure: gateway.auth.reason.
//   - gateway.auth.authenticated: gateway.auth.scheme (jwt or apikey).
package auth
