package auth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/otelpatterns/patterns/gateway"
)

// Middleware returns the middleware that authenticates the requests of a
// route and checks what opts require. A request that passes goes on with
// its [gateway.Principal] in its context ([gateway.PrincipalFrom]), the
// claim headers of [WithClaimHeaders] set, and its credentials removed
// unless [ForwardCredentials]. One that fails is answered:
//
//   - 401 with WWW-Authenticate: Bearer and no error code when it has no
//     credentials (RFC 6750, 3.1, says not to give one then);
//   - 401 with WWW-Authenticate: Bearer error="invalid_token" and the
//     body {"error":"invalid_token"} when its credentials are bad;
//   - 403 with error="insufficient_scope" when it lacks a role or scope.
//
// Responses say nothing more of why: the reason goes to telemetry.
//
// opts are written in code, so contradictory ones ([Anonymous] with a
// requirement, an empty role or scope) and nil ones ("opts[i] is nil")
// panic here, naming the option;
// so does an Authenticator not made by [New], and the middleware panics
// when it is given a nil next handler.
// The middleware can be listed on several routes; its failures are
// counted by the route (gateway.RouteFrom) each request matched.
func (a *Authenticator) Middleware(opts ...RouteOption) gateway.Middleware {
	if a == nil || a.tel == nil {
		panic("auth: Middleware: the Authenticator was not made by New")
	}
	var rc routeConfig
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("auth: Middleware: opts[%d] is nil", i))
		}
		o.applyRoute(&rc)
	}
	if rc.anonymous && (len(rc.anyRoles) > 0 || len(rc.scopes) > 0) {
		panic("auth: Anonymous() cannot be combined with RequireAnyRole or RequireScopes")
	}
	for _, roles := range rc.anyRoles {
		if len(roles) == 0 || slices.Contains(roles, "") {
			panic(fmt.Sprintf("auth: RequireAnyRole(%q): give at least one role, none empty", roles))
		}
	}
	if slices.Contains(rc.scopes, "") {
		panic(fmt.Sprintf("auth: RequireScopes(%q): a scope is empty", rc.scopes))
	}
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("auth: Middleware: next handler is nil")
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			p, shared, err := a.authenticate(r)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					e = fail(ReasonMalformed, err)
				}
				if e.Reason == ReasonMissing && rc.anonymous {
					next.ServeHTTP(w, a.outbound(r, ctx, nil, &rc))
					return
				}
				a.deny(w, r, e.Reason)
				return
			}
			if !rc.permits(p) {
				a.deny(w, r, ReasonForbidden)
				return
			}
			a.tel.authenticated(ctx, p.Scheme)
			// A principal from the token cache is copied only if a
			// handler asks for it; the checks above only read it.
			var pctx context.Context
			if shared {
				pctx = gateway.WithSharedPrincipal(ctx, p)
			} else {
				pctx = gateway.WithPrincipal(ctx, p)
			}
			next.ServeHTTP(w, a.outbound(r, pctx, p, &rc))
		})
	}
}

// permits reports whether p has what the route requires.
func (rc *routeConfig) permits(p *gateway.Principal) bool {
	for _, set := range rc.anyRoles {
		if !slices.ContainsFunc(set, func(role string) bool { return slices.Contains(p.Roles, role) }) {
			return false
		}
	}
	for _, s := range rc.scopes {
		if !slices.Contains(p.Scopes, s) {
			return false
		}
	}
	return true
}

// challenges returns the WWW-Authenticate values for a missing credential,
// an invalid one and a lacking scope.
func challenges(realm string) [3]string {
	base := "Bearer"
	sep := " "
	if realm != "" {
		base += ` realm="` + realm + `"`
		sep = ", "
	}
	return [3]string{base, base + sep + `error="invalid_token"`, base + sep + `error="insufficient_scope"`}
}

var (
	bodyInvalidToken      = []byte(`{"error":"invalid_token"}` + "\n")
	bodyInsufficientScope = []byte(`{"error":"insufficient_scope"}` + "\n")
)

