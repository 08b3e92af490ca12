package auth_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/auth"
)

// staticAuth verifies RS256 tokens with rsa1 (kid "rsa1"), ES256 tokens
// with ec1 (kid "ec1"), and checks issuer and audience.
func staticAuth(t testing.TB, opts ...auth.Option) *auth.Authenticator {
	t.Helper()
	return newAuth(t, append([]auth.Option{
		auth.WithKeys(
			auth.Key{ID: "rsa1", Algorithm: "RS256", Key: &rsa1.PublicKey},
			auth.Key{ID: "ec1", Algorithm: "ES256", Key: ec1.Public()},
		),
		auth.WithIssuer(testIssuer),
		auth.WithAudience(testAudience),
	}, opts...)...)
}

// unsigned returns a token with header and claims and no signature ("alg":
// "none" style), or with sig as its signature.
func unsigned(header string, c jwt.MapClaims, sig string) string {
	enc := base64.RawURLEncoding
	payload, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SigningString()
	_, body, _ := strings.Cut(payload, ".")
	return enc.EncodeToString([]byte(header)) + "." + body + "." + sig
}

// tamper flips a character of the part-th segment of token.
func tamper(token string, part int) string {
	parts := strings.Split(token, ".")
	b := []byte(parts[part])
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	parts[part] = string(b)
	return strings.Join(parts, ".")
}

// TestJWTCases runs the attacks and claim failures of the issue through
// the middleware: each is refused with 401 and the reason it names, and a
// valid token passes.
func TestJWTCases(t *testing.T) {
	a := staticAuth(t)
	valid := sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice"))
	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims("alice")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	// The classic confusion: HS256 with the RSA public key as the secret,
	// naming the RSA key's ID.
	confused := sign(t, jwt.SigningMethodHS256, rsaPublicPEM(), "rsa1", claims("alice"))
	hour := time.Hour

	cases := []struct {
		name   string
		token  string
		reason auth.Reason
	}{
		{"alg none", noneToken, auth.ReasonAlgorithm}, // refused before its (missing) key is looked up
		{"alg none naming a key", unsigned(`{"alg":"none","kid":"rsa1"}`, claims("alice"), ""), auth.ReasonAlgorithm},
		{"HS256 signed with the RSA public key", confused, auth.ReasonAlgorithm},
		{"RS384 with an RS256 key", sign(t, jwt.SigningMethodRS384, rsa1, "rsa1", claims("alice")), auth.ReasonAlgorithm},
		{"ES256 token naming the RSA key", sign(t, jwt.SigningMethodES256, ec1, "rsa1", claims("alice")), auth.ReasonAlgorithm},
		{"expired", sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-hour).Unix()
		})), auth.ReasonExpired},
		{"not yet valid", sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			c["nbf"] = time.Now().Add(hour).Unix()
		})), auth.ReasonNotYetValid},
		{"issued in the future", sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			c["iat"] = time.Now().Add(hour).Unix()
		})), auth.ReasonNotYetValid},
		{"wrong issuer", sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			c["iss"] = "https://evil.test/"
		})), auth.ReasonIssuer},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			c["aud"] = []string{"billing-api"}
		})), auth.ReasonAudience},
		{"no exp", sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			delete(c, "exp")
		})), auth.ReasonClaims},
		{"no iss", sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			delete(c, "iss")
		})), auth.ReasonClaims},
		{"no aud", sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			delete(c, "aud")
		})), auth.ReasonClaims},
		{"exp not a number", sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			c["exp"] = "tomorrow"
		})), auth.ReasonClaims},
		{"tampered signature", tamper(valid, 2), auth.ReasonSignature},
		{"tampered payload", tamper(valid, 1), auth.ReasonMalformed},
		{"signed by another key", sign(t, jwt.SigningMethodRS256, rsa2, "rsa1", claims("alice")), auth.ReasonSignature},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, rsa2, "rsa2", claims("alice")), auth.ReasonUnknownKey},
		{"critical header", unsigned(`{"alg":"RS256","kid":"rsa1","crit":["exp"]}`, claims("alice"), "AAAA"), auth.ReasonMalformed},
		{"not a JWT", "not-a-jwt", auth.ReasonMalformed},
		{"header not JSON", "bm90IGpzb24.e30.AAAA", auth.ReasonMalformed},
		{"kid not a string", unsigned(`{"alg":"RS256","kid":7}`, claims("alice"), "AAAA"), auth.ReasonMalformed},
		{"huge", strings.Repeat("a", 17<<10), auth.ReasonMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := a.VerifyToken(t.Context(), c.token)
			var e *auth.Error
			require.True(t, errors.As(err, &e), "VerifyToken() = %v; want an *auth.Error", err)
			assert.Equal(t, c.reason, e.Reason, "VerifyToken() = %v", err)
			assert.ErrorIs(t, err, auth.ErrUnauthenticated)

			resp, body, got := serve(t, a, bearerRequest(c.token))
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.Equal(t, `Bearer error="invalid_token"`, resp.Header.Get("WWW-Authenticate"))
			assert.JSONEq(t, `{"error":"invalid_token"}`, body, "the body says nothing beyond the error code")
			assert.Nil(t, got, "the handler ran")
		})
	}

	t.Run("valid", func(t *testing.T) {
		for _, tok := range []string{valid, sign(t, jwt.SigningMethodES256, ec1, "ec1", claims("alice"))} {
			resp, _, got := serve(t, a, bearerRequest(tok))
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.NotNil(t, got.principal)
			assert.Equal(t, "alice", got.principal.Subject)
			assert.Equal(t, auth.SchemeJWT, got.principal.Scheme)
			assert.Equal(t, testIssuer, got.principal.Claims["iss"])
		}
	})
}

