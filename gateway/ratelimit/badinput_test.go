package ratelimit_test

import (
	"net/http"
	"testing"
	"time"

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
