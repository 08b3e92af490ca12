package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
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
	// services behind the edge ("http://127.0.0.1:8081"); all three are
	// required.
	OrdersURL, CatalogueURL, ShippingURL string
	// GatewayAddr, AuthAddr, WebBFFAddr and MobileBFFAddr are the listen
	// addresses; "127.0.0.1:0" picks a port; "" means 127.0.0.1:0.
	GatewayAddr, AuthAddr, WebBFFAddr, MobileBFFAddr string
	// CertFile and KeyFile hold the gateway's TLS certificate (with its
	// chain) and key, in PEM. When both are empty, New makes a
	// self-signed ECDSA certificate for 127.0.0.1, ::1, localhost, the
	// host's name and the address GatewayAddr binds.
	CertFile, KeyFile string
	// Clients are the OAuth2 clients; nil means [DefaultClients].
	Clients []Client
	// RatePerSecond and Burst are each client's token bucket, across the
	// gateway's routes; 0 means [DefaultRatePerSecond] and
	// [DefaultBurst].
	RatePerSecond, Burst int
	// IPRatePerSecond and IPBurst are each client address's token
	// bucket, across the gateway's routes, checked before the token is:
	// a flood of made-up or stolen-and-expired tokens from one address
	// is refused with 429 for a bucket lookup each, before any costs a
	// signature check. It is set well above RatePerSecond, since
	// several clients may share an address (a NAT, a BFF). 0 means
	// [DefaultIPRatePerSecond] and [DefaultIPBurst].
	IPRatePerSecond, IPBurst int
	// TracerProvider and MeterProvider receive the edge's telemetry; nil
	// means the global ones (at the time of New).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Logger logs what no response can tell (breakers changing state, a
	// response cut off); nil means slog.Default().
	Logger *slog.Logger
	// Health, when set, is served by every server of the edge at /livez,
	// /readyz and /health (and their sub-paths): the handler of the
	// app's hexagonal.Health, so that each server can be probed. By
	// default the servers serve no health endpoints.
	Health http.Handler
}

// The defaults of [Config].
const (
	DefaultRatePerSecond   = 100
	DefaultBurst           = 200
	DefaultIPRatePerSecond = 1000
	DefaultIPBurst         = 2000
)

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

// The roles the gateway's routes require.
const (
	RoleOrdersRead    = "orders:read"
	RoleOrdersWrite   = "orders:write"
	RoleCatalogueRead = "catalogue:read"
)

// Edge is the edge of the shop: the OAuth2 token server, the API
// gateway in front of the services and the web and mobile BFFs, each an
// HTTP server of its own. Its methods are safe for concurrent use; its
// components run once.
type Edge struct {
	cfg    Config
	log    *slog.Logger
	tp     trace.TracerProvider
	mp     metric.MeterProvider
	tokens *tokenServer
	cert   tls.Certificate
	roots  *x509.CertPool

	authLn, gatewayLn, webLn, mobileLn net.Listener
	components                         []hexagonal.Component

	mu   sync.Mutex
	held map[string]func() error // what started components built, by name
}