// TestLeeway: a token expired (or not yet valid) by less than the leeway
// passes; by more it fails.
func TestLeeway(t *testing.T) {
	a := staticAuth(t, auth.WithLeeway(time.Minute))
	for _, c := range []struct {
		name string
		set  func(jwt.MapClaims)
		ok   bool
	}{
		{"expired 30s ago", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-30 * time.Second).Unix() }, true},
		{"expired 2m ago", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }, false},
		{"valid in 30s", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(30 * time.Second).Unix() }, true},
		{"valid in 2m", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(2 * time.Minute).Unix() }, false},
	} {
		_, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", c.set)))
		assert.Equal(t, c.ok, err == nil, "%s: VerifyToken() = %v", c.name, err)
	}
}

// TestRequiredClaims: a claim named by WithRequiredClaims must be there.
func TestRequiredClaims(t *testing.T) {
	a := staticAuth(t, auth.WithRequiredClaims("sub", "tenant"))
	_, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice")))
	var e *auth.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, auth.ReasonClaims, e.Reason)
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) { c["tenant"] = "acme" })))
	assert.NoError(t, err)
}

// TestHMACKey: a static HMAC key verifies HS256 tokens, and only those.
func TestHMACKey(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := newAuth(t, auth.WithKeys(auth.Key{Algorithm: "HS256", Key: secret}))
	_, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodHS256, secret, "", claims("svc")))
	assert.NoError(t, err)
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodHS512, secret, "", claims("svc")))
	var e *auth.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, auth.ReasonAlgorithm, e.Reason)
}

// TestMultipleAuthorizationHeaders: two Authorization headers are
// refused, not resolved by picking one.
func TestMultipleAuthorizationHeaders(t *testing.T) {
	a := staticAuth(t)
	r := bearerRequest(sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice")))
	r.Header.Add("Authorization", "Bearer x.y.z")
	_, err := a.Authenticate(r)
	var e *auth.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, auth.ReasonMalformed, e.Reason)
}

