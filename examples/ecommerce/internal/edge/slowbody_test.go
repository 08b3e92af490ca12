package edge

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTokenEndpointBoundsASlowBody sends a token request whose body
// never comes: the token server, which anyone may call, must give up on
// it rather than hold the connection and its goroutine for ever.
func TestTokenEndpointBoundsASlowBody(t *testing.T) {
	prev := authReadTimeout
	authReadTimeout = 200 * time.Millisecond
	t.Cleanup(func() { authReadTimeout = prev })
	r := startEdge(t, newServices(t), nil)

	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(r.TokenURL(), TokenPath), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.Write([]byte("POST " + TokenPath + " HTTP/1.1\r\nHost: auth\r\n" +
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type="))
	if err != nil {
		t.Fatal(err)
	}
	// Far longer than the read timeout: a server that waits for the
	// rest of the body is still waiting then.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the token server still waits for a body that does not come")
		}
		return // it closed the connection: given up on
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d; want 400", resp.StatusCode)
	}
}

// TestGatewayBoundsASlowBody: a client with a token announces an
// order's body and never sends it. The gateway reads the body before
// its first attempt (to send it again on a retry), which no route
// timeout interrupts: it must give up on the connection all the same.
func TestGatewayBoundsASlowBody(t *testing.T) {
	prev := gatewayReadTimeout
	gatewayReadTimeout = 300 * time.Millisecond
	t.Cleanup(func() { gatewayReadTimeout = prev })
	r := startEdge(t, newServices(t), nil)
	token := r.token(t, "web-app")

	conn, err := tls.Dial("tcp", strings.TrimPrefix(r.GatewayURL(), "https://"), r.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.Write([]byte("POST /api/orders HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer " + token + "\r\n" +
		"Idempotency-Key: k-slow\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"customer_id\""))
	if err != nil {
		t.Fatal(err)
	}
	// Longer than the route's timeout: a gateway still reading the body
	// then would read it for ever.
	_ = conn.SetReadDeadline(time.Now().Add(routeTimeout + 5*time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the gateway still waits for a body that does not come")
		}
		return // it closed the connection: given up on
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("status = %d; want an error", resp.StatusCode)
	}
}
