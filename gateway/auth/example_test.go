package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
)

// hello is an upstream stand-in that greets the principal.
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, ok := gateway.PrincipalFrom(r.Context())
	if !ok {
		fmt.Fprintln(w, "hello, stranger")
		return
	}
	fmt.Fprintf(w, "hello, %s (%s)\n", p.Subject, r.Header.Get("X-User-Id"))
})

// call sends a GET with the given Authorization header through h and
// prints the status, the challenge if any, and the body.
func call(h http.Handler, authorization string) {
	r := httptest.NewRequest(http.MethodGet, "/orders/1", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	parts := []string{strconv.Itoa(w.Code)}
	for _, s := range []string{w.Header().Get("WWW-Authenticate"), strings.TrimSpace(w.Body.String())} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	fmt.Println(strings.Join(parts, " "))
}

func ExampleNew() {
	secret := []byte("an HS256 secret of 32 bytes, ok!")
	a, err := auth.New(
		auth.WithKeys(auth.Key{ID: "v1", Algorithm: "HS256", Key: secret}),
		auth.WithIssuer("https://login.example.com/"),
		auth.WithAudience("orders-api"),
		auth.WithClaimHeaders(map[string]string{"sub": "X-User-Id"}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	h := a.Middleware()(hello)

	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "iss": "https://login.example.com/", "aud": "orders-api",
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "v1"
	signed, _ := tok.SignedString(secret)

	call(h, "")
	call(h, "Bearer "+signed+"x")
	call(h, "Bearer "+signed)
	// Output:
	// 401 Bearer
	// 401 Bearer error="invalid_token" {"error":"invalid_token"}
	// 200 hello, alice (alice)
}

func ExampleNew_configurationErrors() {
	_, err := auth.New(
		auth.WithJWKS("http://idp.example.com/jwks.json"),
		auth.WithKeys(auth.Key{ID: "v1", Algorithm: "none"}),
	)
	fmt.Println(err)
	// Output:
	// auth: WithKeys: key "v1": Algorithm "none" is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512
	// auth: WithJWKS("http://idp.example.com/jwks.json"): URL "http://idp.example.com/jwks.json" must be https: keys fetched in the clear can be replaced on the way (http is allowed on loopback hosts only)
}

func ExampleWithJWKS() {
	// An identity provider stand-in that publishes one ES256 key.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, _ := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: "2024-06", ALG: jwkset.AlgES256},
	})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	}))
	defer idp.Close()

	a, err := auth.New(auth.WithJWKS(idp.URL+"/jwks.json", "ES256"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close() // stops the background refresh

	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Minute).Unix()})
	tok.Header["kid"] = "2024-06"
	signed, _ := tok.SignedString(key)
	p, err := a.VerifyToken(context.Background(), signed)
	fmt.Println(p.Subject, err)
	// Output:
	// bob <nil>
}

func ExampleAuthenticator_Middleware() {
	a, _ := auth.New(auth.WithAPIKeys(
		auth.APIKey{Name: "ci", Secret: "ci-key-0123456789abcdef", Roles: []string{"deployer"}},
		auth.APIKey{Name: "dashboard", Secret: "dash-key-0123456789abcdef", Roles: []string{"viewer"}},
	))
	// The deploy route needs the deployer role; the status route is open,
	// and greets those who present a key by name.
	deploy := a.Middleware(auth.RequireAnyRole("deployer"))(hello)
	status := a.Middleware(auth.Anonymous())(hello)

	for _, c := range []struct {
		h   http.Handler
		key string
	}{{deploy, "ci-key-0123456789abcdef"}, {deploy, "dash-key-0123456789abcdef"}, {status, ""}, {status, "dash-key-0123456789abcdef"}} {
		r := httptest.NewRequest(http.MethodPost, "/deploy", nil)
		if c.key != "" {
			r.Header.Set("X-API-Key", c.key)
		}
		w := httptest.NewRecorder()
		c.h.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// 200 hello, ci ()
	// 403 {"error":"insufficient_scope"}
	// 200 hello, stranger
	// 200 hello, dashboard ()
}

// API keys, and a route that needs a role: a caller without
// credentials gets 401, one without the role 403, and the upstream
// sees who called in the claim header, never the key.
func Example() {
	a, err := auth.New(
		auth.WithAPIKeys(
			auth.APIKey{Name: "reporting", Secret: "secret-of-the-reporting-job"},
			auth.APIKey{Name: "backoffice", Secret: "secret-of-the-backoffice-app", Roles: []string{"admin"}},
		),
		auth.WithClaimHeaders(map[string]string{"sub": "X-User-Id"}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	admin := a.Middleware(auth.RequireAnyRole("admin"))(hello)

	for _, key := range []string{"", "secret-of-the-reporting-job", "secret-of-the-backoffice-app"} {
		r := httptest.NewRequest(http.MethodGet, "/admin/refunds", nil)
		if key != "" {
			r.Header.Set(auth.DefaultAPIKeyHeader, key)
		}
		w := httptest.NewRecorder()
		admin.ServeHTTP(w, r)
		fmt.Println(strings.TrimSpace(fmt.Sprint(w.Code, " ", w.Body.String())))
	}
	// Output:
	// 401
	// 403 {"error":"insufficient_scope"}
	// 200 hello, backoffice (backoffice)
}
