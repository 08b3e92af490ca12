package transcode_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/testdata"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/transcode"
)

// Over TLS the gateway's transport negotiates HTTP/2 by ALPN, as a gRPC
// server requires: no H2C needed, an https target is enough.
func TestTLSUpstream(t *testing.T) {
	creds, err := credentials.NewServerTLSFromFile(testdata.Path("x509/server1_cert.pem"), testdata.Path("x509/server1_key.pem"))
	require.NoError(t, err)
	inv := newInventory()
	addr := startGRPC(t, inv, nil, grpc.Creds(creds))

	ca, err := os.ReadFile(testdata.Path("x509/server_ca_cert.pem"))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(ca))
	transport := &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "x.test.example.com", MinVersion: tls.VersionTLS12},
	}
	t.Cleanup(transport.CloseIdleConnections)

	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"))
	require.NoError(t, err)
	g, err := gateway.New(
		gateway.WithTransport(transport),
		gateway.WithUpstreams(gateway.Upstream{Name: "inventory", Targets: []gateway.Target{{URL: "https://" + addr}}}),
		gateway.WithRoutes(tr.Routes(gateway.Route{})...),
	)
	require.NoError(t, err)
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})

	resp, body := do(t, "GET", srv.URL+"/v1/items/sku-1", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	assert.Equal(t, "Item sku-1", body["name"])
	resp, body = do(t, "POST", srv.URL+"/v1/items/sku-1:reserve", `{"quantity": 1}`, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	assert.Equal(t, "9", body["remaining"])
}