// deny answers a failed request and records why.
func (a *Authenticator) deny(w http.ResponseWriter, r *http.Request, reason Reason) {
	route, _ := gateway.RouteFrom(r.Context())
	a.tel.failed(r.Context(), route, reason)
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	var body []byte
	status := http.StatusUnauthorized
	switch reason {
	case ReasonMissing:
		h.Set("WWW-Authenticate", a.challenge[0])
	case ReasonForbidden:
		status, body = http.StatusForbidden, bodyInsufficientScope
		h.Set("WWW-Authenticate", a.challenge[2])
	default:
		body = bodyInvalidToken
		h.Set("WWW-Authenticate", a.challenge[1])
	}
	if body != nil {
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// outbound returns the request to pass on, with ctx as its context:
// without forged claim headers, without credentials unless the route
// forwards them, with the claim headers of p. r is copied only when
// something changes (handlers must not change the request they were
// given), and then shallowly, with a header map of its own: the values
// left in it are r's, capped so that an append copies them.
func (a *Authenticator) outbound(r *http.Request, ctx context.Context, p *gateway.Principal, rc *routeConfig) *http.Request {
	h := r.Header
	change := p != nil && len(a.claimHeaders) > 0
	for i := 0; !change && i < len(a.claimHeaders); i++ {
		_, change = h[a.claimHeaders[i].header]
		if alt := a.claimHeaders[i].alt; !change && alt != "" {
			_, change = h[alt]
		}
	}
	stripQuery := false
	if !rc.forwardCred {
		_, auth := h["Authorization"]
		_, key := h[a.apiKeyHeader]
		// The name may come escaped ("api%5Fkey"), which the query
		// parser that found the key unescapes.
		stripQuery = a.apiKeyQuery != "" && r.URL != nil &&
			(strings.Contains(r.URL.RawQuery, a.apiKeyQuery) || strings.ContainsAny(r.URL.RawQuery, "%+"))
		change = change || auth || (key && len(a.apiKeys) > 0) || stripQuery
	}
	// Without a change to make, a header whose name reads as a protected
	// one would still make one; with one, the copy below leaves such
	// headers out as it goes, sparing a look through every name first.
	if !change && !a.underscoreVariants(h, rc) {
		if ctx == r.Context() {
			return r
		}
		return r.WithContext(ctx)
	}
	out := r.WithContext(ctx)
	out.Header = make(http.Header, len(h))
	for name, vs := range h {
		if !a.removed(name, rc) {
			out.Header[name] = vs[:len(vs):len(vs)]
		}
	}
	if stripQuery {
		if raw, removed := removeQueryParam(out.URL.RawQuery, a.apiKeyQuery); removed {
			u := *out.URL
			u.RawQuery = raw
			out.URL = &u
			if out.RequestURI != "" {
				out.RequestURI = u.RequestURI()
			}
		}
	}
	if p != nil {
		for _, ch := range a.claimHeaders {
			if v, ok := a.claimValue(p, ch); ok {
				out.Header.Set(ch.header, v)
			}
		}
	}
	return out
}

// removed reports whether outbound leaves the header name out of the
// request it passes on: a claim header (set again from the principal),
// a credential header that the route does not forward, and a header
// that reads as one of those once its underscores are read as hyphens.
func (a *Authenticator) removed(name string, rc *routeConfig) bool {
	for _, ch := range a.claimHeaders {
		if name == ch.header || (ch.alt != "" && name == ch.alt) {
			return true
		}
	}
	if !rc.forwardCred && (name == "Authorization" || (len(a.apiKeys) > 0 && name == a.apiKeyHeader)) {
		return true
	}
	return a.protectedVariant(name, rc)
}

// underscoreVariants reports whether h has a header that reads as a
// claim header, or as a credential header that is not forwarded, once
// its underscores are read as hyphens ("X_User_Id"), as nginx, CGI and
// WSGI read them: an upstream behind them would take it for the header
// the authenticator sets or removes. The gateway removes every header
// with an underscore by default; this covers a gateway that keeps them
// and a server without the gateway.
func (a *Authenticator) underscoreVariants(h http.Header, rc *routeConfig) bool {
	for name := range h {
		if a.protectedVariant(name, rc) {
			return true
		}
	}
	return false
}

func (a *Authenticator) protectedVariant(name string, rc *routeConfig) bool {
	if strings.IndexByte(name, '_') < 0 {
		return false
	}
	norm := hyphenated(name)
	for _, ch := range a.claimHeaders {
		if norm == ch.header || norm == ch.alt {
			return true
		}
	}
	return !rc.forwardCred && (norm == "Authorization" || (len(a.apiKeys) > 0 && norm == a.apiKeyHeader))
}

// claimValue returns the header value of a claim of p: "sub", the roles
// and scopes claims from the principal (so they work for API keys), the
// others from the JWT's claims. Arrays are joined with commas; a value
// that is not a string, number, boolean or array of those, or that has
// control characters, is left out.
func (a *Authenticator) claimValue(p *gateway.Principal, ch claimHeader) (string, bool) {
	var v string
	switch {
	case ch.raw == "sub":
		v = p.Subject
	case slices.Equal(ch.claim, a.rolesClaim):
		v = strings.Join(p.Roles, ",")
	case slices.Equal(ch.claim, a.scopesClaim) || (a.altScopes && ch.raw == defaultAltScopesClaim):
		v = strings.Join(p.Scopes, ",")
	default:
		raw, ok := lookupOK(p.Claims, ch.claim)
		if !ok {
			return "", false
		}
		if v, ok = scalar(raw); !ok {
			list, isList := raw.([]any)
			if !isList {
				return "", false
			}
			parts := make([]string, 0, len(list))
			for _, x := range list {
				s, ok := scalar(x)
				if !ok {
					return "", false
				}
				parts = append(parts, s)
			}
			v = strings.Join(parts, ",")
		}
	}
	if v == "" || strings.ContainsFunc(v, isCtl) {
		return "", false
	}
	return v, true
}

func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64:
		if math.Abs(v) >= 1<<53 {
			// Past 2^53 a JSON number lost digits when it was read: a
			// 64-bit ID would reach the upstream as another's. None is
			// sent rather than a wrong one.
			return "", false
		}
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// removeQueryParam removes every occurrence of the parameter name from a
// raw query, keeping the others as they were, in their order (re-encoding
// the query would reorder it, which matters to signed URLs).
func removeQueryParam(raw, name string) (string, bool) {
	var b strings.Builder
	removed := false
	for part := range strings.SplitSeq(raw, "&") {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil && k == name {
			removed = true
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String(), removed
}

// hyphenated is a header name with its underscores read as hyphens, in
// canonical form.
func hyphenated(name string) string {
	return http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
}
