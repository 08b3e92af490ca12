package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/hexagonal"
)

// Client is an OAuth2 client of the token server: its credentials and
// the roles its access tokens carry.
type Client struct {
	ID, Secret string
	Roles      []string
}

// Config configures an [Edge]. Zero values take the defaults named on
// each field.
type Config struct {
	// OrdersURL, CatalogueURL and ShippingURL are the base URLs of the
	// services behind the edge ("http://127.0.0.1:8081").
	OrdersURL, CatalogueURL, ShippingURL string
	// GatewayAddr, AuthAddr, WebBFFAddr and MobileBFFAddr are the listen
	// addresses; "127.0.0.1:0" picks a port; "" means 127.0.0.1:0.
	GatewayAddr, AuthAddr, WebBFFAddr, MobileBFFAddr string
	// CertFile and KeyFile hold the gateway's TLS certificate and key
	// (PEM). When both are empty, New makes a self-signed ECDSA
	// certificate for 127.0.0.1, ::1 and localhost.
	CertFile, KeyFile string
	// Clients are the OAuth2 clients; nil means [DefaultClients].
	Clients []Client
	// RatePerSecond and Burst are each client's token bucket, across the
	// gateway's routes; 0 means 100 a second and a burst of 200.
	RatePerSecond, Burst int
	// TracerProvider and MeterProvider receive the edge's telemetry; nil
	// means the global ones.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Logger logs what no response can tell; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultClients returns the clients of the example: "web-app" and
// "mobile-app" may read and place orders and read the catalogue;
// "reporting" may only read orders.
func DefaultClients() []Client {
	rw := []string{RoleOrdersRead, RoleOrdersWrite, RoleCatalogueRead}
	return []Client{
		{ID: "web-app", Secret: "web-app-secret", Roles: rw},
		{ID: "mobile-app", Secret: "mobile-app-secret", Roles: rw},
		{ID: "reporting", Secret: "reporting-secret", Roles: []string{RoleOrdersRead}},
	}
}

// The roles of the gateway's routes.
const (
	RoleOrdersRead    = "orders:read"
	RoleOrdersWrite   = "orders:write"
	RoleCatalogueRead = "catalogue:read"
)

// Edge is the edge of the shop: the token server, the API gateway and
// the two BFFs.
type Edge struct {
	cfg Config
}

// New builds the edge and binds its listeners.
func New(cfg Config) (*Edge, error) {
	return nil, errors.New("edge: not implemented yet")
}

// Components returns the edge's servers in start order.
func (e *Edge) Components() []hexagonal.Component { return nil }

// GatewayURL is the gateway's base URL.
func (e *Edge) GatewayURL() string { return "" }

// TokenURL is the token endpoint's URL.
func (e *Edge) TokenURL() string { return "" }

// ClientTLS returns a TLS configuration that trusts the gateway.
func (e *Edge) ClientTLS() *tls.Config { return nil }

// FetchToken gets an access token with the client credentials grant.
func FetchToken(ctx context.Context, c *http.Client, tokenURL, id, secret string) (string, error) {
	return "", errors.New("edge: not implemented yet")
}
