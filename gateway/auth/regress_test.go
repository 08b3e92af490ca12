package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
)

// TestAPIKeyQueryEscapedName: a key whose parameter name is escaped
// ("api%5Fkey" for "api_key") authenticated the request, as the query
// parser unescapes names, but was left in the query that went upstream,
// since the removal was skipped when the raw query did not contain the
// name as written.
func TestAPIKeyQueryEscapedName(t *testing.T) {
	a := newAuth(t, auth.WithAPIKeys(adminKey), auth.WithAPIKeyQuery("api_key"))
	r := httptest.NewRequest(http.MethodGet, "http://gw.test/builds?z=1&api%5Fkey="+adminKey.Secret, nil)
	resp, _, got := serve(t, a, r)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ops", got.principal.Subject)
	assert.Equal(t, "z=1", got.rawQuery, "the key reached the upstream")
}

// TestNilKeyIsAnError: a typed nil key (a parse whose error was ignored)
// made New panic instead of returning the error naming the key.
func TestNilKeyIsAnError(t *testing.T) {
	for _, k := range []auth.Key{
		{ID: "rsa-priv", Algorithm: "RS256", Key: (*rsa.PrivateKey)(nil)},
		{ID: "rsa-pub", Algorithm: "RS256", Key: (*rsa.PublicKey)(nil)},
		{ID: "ec-priv", Algorithm: "ES256", Key: (*ecdsa.PrivateKey)(nil)},
		{ID: "ec-pub", Algorithm: "ES256", Key: (*ecdsa.PublicKey)(nil)},
		{ID: "ed-priv", Algorithm: "EdDSA", Key: ed25519.PrivateKey(nil)},
	} {
		var err error
		assert.NotPanics(t, func() { _, err = auth.New(auth.WithKeys(k)) }, "key %q", k.ID)
		assert.ErrorContains(t, err, k.ID)
	}
}

// TestTokenCacheCopies: the token cache handed each request a copy of the
// principal, but a shallow one: its Claims map and Roles and Scopes
// slices were the cache's, so a handler that changed them changed the
// principal of every later request with the same token (and raced with
// them).
func TestTokenCacheCopies(t *testing.T) {
	a := newAuth(t, auth.WithKeys(auth.Key{ID: "k1", Algorithm: "RS256", Key: &rsa1.PublicKey}), auth.WithTokenCache(10, time.Minute))
	tok := sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice", func(c jwt.MapClaims) {
		c["roles"] = []any{"reader"}
		c["scope"] = "orders:read"
	}))
	for i := range 3 {
		p, err := a.VerifyToken(context.Background(), tok)
		require.NoError(t, err)
		require.Equal(t, "alice", p.Claims["sub"], "request %d", i)
		require.Equal(t, []string{"reader"}, p.Roles, "request %d", i)
		require.Equal(t, []string{"orders:read"}, p.Scopes, "request %d", i)
		p.Claims["sub"] = "mallory"
		p.Roles[0] = "admin"
		p.Scopes[0] = "orders:write"
	}
}

