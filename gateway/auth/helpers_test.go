package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
)

// Test keys, from testdata (made for these tests alone).
var (
	rsa1, rsa2 *rsa.PrivateKey
	ec1        *ecdsa.PrivateKey
)

func init() {
	rsa1 = loadKey("testdata/rsa1.pem").(*rsa.PrivateKey)
	rsa2 = loadKey("testdata/rsa2.pem").(*rsa.PrivateKey)
	ec1 = loadKey("testdata/ec1.pem").(*ecdsa.PrivateKey)
}

func loadKey(path string) any {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		panic(err)
	}
	return k
}

// rsaPublicPEM is the PEM of rsa1's public key: what an attacker who
// knows the public key would use as an HMAC secret.
func rsaPublicPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(&rsa1.PublicKey)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

const (
	testIssuer   = "https://idp.test/"
	testAudience = "orders-api"
)

// claims returns valid claims for subject, which mutate can change.
func claims(subject string, mutate ...func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"sub": subject,
		"iss": testIssuer,
		"aud": testAudience,
		"exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(),
	}
	for _, m := range mutate {
		m(c)
	}
	return c
}

// sign returns a token of c signed with key by method, naming kid.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("SignedString: %v", err)
	}
	return s
}

// jwksServer serves a JSON Web Key Set whose keys a test can change, and
// counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []jwkset.JWKMarshal
	down bool
	hits atomic.Int64
}

func newJWKSServer(t testing.TB) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		down, keys := s.down, s.keys
		s.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: keys})
	}))
	t.Cleanup(s.Close)
	return s
}

// add publishes the public key of priv under kid, with alg if not empty.
func (s *jwksServer) add(t testing.TB, kid string, priv any, alg string) {
	t.Helper()
	var key any
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		key = &k.PublicKey
	case *ecdsa.PrivateKey:
		key = &k.PublicKey
	default:
		t.Fatalf("unsupported key %T", priv)
	}
	jwk, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(alg)}})
	if err != nil {
		t.Fatalf("NewJWKFromKey: %v", err)
	}
	s.mu.Lock()
	s.keys = append(s.keys, jwk.Marshal())
	s.mu.Unlock()
}

func (s *jwksServer) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// newAuth returns an authenticator closed when the test ends.
func newAuth(t testing.TB, opts ...auth.Option) *auth.Authenticator {
	t.Helper()
	a, err := auth.New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// seen is what the protected handler saw of a request.
type seen struct {
	principal *gateway.Principal
	header    http.Header
	rawQuery  string
}

// serve runs req through a.Middleware(opts...) in front of a handler that
// records what it saw, and returns the response and that.
func serve(t testing.TB, a *auth.Authenticator, req *http.Request, opts ...auth.RouteOption) (*http.Response, string, *seen) {
	t.Helper()
	var got *seen
	h := a.Middleware(opts...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := gateway.PrincipalFrom(r.Context())
		got = &seen{principal: p, header: r.Header.Clone(), rawQuery: r.URL.RawQuery}
		w.WriteHeader(http.StatusOK)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body), got
}

// bearerRequest returns a GET request with token as its bearer token, on
// the route pattern route.
func bearerRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://gw.test/orders/1", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r.WithContext(gateway.WithRoute(context.Background(), "GET /orders/{id}"))
}
