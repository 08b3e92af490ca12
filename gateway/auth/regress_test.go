package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/auth"
)

// TestAPIKeyQueryEscapedName: a key whose parameter name is escaped
// ("api%5Fkey" for "api_key") authenticated the request, as the query
// parser unescapes names, but was left in the query that went upstream,
// since the removal was skipped when the raw query did not contain the
// name as written.
func TestAPIKeyQueryEscapedName(t *testing.T) {
	a := newAuth(t, auth.WithAPIKeys(adminKey), auth.WithAPIKeyQuery("api_key"))
	r := httptest.NewRequest(http.MethodGet, "http://gw.test/builds?z=1&api%5Fkey="+adminKey.Secret, nil)
	resp, _, got := serve(t, a, r)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ops", got.principal.Subject)
	assert.Equal(t, "z=1", got.rawQuery, "the key reached the upstream")
}