// TestCachedPrincipalNotShared: the middleware hands the token cache's
// principal on uncopied, for PrincipalFrom to copy when a handler asks.
// Whatever a handler does to what it gets (the first request's, which
// filled the cache, included) reaches no later request with the token,
// and within one request every ask gets the same copy.
func TestCachedPrincipalNotShared(t *testing.T) {
	a := newAuth(t, auth.WithKeys(auth.Key{ID: "k1", Algorithm: "RS256", Key: &rsa1.PublicKey}), auth.WithTokenCache(10, time.Minute))
	tok := sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice", func(c jwt.MapClaims) {
		c["roles"] = []any{"reader"}
		c["scope"] = "orders:read"
		c["org"] = map[string]any{"ids": []any{"o1"}}
	}))
	for i := range 3 {
		var got gateway.Principal
		h := a.Middleware(auth.RequireAnyRole("reader"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := gateway.PrincipalFrom(r.Context())
			require.True(t, ok)
			again, _ := gateway.PrincipalFrom(gateway.WithRoute(r.Context(), "GET /derived"))
			require.Same(t, p, again, "two asks in one request")
			got = *p.Clone()
			p.Subject = "mallory"
			p.Claims["sub"] = "mallory"
			p.Claims["org"].(map[string]any)["ids"].([]any)[0] = "o2"
			p.Roles[0] = "admin"
			p.Scopes[0] = "orders:write"
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, bearerRequest(tok))
		require.Equal(t, http.StatusOK, rec.Code, "request %d", i)
		assert.Equal(t, "alice", got.Subject, "request %d", i)
		assert.Equal(t, "alice", got.Claims["sub"], "request %d", i)
		assert.Equal(t, map[string]any{"ids": []any{"o1"}}, got.Claims["org"], "request %d", i)
		assert.Equal(t, []string{"reader"}, got.Roles, "request %d", i)
		assert.Equal(t, []string{"orders:read"}, got.Scopes, "request %d", i)
	}
}

// TestAPIKeyPrincipalCopies: the principal of an API key shared its Roles
// and Scopes with the key's configuration, so a handler that changed
// them changed what the key grants to every later request.
func TestAPIKeyPrincipalCopies(t *testing.T) {
	a := newAuth(t, auth.WithAPIKeys(ciKey))
	for i := range 3 {
		p, err := a.Authenticate(apiKeyRequest("X-API-Key", ciKey.Secret))
		require.NoError(t, err)
		require.Equal(t, []string{"deployer"}, p.Roles, "request %d", i)
		require.Equal(t, []string{"builds:write"}, p.Scopes, "request %d", i)
		p.Roles[0] = "admin"
		p.Scopes[0] = "builds:delete"
	}
}

// TestUnderscoreClaimHeaders: a client's "X_User_Id" reached the upstream
// beside the claim header X-User-Id that the authenticator sets, and an
// upstream behind nginx (underscores_in_headers on), CGI or WSGI reads
// both as one header; so did "Authorization" spelled with an underscore
// variant of a credential header that is not forwarded.
func TestUnderscoreClaimHeaders(t *testing.T) {
	a := newAuth(t, auth.WithKeys(auth.Key{ID: "k1", Algorithm: "RS256", Key: &rsa1.PublicKey}),
		auth.WithAPIKeys(adminKey), auth.WithClaimHeaders(map[string]string{"sub": "X-User-Id"}))
	r := bearerRequest(sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice")))
	for _, name := range []string{"X_User_Id", "x_user-id", "X_Api_Key", "X_Other"} {
		r.Header[name] = []string{"forged"}
	}
	resp, _, got := serve(t, a, r)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, name := range []string{"X_User_Id", "x_user-id", "X_Api_Key"} {
		assert.NotContains(t, got.header, name)
	}
	assert.Contains(t, got.header, "X_Other", "a header that reads as no protected one is kept")
	assert.Equal(t, "alice", got.header.Get("X-User-Id"))
}

// TestUnderscoreClaimHeaderName: a claim header named with underscores
// ("X_User_Id") was set from the token, but a client's "X-User-Id",
// which nginx, CGI and WSGI upstreams read as the same header, passed
// beside it.
func TestUnderscoreClaimHeaderName(t *testing.T) {
	a := newAuth(t, auth.WithKeys(auth.Key{ID: "k1", Algorithm: "RS256", Key: &rsa1.PublicKey}),
		auth.WithClaimHeaders(map[string]string{"sub": "X_User_Id"}))
	r := bearerRequest(sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice")))
	r.Header.Set("X-User-Id", "forged")
	resp, _, got := serve(t, a, r)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, got.header, "X-User-Id")
	assert.Equal(t, []string{"alice"}, got.header["X_user_id"])
}
