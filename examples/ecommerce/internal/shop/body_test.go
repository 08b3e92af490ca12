package shop

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// A body over the services' limit is answered 413 Content Too Large, not
// as a malformed order: sent again as it is, it would fail again.
func TestBodyTooLarge(t *testing.T) {
	s := started(t, Config{})
	big := `{"customer_id":"` + strings.Repeat("x", 2<<20) + `","lines":[{"sku":"MUG-1","qty":1}]}`
	for _, u := range []string{s.URLs().Orders + "/orders", s.URLs().Inventory + "/reservations", s.URLs().Payment + "/charges"} {
		resp, err := http.Post(u, "application/json", bytes.NewReader([]byte(big)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s with a 2 MiB body: %d, want 413", u, resp.StatusCode)
		}
	}
}
