package edge

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The token server's paths, and what its tokens say.
const (
	// TokenPath is the OAuth2 token endpoint (RFC 6749, 3.2).
	TokenPath = "/oauth2/token"
	// JWKSPath serves the public key that verifies the access tokens.
	JWKSPath = "/.well-known/jwks.json"
	// Audience is the aud of every access token: the shop's API.
	Audience = "ecommerce-api"
	// TokenLifetime is how long an access token is valid.
	TokenLifetime = 15 * time.Minute
)

// The RFC 6749 (5.2) error codes the token endpoint answers with.
const (
	ErrCodeInvalidRequest       = "invalid_request"
	ErrCodeInvalidClient        = "invalid_client"
	ErrCodeUnsupportedGrantType = "unsupported_grant_type"
	ErrCodeInvalidScope         = "invalid_scope"
)

// maxTokenRequest bounds a token request's body: a form of a few
// fields.
const maxTokenRequest = 16 << 10

// tokenServer issues RS256 access tokens to the clients it knows, with
// the client credentials grant, and publishes its public key as a JWKS.
// It is safe for concurrent use.
type tokenServer struct {
	key     *rsa.PrivateKey
	kid     string
	issuer  string
	clients map[string]clientEntry
	jwks    []byte
	// dummy is compared with a secret given for an unknown client, so
	// that an answer takes as long whether the client exists or not.
	dummy [sha256.Size]byte
}

// clientEntry is a client as the server keeps it: the digest of its
// secret, so that secrets of any length compare in constant time.
type clientEntry struct {
	Client
	digest [sha256.Size]byte
}

// newTokenServer makes the signing key (2048-bit RSA) and the key set.
func newTokenServer(issuer string, clients []Client) (*tokenServer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("edge: making the signing key: %w", err)
	}
	s := &tokenServer{key: key, issuer: issuer, clients: map[string]clientEntry{}}
	if _, err := rand.Read(s.dummy[:]); err != nil {
		return nil, err
	}
	for _, c := range clients {
		s.clients[c.ID] = clientEntry{Client: c, digest: sha256.Sum256([]byte(c.Secret))}
	}
	n := b64(key.N.Bytes())
	e := b64(big.NewInt(int64(key.E)).Bytes())
	// The key ID is the key's RFC 7638 thumbprint: the same key always
	// has the same ID, and another key another.
	thumb := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	s.kid = b64(thumb[:])
	s.jwks, err = json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": s.kid, "n": n, "e": e,
	}}})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// handler serves the token endpoint and the key set.
func (s *tokenServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TokenPath, s.token)
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// The key lives as long as the process: verifiers may keep it a
		// while.
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(s.jwks)
	})
	return mux
}

// token is the token endpoint: the client credentials grant (RFC 6749,
// 4.4), the client authenticated by HTTP Basic or by client_id and
// client_secret in the form (2.3.1), never both.
func (s *tokenServer) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "the body must be a form (application/x-www-form-urlencoded)", false)
		return
	}
	form := r.PostForm
	for name, values := range form {
		if len(values) > 1 {
			// Which value would count is not to be guessed (5.2): a
			// proxy in front may have checked another.
			tokenError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "the parameter "+name+" is repeated", false)
			return
		}
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		// Basic credentials are form-encoded first (2.3.1), so that
		// an ID or a secret may hold a colon.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			tokenError(w, http.StatusUnauthorized, ErrCodeInvalidClient, "malformed Basic credentials", true)
			return
		}
		if form.Has("client_secret") || (form.Has("client_id") && form.Get("client_id") != id) {
			tokenError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "more than one client authentication method", false)
			return
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	client, ok := s.authenticate(id, secret)
	if !ok {
		tokenError(w, http.StatusUnauthorized, ErrCodeInvalidClient, "unknown client or bad secret", basic)
		return
	}
	switch grant := form.Get("grant_type"); grant {
	case "client_credentials":
	case "":
		tokenError(w, http.StatusBadRequest, ErrCodeInvalidRequest, "grant_type is missing", false)
		return
	default:
		tokenError(w, http.StatusBadRequest, ErrCodeUnsupportedGrantType, "only client_credentials is supported", false)
		return
	}
	roles := client.Roles
	if scope := form.Get("scope"); scope != "" {
		// A client may ask for fewer roles than it has, never more.
		roles = strings.Fields(scope)
		for _, role := range roles {
			if !slices.Contains(client.Roles, role) {
				tokenError(w, http.StatusBadRequest, ErrCodeInvalidScope, "the client may not have "+role, false)
				return
			}
		}
	}
	token, err := s.sign(client.ID, roles, time.Now())
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", "", false)
		return
	}
	body, _ := json.Marshal(tokenResponse{
		AccessToken: token, TokenType: "Bearer",
		ExpiresIn: int(TokenLifetime / time.Second), Scope: strings.Join(roles, " "),
	})
	w.Header().Set("Content-Type", "application/json")
	// Tokens must not be cached (5.1).
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	_, _ = w.Write(body)
}

