package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
)

var (
	ciKey    = auth.APIKey{Name: "ci", Secret: "ci-0123456789abcdef", Roles: []string{"deployer"}, Scopes: []string{"builds:write"}}
	adminKey = auth.APIKey{Name: "ops", Secret: "ops-0123456789abcdef", Roles: []string{"admin"}}
)

func apiKeyRequest(header, value string) *http.Request {
	r := bearerRequest("")
	r.Header.Set(header, value)
	return r
}

// TestAPIKeys: a configured key authenticates as its name, roles and
// scopes; an unknown key is refused with 401; the key never reaches the
// upstream; the query parameter works when configured and is removed.
func TestAPIKeys(t *testing.T) {
	a := newAuth(t, auth.WithAPIKeys(ciKey, adminKey), auth.WithAPIKeyQuery("api_key"))

	resp, _, got := serve(t, a, apiKeyRequest("X-API-Key", ciKey.Secret))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, &gateway.Principal{Scheme: auth.SchemeAPIKey, Subject: "ci", Roles: []string{"deployer"}, Scopes: []string{"builds:write"}}, got.principal)
	assert.Empty(t, got.header.Get("X-API-Key"), "the key reached the upstream")

	for _, bad := range []string{"", "ci-0123456789abcdeX", ciKey.Secret + "x", strings.ToUpper(ciKey.Secret)} {
		resp, body, got := serve(t, a, apiKeyRequest("X-API-Key", bad))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "key %q", bad)
		assert.JSONEq(t, `{"error":"invalid_token"}`, body)
		assert.Nil(t, got)
	}

	r := httptest.NewRequest(http.MethodGet, "http://gw.test/builds?z=1&api_key="+adminKey.Secret+"&page=2&api%5Fkey=again", nil)
	resp, _, got = serve(t, a, r)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ops", got.principal.Subject)
	assert.Equal(t, "z=1&page=2", got.rawQuery, "the key stayed in the query, or the others moved")

	r = httptest.NewRequest(http.MethodGet, "http://gw.test/builds?api_key="+adminKey.Secret, nil)
	_, _, got = serve(t, a, r, auth.ForwardCredentials())
	assert.Equal(t, "api_key="+adminKey.Secret, got.rawQuery, "ForwardCredentials keeps the query")
}

// TestAPIKeyHeaderOnly: without WithAPIKeyQuery a key in the query is not
// read (it could be a parameter of the upstream's).
func TestAPIKeyHeaderOnly(t *testing.T) {
	a := newAuth(t, auth.WithAPIKeys(ciKey), auth.WithAPIKeyHeader("X-Token"))
	r := httptest.NewRequest(http.MethodGet, "http://gw.test/x?api_key="+ciKey.Secret, nil)
	resp, _, _ := serve(t, a, r)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _, _ = serve(t, a, apiKeyRequest("X-Token", ciKey.Secret))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestBothSchemes: a bearer token is checked when present, and a bad one
// is not rescued by a good API key.
func TestBothSchemes(t *testing.T) {
	a := staticAuth(t, auth.WithAPIKeys(ciKey))
	r := bearerRequest("garbage")
	r.Header.Set("X-API-Key", ciKey.Secret)
	resp, _, _ := serve(t, a, r)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	r = apiKeyRequest("X-API-Key", ciKey.Secret)
	r.Header.Set("Authorization", "Basic dXNlcjpwYXNz") // another scheme: not ours
	resp, _, got := serve(t, a, r)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ci", got.principal.Subject)
}

// TestRBAC: roles (any of each RequireAnyRole) and scopes (all) from the
// configured claims; a principal without them gets 403 with
// insufficient_scope and nothing else.
func TestRBAC(t *testing.T) {
	a := staticAuth(t, auth.WithRolesClaim("realm_access.roles"), auth.WithAPIKeys(ciKey, adminKey))
	tok := func(roles []any, scope any) string {
		return sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			c["realm_access"] = map[string]any{"roles": roles}
			if scope != nil {
				c["scope"] = scope
			}
		}))
	}
	cases := []struct {
		name   string
		req    *http.Request
		opts   []auth.RouteOption
		status int
	}{
		{"role held", bearerRequest(tok([]any{"admin"}, nil)), []auth.RouteOption{auth.RequireAnyRole("admin", "ops")}, 200},
		{"role lacking", bearerRequest(tok([]any{"viewer"}, nil)), []auth.RouteOption{auth.RequireAnyRole("admin", "ops")}, 403},
		{"two role sets, both met", bearerRequest(tok([]any{"admin", "eu"}, nil)), []auth.RouteOption{auth.RequireAnyRole("admin"), auth.RequireAnyRole("eu", "us")}, 200},
		{"two role sets, one met", bearerRequest(tok([]any{"admin"}, nil)), []auth.RouteOption{auth.RequireAnyRole("admin"), auth.RequireAnyRole("eu", "us")}, 403},
		{"scopes as a string", bearerRequest(tok(nil, "orders:read orders:write")), []auth.RouteOption{auth.RequireScopes("orders:read", "orders:write")}, 200},
		{"a scope lacking", bearerRequest(tok(nil, "orders:read")), []auth.RouteOption{auth.RequireScopes("orders:read", "orders:write")}, 403},
		{"scopes as an array", bearerRequest(tok(nil, []any{"orders:read"})), []auth.RouteOption{auth.RequireScopes("orders:read")}, 200},
		{"API key role", apiKeyRequest("X-API-Key", adminKey.Secret), []auth.RouteOption{auth.RequireAnyRole("admin")}, 200},
		{"API key scope lacking", apiKeyRequest("X-API-Key", adminKey.Secret), []auth.RouteOption{auth.RequireScopes("builds:write")}, 403},
		{"no credentials", bearerRequest(""), []auth.RouteOption{auth.RequireAnyRole("admin")}, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body, got := serve(t, a, c.req, c.opts...)
			require.Equal(t, c.status, resp.StatusCode)
			switch c.status {
			case 200:
				assert.NotNil(t, got)
			case 403:
				assert.Nil(t, got)
				assert.Equal(t, `Bearer error="insufficient_scope"`, resp.Header.Get("WWW-Authenticate"))
				assert.JSONEq(t, `{"error":"insufficient_scope"}`, body)
			}
		})
	}
}