// New builds the edge: it checks cfg (every error at once), makes the
// token signing key and, unless given, the gateway's certificate, and
// binds the four listeners, so that the URLs are known before the
// components run. The gateway, the BFFs and their caches are built when
// their components start (the gateway fetches the token server's key set
// then). Call [Edge.Close] once the app running the components has
// returned (or if it never ran): it releases whatever a stop did not.
func New(cfg Config) (*Edge, error) {
	var errs []error
	for _, u := range []struct{ name, url string }{
		{"OrdersURL", cfg.OrdersURL}, {"CatalogueURL", cfg.CatalogueURL}, {"ShippingURL", cfg.ShippingURL},
	} {
		if err := checkBaseURL(u.url); err != nil {
			errs = append(errs, fmt.Errorf("edge: %s: %w", u.name, err))
		}
	}
	if cfg.RatePerSecond < 0 || cfg.Burst < 0 {
		errs = append(errs, fmt.Errorf("edge: RatePerSecond (%d) and Burst (%d) must not be negative", cfg.RatePerSecond, cfg.Burst))
	}
	if cfg.IPRatePerSecond < 0 || cfg.IPBurst < 0 {
		errs = append(errs, fmt.Errorf("edge: IPRatePerSecond (%d) and IPBurst (%d) must not be negative", cfg.IPRatePerSecond, cfg.IPBurst))
	}
	if cfg.Clients == nil {
		cfg.Clients = DefaultClients()
	}
	seen := map[string]bool{}
	for i, c := range cfg.Clients {
		if c.ID == "" || c.Secret == "" {
			errs = append(errs, fmt.Errorf("edge: Clients[%d]: ID and Secret are required", i))
		}
		if seen[c.ID] {
			errs = append(errs, fmt.Errorf("edge: Clients[%d]: ID %q is not unique", i, c.ID))
		}
		seen[c.ID] = true
	}
	cert, roots, err := serverCert(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.RatePerSecond == 0 {
		cfg.RatePerSecond = DefaultRatePerSecond
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(DefaultBurst, cfg.RatePerSecond)
	}
	if cfg.IPRatePerSecond == 0 {
		cfg.IPRatePerSecond = DefaultIPRatePerSecond
	}
	if cfg.IPBurst == 0 {
		cfg.IPBurst = max(DefaultIPBurst, cfg.IPRatePerSecond)
	}
	e := &Edge{held: map[string]func() error{}, cfg: cfg, log: cfg.Logger, tp: cfg.TracerProvider, mp: cfg.MeterProvider, cert: cert, roots: roots}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.tp == nil {
		e.tp = otel.GetTracerProvider()
	}
	if e.mp == nil {
		e.mp = otel.GetMeterProvider()
	}

	lc := net.ListenConfig{}
	for _, l := range []struct {
		ln   *net.Listener
		addr string
	}{
		{&e.authLn, cfg.AuthAddr}, {&e.webLn, cfg.WebBFFAddr}, {&e.mobileLn, cfg.MobileBFFAddr}, {&e.gatewayLn, cfg.GatewayAddr},
	} {
		if l.addr == "" {
			l.addr = "127.0.0.1:0"
		}
		if *l.ln, err = lc.Listen(context.Background(), "tcp", l.addr); err != nil {
			_ = e.Close()
			return nil, fmt.Errorf("edge: %w", err)
		}
	}
	if roots == nil {
		// Made now that the gateway's address, which its URL names, is
		// known.
		if e.cert, e.roots, err = generatedCert(e.gatewayLn.Addr()); err != nil {
			_ = e.Close()
			return nil, err
		}
	}
	// The issuer is the token server's base URL, as an identity
	// provider's is.
	if e.tokens, err = newTokenServer(baseURL("http", e.authLn), cfg.Clients); err != nil {
		_ = e.Close()
		return nil, err
	}
	e.components = []hexagonal.Component{
		e.authServer(),
		e.bffServer(webBFF),
		e.bffServer(mobileBFF),
		e.gatewayServer(),
	}
	return e, nil
}

// checkBaseURL reports what is wrong with a service's base URL.
func checkBaseURL(raw string) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	return nil
}

// Components returns the edge's servers in start order: the token
// server ("auth"), the BFFs ("web-bff", "mobile-bff") and the gateway
// ("gateway"), which fetches the token server's key set when it starts.
// Each is an HTTP server on the listener bound by New, stopped
// gracefully; register them with a hexagonal.App, in this order.
func (e *Edge) Components() []hexagonal.Component {
	return append([]hexagonal.Component(nil), e.components...)
}

// GatewayURL is the gateway's base URL, "https://127.0.0.1:PORT".
func (e *Edge) GatewayURL() string { return baseURL("https", e.gatewayLn) }

// TokenURL is the token endpoint's URL,
// "http://127.0.0.1:PORT/oauth2/token".
func (e *Edge) TokenURL() string { return baseURL("http", e.authLn) + TokenPath }

// JWKSURL is the URL of the token server's key set.
func (e *Edge) JWKSURL() string { return baseURL("http", e.authLn) + JWKSPath }

// WebBFFURL and MobileBFFURL are the BFFs' base URLs (plain HTTP, for
// the gateway; clients go through the gateway).
func (e *Edge) WebBFFURL() string { return baseURL("http", e.webLn) }

// MobileBFFURL is the mobile BFF's base URL; see [Edge.WebBFFURL].
func (e *Edge) MobileBFFURL() string { return baseURL("http", e.mobileLn) }

// ClientTLS returns a TLS configuration for clients of the gateway
// that trusts its certificate (with the system's roots too when the
// certificate came from files). Each call returns a new one.
func (e *Edge) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS12}
}

