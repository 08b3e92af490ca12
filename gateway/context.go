package gateway

import (
	"context"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"sync"
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

// Clone returns a deep copy of p: its Roles, Scopes and Claims (decoded
// JSON: objects, arrays and scalars) are its own, so that a change to
// one copy changes no other. Roles and Scopes share one backing array,
// each capped so that an append to one copies it. Clone of nil is nil.
func (p *Principal) Clone() *Principal {
	if p == nil {
		return nil
	}
	cp := *p
	cp.Roles, cp.Scopes = p.Roles[:0:0], p.Scopes[:0:0] // nil stays nil
	if nr, n := len(p.Roles), len(p.Roles)+len(p.Scopes); n > 0 {
		lists := append(append(make([]string, 0, n), p.Roles...), p.Scopes...)
		if nr > 0 {
			cp.Roles = lists[:nr:nr]
		}
		if n > nr {
			cp.Scopes = lists[nr:]
		}
	}
	if p.Claims != nil {
		cp.Claims = cloneObject(p.Claims)
	}
	return &cp
}

// cloneObject copies a JSON object deeply. maps.Clone copies the map's
// table as it is, without hashing each key again; only the values that
// are containers are then copied in turn, in place of the shared ones.
func cloneObject(m map[string]any) map[string]any {
	c := maps.Clone(m)
	for k, x := range c {
		switch x.(type) {
		case map[string]any, []any, []string:
			c[k] = cloneJSON(x)
		}
	}
	return c
}

func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneObject(v)
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = cloneJSON(x)
		}
		return s
	case []string:
		return slices.Clone(v)
	}
	return v
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// WithSharedPrincipal returns ctx carrying p, a principal that other
// requests share and that must not change (an authenticator's cache of
// verified tokens hands out one per token). [PrincipalFrom] returns a
// copy of it ([Principal.Clone]), made at its first call on ctx or a
// context derived from it, so that a handler that changes what it was
// given changes no other request's principal, and a request that no one
// asks about costs no copy.
func WithSharedPrincipal(ctx context.Context, p *Principal) context.Context {
	if ctx == nil {
		panic("gateway.WithSharedPrincipal: nil parent context") // as context.WithValue does
	}
	return &sharedPrincipal{Context: ctx, p: p}
}

// sharedPrincipal is the context of WithSharedPrincipal: the shared
// principal, and the request's copy once asked for.
type sharedPrincipal struct {
	context.Context
	p    *Principal
	once sync.Once
	cp   *Principal
}

func (s *sharedPrincipal) Value(key any) any {
	if _, ok := key.(principalKey); ok {
		return s
	}
	return s.Context.Value(key)
}

func (s *sharedPrincipal) String() string { return "gateway.WithSharedPrincipal" }

// PrincipalFrom returns the principal that authentication put in ctx: the
// one of [WithPrincipal], or the context's own copy of the one of
// [WithSharedPrincipal] (the same copy on every call).
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	switch v := ctx.Value(principalKey{}).(type) {
	case *Principal:
		return v, v != nil
	case *sharedPrincipal:
		v.once.Do(func() { v.cp = v.p.Clone() })
		return v.cp, v.cp != nil
	}
	return nil, false
}

// hasPrincipal reports whether ctx carries a principal, without copying
// a shared one.
func hasPrincipal(ctx context.Context) bool {
	switch v := ctx.Value(principalKey{}).(type) {
	case *Principal:
		return v != nil
	case *sharedPrincipal:
		return v.p != nil
	}
	return false
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
	var a netip.Addr
	switch v := ctx.Value(clientIPKey{}).(type) {
	case netip.Addr:
		a = v
	case *reqState: // the gateway's, which answers with itself: no boxing
		a = v.clientIP
	}
	return a, a.IsValid()
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
