package hexagonal_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/otelpatterns/patterns/hexagonal"
)

// FuzzHealthHandler feeds the health handler arbitrary paths, queries and
// Accept headers: it answers one of its statuses and never panics.
func FuzzHealthHandler(f *testing.F) {
	for _, seed := range []struct{ target, accept string }{
		{"/livez", ""}, {"/readyz?verbose", ""}, {"/readyz?exclude=db&exclude=x&verbose=1", ""},
		{"/readyz/db", "application/json"}, {"/health?verbose", ""}, {"/livez/", "text/plain"},
		{"/health/db", ""}, {"/", ""}, {"/readyz/%2F..", ""}, {"/livez?exclude", "*/*"},
	} {
		f.Add(seed.target, seed.accept)
	}
	h, err := hexagonal.NewHealth(quiet(),
		hexagonal.WithLivenessCheck("loop", func(context.Context) error { return nil }),
		hexagonal.WithReadinessCheck("db", func(context.Context) error { return errors.New("down") }))
	if err != nil {
		f.Fatal(err)
	}
	handler := h.Handler()
	f.Fuzz(func(t *testing.T, target, accept string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		r, err := http.NewRequest(http.MethodGet, "http://health"+target, nil)
		if err != nil {
			return
		}
		r.Header.Set("Accept", accept)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusServiceUnavailable, http.StatusNotFound:
		default:
			t.Errorf("GET %s = %d", target, w.Code)
		}
	})
}
