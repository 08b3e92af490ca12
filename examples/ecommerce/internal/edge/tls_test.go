package edge

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestGeneratedCertNamesTheGatewayAddress binds the gateway to a
// loopback address other than 127.0.0.1: the URL the edge gives and the
// TLS configuration it gives must still agree, so the generated
// certificate names the address the gateway listens on.
func TestGeneratedCertNamesTheGatewayAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	_ = ln.Close()
	r := startEdge(t, newServices(t), func(c *Config) { c.GatewayAddr = "127.0.0.2:0" })
	if !strings.HasPrefix(r.GatewayURL(), "https://127.0.0.2:") {
		t.Fatalf("GatewayURL() = %q; want https://127.0.0.2:PORT", r.GatewayURL())
	}
	res := r.do(t, http.MethodGet, "/api/products/lamp", r.token(t, "web-app"), "")
	if res.status != http.StatusOK {
		t.Fatalf("GET = %v; want 200", res)
	}
	leaf := res.resp.TLS.PeerCertificates[0]
	for _, host := range []string{"127.0.0.2", "127.0.0.1", "::1", "localhost"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("VerifyHostname(%s) = %v", host, err)
		}
	}
}