// TestConfigErrors: each bad option is an error from New naming it, all
// reported at once.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		opts []auth.Option
		want []string
	}{
		{"no key source", nil, []string{"no key source"}},
		{"only claims options", []auth.Option{auth.WithIssuer("x")}, []string{"no key source"}},
		{"JWKS over http", []auth.Option{auth.WithJWKS("http://idp.example.com/jwks.json")}, []string{`WithJWKS("http://idp.example.com/jwks.json")`, "https"}},
		{"JWKS not a URL", []auth.Option{auth.WithJWKS("idp/jwks.json")}, []string{"WithJWKS", "no host"}},
		{"JWKS HMAC", []auth.Option{auth.WithJWKS("https://idp.example.com/jwks.json", "HS256")}, []string{"WithJWKS", `"HS256"`}},
		{"JWKS none", []auth.Option{auth.WithJWKS("https://idp.example.com/jwks.json", "none")}, []string{"WithJWKS", `"none"`}},
		{"alg none", []auth.Option{auth.WithKeys(auth.Key{ID: "k", Algorithm: "none", Key: []byte("x")})}, []string{"WithKeys", `"none"`}},
		{"RSA key for HS256", []auth.Option{auth.WithKeys(auth.Key{ID: "k", Algorithm: "HS256", Key: &rsa1.PublicKey})}, []string{"WithKeys", "RS*"}},
		{"short secret", []auth.Option{auth.WithKeys(auth.Key{ID: "k", Algorithm: "HS256", Key: []byte("short")})}, []string{"WithKeys", "32 bytes"}},
		{"EC key for RS256", []auth.Option{auth.WithKeys(auth.Key{ID: "k", Algorithm: "RS256", Key: ec1.Public()})}, []string{"WithKeys", "ES*"}},
		{"duplicate kid", []auth.Option{auth.WithKeys(
			auth.Key{ID: "k", Algorithm: "RS256", Key: &rsa1.PublicKey},
			auth.Key{ID: "k", Algorithm: "RS256", Key: &rsa2.PublicKey})}, []string{"WithKeys", "twice"}},
		{"leeway", []auth.Option{auth.WithLeeway(time.Hour), auth.WithAPIKeys(auth.APIKey{Name: "a", Secret: strings.Repeat("s", 16)})}, []string{"WithLeeway(1h0m0s)"}},
		{"short API key", []auth.Option{auth.WithAPIKeys(auth.APIKey{Name: "a", Secret: "x"})}, []string{"WithAPIKeys", "16"}},
		{"claim header is Authorization", []auth.Option{
			auth.WithAPIKeys(auth.APIKey{Name: "a", Secret: strings.Repeat("s", 16)}),
			auth.WithClaimHeaders(map[string]string{"sub": "authorization"})}, []string{"WithClaimHeaders", "credentials"}},
		{"nil option", []auth.Option{auth.WithAPIKeys(auth.APIKey{Name: "a", Secret: strings.Repeat("s", 16)}), nil}, []string{"auth: opts[1] is nil"}},
		{"several at once", []auth.Option{auth.WithJWKS("http://idp.example.com/k"), nil, auth.WithLeeway(-1)}, []string{"WithJWKS", "opts[1] is nil", "WithLeeway"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := auth.New(c.opts...)
			require.Error(t, err)
			assert.Nil(t, a)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	t.Run("loopback http is allowed", func(t *testing.T) {
		for _, u := range []string{"http://127.0.0.1:1/jwks", "http://localhost:1/jwks", "http://[::1]:1/jwks"} {
			a, err := auth.New(auth.WithJWKS(u), auth.WithJWKSTimeout(time.Second))
			require.NoError(t, err, u)
			a.Close()
		}
	})
}

// TestErrorsShortenTokenValues: a key ID of 10 KB in a token does not
// reach the error message whole (errors end up in logs).
func TestErrorsShortenTokenValues(t *testing.T) {
	a := staticAuth(t)
	tok := sign(t, jwt.SigningMethodRS256, rsa1, strings.Repeat("k", 10_000), claims("alice"))
	_, err := a.VerifyToken(t.Context(), tok)
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 300, "error message: %.80s…", err.Error())
}
