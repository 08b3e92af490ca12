package edge

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTokenEndpointRefusesRepeatedParameters: RFC 6749, 5.2, answers a
// request that repeats a parameter with invalid_request, rather than
// acting on one of its values (which one a proxy in front checks and
// which one the server uses may differ).
func TestTokenEndpointRefusesRepeatedParameters(t *testing.T) {
	r := startEdge(t, newServices(t), nil)
	for _, form := range []url.Values{
		{"grant_type": {"client_credentials"}, "scope": {RoleOrdersRead, RoleOrdersWrite}},
		{"grant_type": {"client_credentials", "client_credentials"}},
		{"grant_type": {"client_credentials"}, "client_id": {"web-app", "reporting"}, "client_secret": {"web-app-secret"}},
	} {
		req, _ := http.NewRequest(http.MethodPost, r.TokenURL(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if !form.Has("client_id") {
			req.SetBasicAuth("web-app", "web-app-secret")
		}
		resp, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var te TokenError
		_ = json.Unmarshal(body, &te)
		if resp.StatusCode != http.StatusBadRequest || te.Code != ErrCodeInvalidRequest {
			t.Errorf("POST %s = %d %q; want 400 %s", form.Encode(), resp.StatusCode, te.Code, ErrCodeInvalidRequest)
		}
	}
}
