package auth_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/auth"
)

// Middleware fails where the chain is built, naming what is wrong,
// rather than with a nil dereference on the first request.
func TestMiddlewareBadInput(t *testing.T) {
	made, err := auth.New(auth.WithAPIKeys(auth.APIKey{Name: "job", Secret: "a-secret-of-sixteen-or-more"}))
	require.NoError(t, err)
	defer made.Close()
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, c := range []struct {
		name string
		wrap func()
		want string
	}{
		{"zero authenticator", func() { (&auth.Authenticator{}).Middleware() }, "auth: Middleware: the Authenticator was not made by New"},
		{"nil authenticator", func() { (*auth.Authenticator)(nil).Middleware() }, "auth: Middleware: the Authenticator was not made by New"},
		{"nil next", func() { made.Middleware()(nil) }, "auth: Middleware: next handler is nil"},
		{"no role", func() { made.Middleware(auth.RequireAnyRole()) }, `auth: RequireAnyRole([]): give at least one role, none empty`},
		{"empty scope", func() { made.Middleware(auth.RequireScopes("")) }, `auth: RequireScopes([""]): a scope is empty`},
		{"nil option", func() { made.Middleware(auth.RequireScopes("read"), nil) }, "auth: Middleware: opts[1] is nil"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.PanicsWithValue(t, c.want, c.wrap)
		})
	}
	assert.NotPanics(t, func() { made.Middleware()(ok) })
}
