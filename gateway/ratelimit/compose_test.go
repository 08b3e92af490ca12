package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
)

// TestAfterAuth runs the limiter after the auth middleware, as a route
// lists them: ByClaim("sub") keys each API key's holder, whatever address
// it comes from, and a refused request spends nothing.
func TestAfterAuth(t *testing.T) {
	a, err := auth.New(auth.WithAPIKeys(
		auth.APIKey{Name: "ci", Secret: "ci-0123456789abcdef"},
		auth.APIKey{Name: "bot", Secret: "bot-0123456789abcdef"},
	))
	require.NoError(t, err)
	l := newLimiter(t, ratelimit.Limit{Name: "per-key", Requests: 2, Per: time.Hour, Key: ratelimit.ByClaim("sub"), Scope: ratelimit.AcrossRoutes})
	h := a.Middleware()(l.Middleware(ok))
	call := func(key, ip string) int {
		r := request("POST /builds", ip)
		if key != "" {
			r.Header.Set("X-API-Key", key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	assert.Equal(t, http.StatusUnauthorized, call("wrong-0123456789abcdef", "198.51.100.1"))
	assert.Equal(t, 200, call("ci-0123456789abcdef", "198.51.100.1"))
	assert.Equal(t, 200, call("ci-0123456789abcdef", "198.51.100.2"))
	assert.Equal(t, 429, call("ci-0123456789abcdef", "198.51.100.3"), "ci from a third address")
	assert.Equal(t, 200, call("bot-0123456789abcdef", "198.51.100.1"))
}

// A limiter's Middleware method value is a gateway.Middleware, as a route
// lists it.
var _ gateway.Middleware = (*ratelimit.Limiter)(nil).Middleware