// authenticate checks a client's secret in constant time, for unknown
// clients too.
func (s *tokenServer) authenticate(id, secret string) (Client, bool) {
	got := sha256.Sum256([]byte(secret))
	c, known := s.clients[id]
	want := s.dummy
	if known {
		want = c.digest
	}
	ok := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	return c.Client, known && ok && id != ""
}

// sign makes an RS256 access token for a client: sub and client_id are
// its ID, roles (and scope, the same roles space-separated, as RFC 9068
// has it) what it may do.
func (s *tokenServer) sign(clientID string, roles []string, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": s.issuer, "aud": Audience, "sub": clientID, "client_id": clientID,
		"roles": roles, "scope": strings.Join(roles, " "),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(TokenLifetime).Unix(),
		"jti": b64(jti[:]),
	})
	t.Header["kid"] = s.kid
	return t.SignedString(s.key)
}

// tokenResponse is the token endpoint's success answer (RFC 6749, 5.1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

// tokenError answers an RFC 6749 (5.2) error. A client that tried Basic
// authentication and failed gets a Basic challenge.
func tokenError(w http.ResponseWriter, status int, code, desc string, challenge bool) {
	if challenge {
		w.Header().Set("WWW-Authenticate", `Basic realm="ecommerce"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(TokenError{Code: code, Description: desc})
	_, _ = w.Write(b)
}

// TokenError is an error answer of a token endpoint (RFC 6749, 5.2), as
// [FetchToken] returns it.
type TokenError struct {
	// Status is the HTTP status of the answer.
	Status int `json:"-"`
	// Code is the error code, such as invalid_client.
	Code string `json:"error"`
	// Description is the server's explanation, if it gave one.
	Description string `json:"error_description,omitempty"`
}

func (e *TokenError) Error() string {
	s := fmt.Sprintf("edge: token endpoint answered %d %s", e.Status, e.Code)
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// ErrorType names the error in telemetry: edge.token.{code}.
func (e *TokenError) ErrorType() string { return "edge.token." + e.Code }

// FetchToken gets an access token from the token endpoint tokenURL with
// the client credentials grant, authenticating the client with HTTP
// Basic. An error answer of the endpoint is a *[TokenError]; a nil c
// means http.DefaultClient.
func FetchToken(ctx context.Context, c *http.Client, tokenURL, id, secret string) (string, error) {
	if c == nil {
		c = http.DefaultClient
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		te := &TokenError{}
		if json.Unmarshal(body, te) != nil || te.Code == "" {
			te.Code = "unknown"
		}
		te.Status = resp.StatusCode
		return "", te
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", fmt.Errorf("edge: token endpoint: %w", err)
	}
	if !strings.EqualFold(tr.TokenType, "Bearer") || tr.AccessToken == "" {
		return "", errors.New("edge: token endpoint gave no bearer token")
	}
	return tr.AccessToken, nil
}
