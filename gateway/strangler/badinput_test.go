package strangler_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/strangler"
)

// A Facade not made by New answers 500 instead of dereferencing nil.
func TestFacadeNotMadeByNew(t *testing.T) {
	for _, c := range []struct {
		name string
		h    func() http.Handler
	}{
		{"zero facade", func() http.Handler { return &strangler.Facade{} }},
		{"nil facade", func() http.Handler { return (*strangler.Facade)(nil) }},
		{"zero facade's DiffHandler", func() http.Handler { return (&strangler.Facade{}).DiffHandler() }},
		{"nil facade's DiffHandler", func() http.Handler { return (*strangler.Facade)(nil).DiffHandler() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			require.NotPanics(t, func() { c.h().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/orders/1", nil)) })
			assert.Equal(t, http.StatusInternalServerError, w.Code)
			assert.Contains(t, w.Body.String(), "strangler: the Facade was not made by New")
		})
	}
}

func TestNewRejectsNilFunctions(t *testing.T) {
	ok := http.NotFoundHandler()
	for _, c := range []struct {
		name string
		opts []strangler.Option
		want string
	}{
		{"nil flag", []strangler.Option{strangler.WithFlag(nil)}, "strangler: WithFlag (rules[0]): flag must not be nil"},
		{"no sticky key", []strangler.Option{strangler.WithStickyKey()}, "strangler: WithStickyKey: name at least one key"},
		{"nil sticky key", []strangler.Option{strangler.WithStickyKey(strangler.BySubject(), nil)}, "strangler: WithStickyKey"},
		{"nil option", []strangler.Option{strangler.WithPercent(10), nil}, "strangler: opts[1] is nil"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := strangler.New(ok, ok, c.opts...)
			require.Error(t, err)
			assert.Nil(t, f)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}
