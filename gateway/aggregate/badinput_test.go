package aggregate_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// A handler not made by New answers 500 with a reason, without a panic.
func TestHandlerNotMadeByNew(t *testing.T) {
	for name, h := range map[string]*aggregate.Handler{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			require.NotPanics(t, func() { h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/pages/1", nil)) })
			assert.Equal(t, http.StatusInternalServerError, w.Code)
			var doc map[string]string
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &doc))
			assert.Equal(t, "not_configured", doc[aggregate.ErrorField])
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	parts := []aggregate.Part{{Name: "a", Upstream: "u", Path: "/a"}}
	for _, c := range []struct {
		name string
		opts []aggregate.Option
		want []string
	}{
		{"shapes without shapes", []aggregate.Option{aggregate.WithShapes(aggregate.FromHeader("X-Client"), nil)},
			[]string{"aggregate: WithShapes: shapes: must not be empty"}},
		{"shapes all nil", []aggregate.Option{aggregate.WithShapes(nil, nil)},
			[]string{"aggregate: WithShapes: shapes: must not be empty"}},
		{"nil shape, named shape without a client type", []aggregate.Option{aggregate.WithShapes(nil, map[string]aggregate.Shape{"m": nil})},
			[]string{`aggregate: WithShapes: shape "m": must not be nil`, `aggregate: WithShapes: shape "m" needs a client type function`}},
		{"negative TTL", []aggregate.Option{aggregate.WithTTL(-1)},
			[]string{"aggregate: WithTTL(-1ns): must not be negative"}},
		{"TTL without a cache", []aggregate.Option{aggregate.WithTTL(1)},
			[]string{"aggregate: WithTTL(1ns): needs a cache (WithCache)"}},
		{"nil option", []aggregate.Option{aggregate.WithTTL(0), nil}, []string{"aggregate: opts[1] is nil"}},
		{"nil transport and key mean the defaults", []aggregate.Option{aggregate.WithTransport(nil), aggregate.WithKey(nil)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := aggregate.New(parts, c.opts...)
			if c.want == nil {
				require.NoError(t, err)
				require.NotNil(t, h)
				return
			}
			require.Error(t, err)
			assert.Nil(t, h)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
