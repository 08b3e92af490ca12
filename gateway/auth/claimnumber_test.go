package auth_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/otelpatterns/patterns/gateway/auth"
)

// A numeric claim goes upstream in its claim header as the token has it,
// or, past 2^53, where a JSON number read as a float64 has lost digits
// (a 64-bit ID would be another user's), not at all.
func TestNumericClaimHeader(t *testing.T) {
	a := staticAuth(t, auth.WithClaimHeaders(map[string]string{"uid": "X-Uid"}))
	for _, tt := range []struct{ id, want string }{
		{"9007199254740991", "9007199254740991"}, // 2^53 - 1: exact
		{"-42", "-42"},
		{"9007199254740993", ""}, // read as 2^53
		{"1234567890123456789", ""},
	} {
		tok := sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice", func(c jwt.MapClaims) {
			c["uid"] = json.Number(tt.id) // encoded as the bare JSON number
		}))
		resp, _, got := serve(t, a, bearerRequest(tok))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if v := got.header.Get("X-Uid"); v != tt.want {
			t.Errorf("uid claim %s went upstream as X-Uid: %q; want %q", tt.id, v, tt.want)
		}
	}
}
