package gateway

import (
	"context"
	"net/http"
	"net/netip"
)

// Middleware wraps the handler of a route: authentication, rate limits
// and the like. The gateway applies a route's middleware in order, the
// first outermost, inside its own handling (client address, request ID,
// body limit, telemetry) and outside the proxy to the upstream.
// Sub-packages gateway/auth and gateway/ratelimit provide the ones the
// gateway offers.
type Middleware func(next http.Handler) http.Handler

// Principal is who a request was authenticated as, which authentication
// middleware puts in the request's context for the middleware and
// handlers after it.
type Principal struct {
	// Scheme names how the request was authenticated: "jwt" or "apikey".
	Scheme string
	// Subject identifies the caller: a JWT's sub claim, an API key's name.
	Subject string
	// Roles and Scopes are what authorisation checks.
	Roles  []string
	Scopes []string
	// Claims are a JWT's claims, decoded; nil for other schemes.
	Claims map[string]any
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal that authentication put in ctx.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

type clientIPKey struct{}

// WithClientIP returns ctx carrying the client's address, for tests of
// middleware and handlers outside a gateway. The gateway sets it for every
// request from the connection's peer and the forwarded headers of the
// proxies it trusts ([WithTrustedProxies]).
func WithClientIP(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, clientIPKey{}, addr)
}

// ClientIP returns the client's address that the gateway derived for the
// request: the right-most address of the forwarding chain that is not a
// trusted proxy. Rate limits and logs key on it rather than on headers a
// client can forge.
func ClientIP(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(clientIPKey{}).(netip.Addr)
	return a, ok && a.IsValid()
}

type routeKey struct{}

// WithRoute returns ctx carrying the pattern of the route that matched,
// for tests of middleware and handlers outside a gateway; the gateway
// sets it itself.
func WithRoute(ctx context.Context, pattern string) context.Context {
	return context.WithValue(ctx, routeKey{}, pattern)
}

// RouteFrom returns the pattern of the route that matched the request, as
// written in its [Route] ("GET api.example.com/orders/{id}"), for
// middleware that scopes by route. The gateway sets it for every request
// that matched a route, before the route's middleware runs. The
// http.route attribute of the request's telemetry is the pattern's path
// part ("/orders/{id}"); several routes (by method, host or matchers) may
// share one.
func RouteFrom(ctx context.Context) (string, bool) {
	p, ok := ctx.Value(routeKey{}).(string)
	return p, ok
}