// TestScpClaim: without WithScopesClaim, "scp" (an array, as Azure AD and
// Okta send) is read when "scope" is absent.
func TestScpClaim(t *testing.T) {
	a := staticAuth(t)
	p, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
		c["scp"] = []any{"a", "b"}
	})))
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, p.Scopes)
}

// TestMissingCredentials: the challenge names no error (RFC 6750, 3.1),
// and carries the realm when set; the body is empty.
func TestMissingCredentials(t *testing.T) {
	a := staticAuth(t, auth.WithRealm("orders"))
	resp, body, got := serve(t, a, bearerRequest(""))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Bearer realm="orders"`, resp.Header.Get("WWW-Authenticate"))
	assert.Empty(t, body)
	assert.Nil(t, got)
	resp, _, _ = serve(t, a, bearerRequest("bad"))
	assert.Equal(t, `Bearer realm="orders", error="invalid_token"`, resp.Header.Get("WWW-Authenticate"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
}

// TestAnonymous: a request without credentials passes with no principal; one
// with bad credentials is still refused; one with good credentials gets
// its principal.
func TestAnonymous(t *testing.T) {
	a := staticAuth(t)
	resp, _, got := serve(t, a, bearerRequest(""), auth.Anonymous())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Nil(t, got.principal)

	resp, _, _ = serve(t, a, bearerRequest(tamper(sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice")), 2)), auth.Anonymous())
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp, _, got = serve(t, a, bearerRequest(sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice"))), auth.Anonymous())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "alice", got.principal.Subject)
}

// TestHeadersToUpstream: forged claim headers are removed, claim headers
// set from the verified token, the Authorization header removed unless
// the route forwards credentials, and the caller's request left as it was.
func TestHeadersToUpstream(t *testing.T) {
	a := staticAuth(t, auth.WithClaimHeaders(map[string]string{
		"sub": "X-User-Id", "roles": "X-User-Roles", "org.id": "X-Org", "email": "X-Email", "evil": "X-Evil",
	}))
	tok := sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
		c["roles"] = []any{"admin", "dev"}
		c["org"] = map[string]any{"id": 42.0}
		c["evil"] = "a\r\nX-Injected: 1"
	}))
	r := bearerRequest(tok)
	r.Header.Set("X-User-Id", "root")
	r.Header.Set("X-Email", "forged@example.com")

	resp, _, got := serve(t, a, r)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "alice", got.header.Get("X-User-Id"))
	assert.Equal(t, "admin,dev", got.header.Get("X-User-Roles"))
	assert.Equal(t, "42", got.header.Get("X-Org"))
	assert.Empty(t, got.header.Values("X-Email"), "a forged header for a claim the token lacks")
	assert.Empty(t, got.header.Values("X-Evil"), "a value with control characters")
	assert.Empty(t, got.header.Get("Authorization"))
	assert.Equal(t, "root", r.Header.Get("X-User-Id"), "the caller's request was changed")
	assert.NotEmpty(t, r.Header.Get("Authorization"), "the caller's request was changed")

	_, _, got = serve(t, a, bearerRequest(tok), auth.ForwardCredentials())
	assert.Equal(t, "Bearer "+tok, got.header.Get("Authorization"))

	r = bearerRequest("")
	r.Header.Set("X-User-Id", "root")
	_, _, got = serve(t, a, r, auth.Anonymous())
	assert.Empty(t, got.header.Values("X-User-Id"), "a forged header on an anonymous request")
}

// TestMiddlewarePanics: contradictory route options are caught where the
// route is written.
func TestMiddlewarePanics(t *testing.T) {
	a := staticAuth(t)
	assert.PanicsWithValue(t, "auth: Anonymous() cannot be combined with RequireAnyRole or RequireScopes", func() {
		a.Middleware(auth.Anonymous(), auth.RequireScopes("x"))
	})
	assert.Panics(t, func() { a.Middleware(auth.RequireAnyRole()) })
	assert.Panics(t, func() { a.Middleware(auth.RequireScopes("")) })
}

// TestErrorMatching: errors.Is tells 401 from 403, and ErrorType gives a
// stable error.type.
func TestErrorMatching(t *testing.T) {
	a := staticAuth(t)
	_, err := a.Authenticate(bearerRequest(""))
	assert.ErrorIs(t, err, auth.ErrUnauthenticated)
	assert.NotErrorIs(t, err, auth.ErrForbidden)
	var e *auth.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "gateway.auth.missing", e.ErrorType())
	assert.Equal(t, http.StatusUnauthorized, e.StatusCode())
	assert.Equal(t, "auth: missing", e.Error())
}
