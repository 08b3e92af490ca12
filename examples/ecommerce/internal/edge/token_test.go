package edge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

func TestTokenEndpoint(t *testing.T) {
	r := startEdge(t, newServices(t), nil)
	type basic struct{ id, secret string }
	tests := []struct {
		name      string
		basic     *basic
		form      url.Values
		status    int
		code      string // the error code, "" for a token
		roles     []string
		challenge bool
	}{
		{name: "basic", basic: &basic{"web-app", "web-app-secret"},
			form: url.Values{"grant_type": {"client_credentials"}}, status: 200,
			roles: []string{RoleOrdersRead, RoleOrdersWrite, RoleCatalogueRead}},
		{name: "form", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"reporting"}, "client_secret": {"reporting-secret"}},
			status: 200, roles: []string{RoleOrdersRead}},
		{name: "fewer roles asked", basic: &basic{"web-app", "web-app-secret"},
			form: url.Values{"grant_type": {"client_credentials"}, "scope": {RoleOrdersRead}}, status: 200, roles: []string{RoleOrdersRead}},
		{name: "bad secret basic", basic: &basic{"web-app", "wrong"},
			form: url.Values{"grant_type": {"client_credentials"}}, status: 401, code: ErrCodeInvalidClient, challenge: true},
		{name: "bad secret form", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"web-app"}, "client_secret": {"wrong"}},
			status: 401, code: ErrCodeInvalidClient},
		{name: "unknown client", basic: &basic{"mallory", "web-app-secret"},
			form: url.Values{"grant_type": {"client_credentials"}}, status: 401, code: ErrCodeInvalidClient, challenge: true},
		{name: "no credentials", form: url.Values{"grant_type": {"client_credentials"}}, status: 401, code: ErrCodeInvalidClient},
		{name: "wrong grant type", basic: &basic{"web-app", "web-app-secret"},
			form: url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}, status: 400, code: ErrCodeUnsupportedGrantType},
		{name: "no grant type", basic: &basic{"web-app", "web-app-secret"}, form: url.Values{}, status: 400, code: ErrCodeInvalidRequest},
		{name: "two authentication methods", basic: &basic{"web-app", "web-app-secret"},
			form:   url.Values{"grant_type": {"client_credentials"}, "client_id": {"web-app"}, "client_secret": {"web-app-secret"}},
			status: 400, code: ErrCodeInvalidRequest},
		{name: "more roles asked", basic: &basic{"reporting", "reporting-secret"},
			form: url.Values{"grant_type": {"client_credentials"}, "scope": {RoleOrdersWrite}}, status: 400, code: ErrCodeInvalidScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, r.TokenURL(), strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic != nil {
				req.SetBasicAuth(tt.basic.id, tt.basic.secret)
			}
			resp, err := r.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d %s; want %d", resp.StatusCode, body, tt.status)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", got)
			}
			if got := resp.Header.Get("WWW-Authenticate") != ""; got != tt.challenge {
				t.Errorf("WWW-Authenticate set = %v; want %v", got, tt.challenge)
			}
			if tt.code != "" {
				var te TokenError
				if err := json.Unmarshal(body, &te); err != nil || te.Code != tt.code {
					t.Errorf("error = %s; want %q", body, tt.code)
				}
				return
			}
			var tr tokenResponse
			if err := json.Unmarshal(body, &tr); err != nil {
				t.Fatal(err)
			}
			if tr.TokenType != "Bearer" || tr.ExpiresIn != int(TokenLifetime/time.Second) || tr.AccessToken == "" {
				t.Errorf("answer = %+v; want a Bearer token for %v", tr, TokenLifetime)
			}
			claims := verify(t, r, tr.AccessToken)
			var roles []string
			for _, v := range claims["roles"].([]any) {
				roles = append(roles, v.(string))
			}
			if !slices.Equal(roles, tt.roles) {
				t.Errorf("roles = %v; want %v", roles, tt.roles)
			}
		})
	}
}

// verify checks a token with the key set the token server publishes,
// read by keyfunc (as any resource server would), and returns its
// claims.
func verify(t *testing.T, r *running, token string) jwt.MapClaims {
	t.Helper()
	resp, err := r.client.Get(r.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		t.Fatalf("the key set %s: %v", raw, err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(token, claims, kf.Keyfunc,
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(r.tokens.issuer),
		jwt.WithAudience(Audience), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("the token does not verify with the key set: %v", err)
	}
	if tok.Header["kid"] == "" || tok.Header["kid"] == nil {
		t.Errorf("the token has no kid")
	}
	return claims
}

func TestTokenVerifiesWithJWKS(t *testing.T) {
	r := startEdge(t, newServices(t), nil)
	claims := verify(t, r, r.token(t, "mobile-app"))
	if claims["sub"] != "mobile-app" {
		t.Errorf("sub = %v; want mobile-app", claims["sub"])
	}
	if !strings.HasPrefix(r.TokenURL(), claims["iss"].(string)) {
		t.Errorf("iss = %v; want the token server's base URL %s", claims["iss"], r.TokenURL())
	}
	// A token signed by another key with the same kid does not verify.
	other, err := newTokenServer(r.tokens.issuer, DefaultClients())
	if err != nil {
		t.Fatal(err)
	}
	other.kid = r.tokens.kid
	forged, err := other.sign("web-app", []string{RoleOrdersWrite}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := r.client.Get(r.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse(forged, kf.Keyfunc); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Errorf("jwt.Parse(forged) = %v; want %v", err, jwt.ErrTokenSignatureInvalid)
	}
}

func TestFetchTokenError(t *testing.T) {
	r := startEdge(t, newServices(t), func(c *Config) {
		c.Clients = []Client{{ID: "web-app", Secret: "web-app-secret"}, {ID: "odd:id", Secret: "s:3%cret+"}}
	})
	_, err := FetchToken(context.Background(), r.client, r.TokenURL(), "web-app", "wrong")
	var te *TokenError
	if !errors.As(err, &te) || te.Code != ErrCodeInvalidClient || te.Status != http.StatusUnauthorized {
		t.Fatalf("FetchToken() = %v; want a TokenError invalid_client 401", err)
	}
	// Basic credentials are form-encoded: an ID and a secret with a
	// colon, a percent sign and a plus work.
	tok, err := FetchToken(context.Background(), r.client, r.TokenURL(), "odd:id", "s:3%cret+")
	if err != nil || tok == "" {
		t.Fatalf("FetchToken() = %q, %v; want a token", tok, err)
	}
}
