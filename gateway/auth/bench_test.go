package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// BenchmarkMiddleware measures a request through the middleware to a
// handler that does nothing: the bare handler, then a valid RS256, ES256
// and HS256 token and an API key with the default (global no-op)
// providers, then RS256 with the SDK's, and a refused token.
func BenchmarkMiddleware(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	keys := auth.WithKeys(
		auth.Key{ID: "rsa1", Algorithm: "RS256", Key: &rsa1.PublicKey},
		auth.Key{ID: "ec1", Algorithm: "ES256", Key: ec1.Public()},
		auth.Key{ID: "hs", Algorithm: "HS256", Key: secret},
	)
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	run := func(b *testing.B, h http.Handler, header, value string) {
		r := httptest.NewRequest(http.MethodGet, "/orders/1", nil)
		if header != "" {
			r.Header.Set(header, value)
		}
		w := httptest.NewRecorder()
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	}
	// Every token verified: the cache, on by default, is off but for the
	// cached row.
	off := auth.WithTokenCache(0, 0)
	a := newAuth(b, keys, auth.WithAPIKeys(ciKey), off)
	tel := telemetrytest.New(b)
	withSDK := newAuth(b, keys, auth.WithMeterProvider(tel.MeterProvider), off)
	rs := sign(b, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice"))

	b.Run("bare", func(b *testing.B) { run(b, noop, "", "") })
	b.Run("RS256", func(b *testing.B) { run(b, a.Middleware()(noop), "Authorization", "Bearer "+rs) })
	b.Run("ES256", func(b *testing.B) {
		run(b, a.Middleware()(noop), "Authorization", "Bearer "+sign(b, jwt.SigningMethodES256, ec1, "ec1", claims("alice")))
	})
	b.Run("HS256", func(b *testing.B) {
		run(b, a.Middleware()(noop), "Authorization", "Bearer "+sign(b, jwt.SigningMethodHS256, secret, "hs", claims("alice")))
	})
	b.Run("APIKey", func(b *testing.B) { run(b, a.Middleware()(noop), "X-API-Key", ciKey.Secret) })
	cached := newAuth(b, keys, auth.WithTokenCache(1000, time.Minute))
	b.Run("RS256/cached", func(b *testing.B) { run(b, cached.Middleware()(noop), "Authorization", "Bearer "+rs) })
	b.Run("RS256/SDK", func(b *testing.B) { run(b, withSDK.Middleware()(noop), "Authorization", "Bearer "+rs) })
	b.Run("refused", func(b *testing.B) { run(b, a.Middleware()(noop), "Authorization", "Bearer "+tamper(rs, 2)) })
}
