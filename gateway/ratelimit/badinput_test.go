package ratelimit_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/ratelimit"
)

// Middleware fails where the chain is built, naming what is wrong,
// rather than with a nil dereference on the first request.
func TestMiddlewareBadInput(t *testing.T) {
	made, err := ratelimit.New(ratelimit.Limit{
		Name: "per-client", Requests: 1, Per: time.Second,
		Key: ratelimit.ByClientIP(), Scope: ratelimit.PerRoute,
	})
	require.NoError(t, err)
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, c := range []struct {
		name string
		l    *ratelimit.Limiter
		next http.Handler
		want string
	}{
		{"zero limiter", &ratelimit.Limiter{}, ok, "ratelimit: Middleware: the Limiter was not made by New"},
		{"nil limiter", nil, ok, "ratelimit: Middleware: the Limiter was not made by New"},
		{"nil next", made, nil, `ratelimit: Middleware of limit "per-client": next handler is nil`},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.PanicsWithValue(t, c.want, func() { c.l.Middleware(c.next) })
		})
	}
	assert.NotPanics(t, func() { made.Middleware(ok) })
}

// WithRedis with a nil client, typed or not, is an error from New: a
// typed nil would fail on the first request, and an untyped one would
// keep the buckets in process, each instance with a budget of its own.
func TestNilRedisClient(t *testing.T) {
	limit := ratelimit.Limit{Name: "nil", Requests: 1, Per: time.Second, Key: ratelimit.AllClients(), Scope: ratelimit.PerRoute}
	var typed *redis.Client
	var untyped redis.UniversalClient
	for name, c := range map[string]redis.UniversalClient{"typed": typed, "untyped": untyped} {
		var err error
		require.NotPanics(t, func() { _, err = ratelimit.New(limit, ratelimit.WithRedis(c)) }, name)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "WithRedis: the client is nil", name)
	}
}