// Close closes the listeners and releases what the components built
// (gateways, caches, the key set's refresh), for an edge whose
// components never ran or whose start a shutdown interrupted; the
// components release both when they stop. Call it after the app has
// returned. It may be called more than once.
func (e *Edge) Close() error {
	var errs []error
	for _, c := range e.components {
		errs = append(errs, e.release(c.Name))
	}
	for _, ln := range []net.Listener{e.authLn, e.webLn, e.mobileLn, e.gatewayLn} {
		if ln == nil {
			continue
		}
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// baseURL is the base URL of a listener: an unspecified address (all
// interfaces) is reached on the loopback one.
func baseURL(scheme string, ln net.Listener) string {
	addr := ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// Server timeouts: a slow client cannot hold a connection for ever.
const (
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 90 * time.Second
)

// gatewayReadTimeout bounds the reading of a whole request by the
// gateway: the gateway reads a body before its first attempt, to send it
// again on a retry, and no route timeout interrupts that read, so a
// client trickling a body would hold a goroutine for ever. It is longer
// than the header timeout and a route's Timeout together, because the
// server cancels a handler still running when it expires. A variable for
// the tests.
var gatewayReadTimeout = readHeaderTimeout + routeTimeout + 15*time.Second

// flushTimeout bounds the flush of the metrics when a component stops.
const flushTimeout = time.Second

// authReadTimeout bounds the reading of a whole request, body included,
// by the token server, which anyone may call: a client trickling a body
// cannot hold a connection and its goroutine. Its handlers answer at
// once, so the bound cuts no work short. A variable for the tests.
var authReadTimeout = 10 * time.Second

// server returns a component serving on ln whose handler build makes
// when the component starts; release, returned by build, frees what it
// made once the server has stopped. readTimeout, unless 0, bounds the
// reading of each whole request. The component keeps
// hexagonal.HTTPServerListener's start, drain and graceful stop.
func (e *Edge) server(name string, ln net.Listener, tlsConfig *tls.Config, readTimeout time.Duration, build func() (http.Handler, func() error, error)) hexagonal.Component {
	srv := &http.Server{
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
	}
	c := hexagonal.HTTPServerListener(name, srv, ln)
	start, stop := c.Start, c.Stop
	c.Start = func(ctx context.Context) error {
		h, release, err := build()
		if err != nil {
			return err
		}
		// Run, which serves, starts after Start returns: setting the
		// handler here races with nothing.
		srv.Handler = withHealth(h, e.cfg.Health)
		if err := start(ctx); err != nil {
			return errors.Join(err, release())
		}
		if err := ctx.Err(); err != nil {
			// The app gave up on this start (a shutdown began): it
			// will not stop the component.
			return errors.Join(err, release())
		}
		// Kept for Stop, and for Close should the app give up on this
		// start all the same, between the check above and its own.
		e.mu.Lock()
		e.held[name] = release
		e.mu.Unlock()
		return nil
	}
	c.Stop = func(ctx context.Context) error {
		err := stop(ctx)
		e.flushMetrics(ctx, name)
		return errors.Join(err, e.release(name))
	}
	return c
}

// flushMetrics exports the metrics of the meter provider, when it can
// flush (the SDK's can), before the component name releases what it
// built: a gateway's own metrics are reported by callbacks that its
// Close unregisters, so what it counted since the last export would be
// lost (gateway/doc.go: flush the provider before Close). A failed
// export is logged, not a failure to stop, and an exporter that cannot
// reach its collector holds the stop for flushTimeout at most.
func (e *Edge) flushMetrics(ctx context.Context, name string) {
	f, ok := e.mp.(interface{ ForceFlush(context.Context) error })
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	if err := f.ForceFlush(ctx); err != nil {
		e.log.Warn("edge: flushing the metrics before closing", slog.String("component", name), slog.Any("error", err))
	}
}

// release frees what the component name built when it started, once.
func (e *Edge) release(name string) error {
	e.mu.Lock()
	release := e.held[name]
	delete(e.held, name)
	e.mu.Unlock()
	if release == nil {
		return nil
	}
	return release()
}

// withHealth serves the health endpoints with health, and the rest with
// h.
func withHealth(h, health http.Handler) http.Handler {
	if health == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isHealthPath(r.URL.Path) {
			health.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func isHealthPath(p string) bool {
	for _, prefix := range []string{"/livez", "/readyz", "/health"} {
		if p == prefix || (prefix != "/health" && len(p) > len(prefix) && p[:len(prefix)+1] == prefix+"/") {
			return true
		}
	}
	return false
}
