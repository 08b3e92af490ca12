// Command ecommerce is the whole library at work in a shop a user
// recognises: an API gateway with OAuth2 and TLS in front of a web and a
// mobile backend for frontend, an order service, and the payment,
// inventory, shipping and catalogue services it depends on, all in one
// process (or one process per service), with OpenTelemetry throughout.
//
// # What runs
//
//   - edge (package internal/edge): an OAuth2 token server (client
//     credentials, RS256 JWTs, a JWKS), the gateway (TLS with a certificate
//     made at start-up, JWT verification over the JWKS, a role per route,
//     a token-bucket rate limit per client, a breaker and retries per
//     upstream, fallbacks) and the two BFFs (gateway/aggregate);
//   - shop (package internal/shop): the order service, hexagonal, taking
//     PlaceOrder through a cqrs command bus that drops a command sent twice
//     (the Idempotency-Key), keeping the order in an event store, running
//     the order saga (reserve inventory, charge payment, create the
//     shipment; compensations) over HTTP clients wrapped with a circuit
//     breaker and retries, publishing its events through an outbox relay,
//     and building the order read model with a projection; the catalogue
//     read through a cache; payment, inventory and shipping;
//   - an admin server: the health of the whole process (/livez, /readyz,
//     /health) and its metrics in Prometheus' format (/metrics).
//
// Each of them is a component of one [hexagonal.App], which starts them in
// order and, on SIGINT or SIGTERM (or at the end of the scenario), turns
// readiness off and stops them in reverse order.
//
// # Running it
//
// From the repository root, the scripted scenario, on in-memory backends,
// in a few seconds:
//
//	go run ./examples/ecommerce
//
// A client gets a token, looks at the catalogue, places an order through
// the gateway, waits for the read model, reads the web and mobile order
// pages, and sends the same order again with the same Idempotency-Key (one
// order). Then the faults: a declined payment (the saga compensates), a
// flaky inventory (retried), a shipping outage (the breaker opens and the
// BFF answers without the shipment), a client without the role (403) and a
// burst over the rate limit (429). The program prints what happened, one
// trace tree per request, and what the patterns did, read from the
// metrics; then it shuts the App down.
//
// The other modes:
//
//	go run ./examples/ecommerce -serve                 # keep running; prints the gateway, token and metrics URLs
//	go run ./examples/ecommerce -serve -gateway 127.0.0.1:8443 -auth 127.0.0.1:8080 -admin 127.0.0.1:9464
//	go run ./examples/ecommerce -load 30s -rate 500    # start the system, drive it at 500 requests/s, report
//	go run ./examples/ecommerce -load 30s -rate 500 -target https://127.0.0.1:8443 -token http://127.0.0.1:8080/oauth2/token
//	go run ./examples/ecommerce -service orders -listen :8105 -payment-url http://payment:8101 ...
//
// -service runs one service alone, so that the same binary deploys as
// separate processes (deploy/compose.yaml): edge (the token server, the
// gateway and the BFFs: -gateway and -auth pick their addresses), orders,
// catalogue, payment, inventory or shipping (-listen), with the URLs of
// the others from the -*-url flags or the ECOMMERCE_ORDERS_URL,
// ECOMMERCE_CATALOGUE_URL, ECOMMERCE_PAYMENT_URL, ECOMMERCE_INVENTORY_URL
// and ECOMMERCE_SHIPPING_URL variables. Each process has its own admin
// server (-admin). The OAuth2 clients are edge.DefaultClients: web-app,
// mobile-app and reporting (orders:read only), with the secrets
// web-app-secret, mobile-app-secret and reporting-secret.
//
// # Backends
//
// In memory by default. With PATTERNS_POSTGRES_URL the order service keeps
// its events, saga log and projection checkpoints in PostgreSQL; with
// PATTERNS_REDIS_ADDR the catalogue's cache has a Redis second level; with
// PATTERNS_NATS_URL the events go over NATS JetStream; with -kafka they go
// over Kafka (cqrs/kafkabus), on the brokers of PATTERNS_KAFKA_BROKERS or,
// when that is not set, on a kfake cluster of three brokers in the process:
//
//	go run ./examples/ecommerce -kafka
//	PATTERNS_KAFKA_BROKERS=127.0.0.1:9092 go run ./examples/ecommerce -kafka
//
// The scenario uses a schema, a stream prefix and Kafka topics of its own
// and removes them at the end; -serve
// and -service use the schema "ecommerce" and the prefix "ECOMMERCE" (or
// ECOMMERCE_SCHEMA, ECOMMERCE_STREAM_PREFIX), and keep them.
//
// # Telemetry
//
// The standard OTEL_* variables configure it (package
// examples/internal/prodotel): OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES. Metrics are also on the admin server's
// /metrics; log records carry the trace and span ids.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
)

func main() {
	c := defineFlags(flag.CommandLine)
	// JSONOut parses the command line and, when an OTLP endpoint is set
	// in a build without the OTLP exporters, runs the program again with
	// them (go run -tags otlp), as every example does.
	if exampleotel.JSONOut() != nil {
		// The other examples' -telemetry=json: here the OTEL_* variables
		// say where the telemetry goes.
		fmt.Fprintln(os.Stderr, "-telemetry=json: this example's telemetry follows the OTEL_* variables; "+
			"OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=console print all of it")
		os.Exit(2)
	}
	if err := checkFlags(flag.CommandLine, c); err != nil {
		os.Exit(2)
	}
	cfg := *c
	var err error
	ctx := context.Background()
	switch {
	case cfg.load > 0 && cfg.target != "":
		err = runLoadRemote(ctx, cfg, os.Stdout)
	case cfg.load > 0:
		err = runLoad(ctx, cfg, os.Stdout)
	case cfg.service != "":
		err = runService(ctx, cfg, os.Stdout)
	case cfg.serve:
		err = runServe(ctx, cfg, os.Stdout)
	default:
		_, err = runScenario(ctx, cfg, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ecommerce:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	serve                  bool
	service                string // "" runs every service
	gatewayAddr, adminAddr string
	authAddr               string // the token server's listen address
	listen                 string // -service: the service's own address
	certFile, keyFile      string

	load        time.Duration
	rate        int
	target      string // -load: a gateway started elsewhere
	tokenURL    string // -load -target: its token endpoint
	metricsURL  string // -load -target: its /metrics
	caCert      string // -load -target: the gateway's certificate
	remote      remoteURLs
	logToStderr bool
	kafka       bool // the events over Kafka
}

// remoteURLs are the base URLs of the services not run here (-service).
type remoteURLs struct {
	orders, catalogue, payment, inventory, shipping string
}

// parseFlags parses args into a config; the flags are those of fs.
func parseFlags(fs *flag.FlagSet, args []string) (config, error) {
	c := defineFlags(fs)
	if err := fs.Parse(args); err != nil {
		return *c, err
	}
	return *c, checkFlags(fs, c)
}

// defineFlags defines the program's flags on fs, to be parsed into the
// config it returns.
func defineFlags(fs *flag.FlagSet) *config {
	c := &config{}
	fs.BoolVar(&c.serve, "serve", false, "keep running (until SIGINT or SIGTERM), printing the URLs, instead of the scenario")
	fs.StringVar(&c.service, "service", "", "run one service alone: edge, orders, catalogue, payment, inventory or shipping")
	fs.StringVar(&c.gatewayAddr, "gateway", "", "the gateway's listen address (default 127.0.0.1 and a free port)")
	fs.StringVar(&c.authAddr, "auth", "", "the OAuth2 token server's listen address (default 127.0.0.1 and a free port)")
	fs.StringVar(&c.adminAddr, "admin", "", "the admin server's listen address: /livez, /readyz, /health and /metrics (default 127.0.0.1 and a free port)")
	fs.StringVar(&c.listen, "listen", "", "with -service: the service's listen address (default 127.0.0.1 and a free port)")
	fs.StringVar(&c.certFile, "cert", "", "the gateway's TLS certificate (PEM); with -key; default: a self-signed one made at start-up")
	fs.StringVar(&c.keyFile, "key", "", "the gateway's TLS key (PEM)")
	fs.DurationVar(&c.load, "load", 0, "drive the system at -rate requests per second for this long, then report")
	fs.IntVar(&c.rate, "rate", 100, "with -load: requests per second")
	fs.StringVar(&c.target, "target", "", "with -load: the URL of a gateway started elsewhere (default: start the system here)")
	fs.StringVar(&c.tokenURL, "token", "", "with -load -target: the token endpoint (http://HOST:PORT/oauth2/token)")
	fs.StringVar(&c.metricsURL, "metrics", "", "with -load -target: the system's /metrics URL, for what the patterns did")
	fs.StringVar(&c.caCert, "cacert", "", "with -load -target: the gateway's certificate (PEM); default: not verified")
	fs.BoolVar(&c.kafka, "kafka", false, "carry the order events over Kafka (cqrs/kafkabus): the brokers of $"+kafkaVar+
		", or a kfake cluster in the process when that is not set")
	fs.BoolVar(&c.logToStderr, "log", false, "in the scenario, write the services' logs to stderr (default: kept for the story)")
	for _, u := range []struct {
		p    *string
		name string
	}{
		{&c.remote.orders, "orders"}, {&c.remote.catalogue, "catalogue"}, {&c.remote.payment, "payment"},
		{&c.remote.inventory, "inventory"}, {&c.remote.shipping, "shipping"},
	} {
		fs.StringVar(u.p, u.name+"-url", os.Getenv(remoteEnv(u.name)),
			"with -service: the base URL of the "+u.name+" service (default $"+remoteEnv(u.name)+")")
	}
	return c
}

// checkFlags checks the parsed flags of fs, c, against each other.
func checkFlags(fs *flag.FlagSet, c *config) error {
	if fs.NArg() > 0 {
		return usageError(fs, fmt.Sprintf("unexpected arguments: %q", fs.Args()))
	}
	if c.load < 0 || (c.load > 0 && c.rate <= 0) {
		return usageError(fs, "-load needs a positive duration and -rate a positive number")
	}
	if c.target != "" && (c.load == 0 || c.tokenURL == "") {
		return usageError(fs, "-target goes with -load and -token")
	}
	if c.service != "" && !validService(c.service) {
		return usageError(fs, fmt.Sprintf("-service %q: want edge, orders, catalogue, payment, inventory or shipping", c.service))
	}
	if (c.certFile == "") != (c.keyFile == "") {
		return usageError(fs, "-cert and -key go together")
	}
	return nil
}

// remoteEnv names the variable that gives a service's base URL.
func remoteEnv(service string) string {
	return "ECOMMERCE_" + map[string]string{
		"orders": "ORDERS", "catalogue": "CATALOGUE", "payment": "PAYMENT",
		"inventory": "INVENTORY", "shipping": "SHIPPING",
	}[service] + "_URL"
}

func validService(s string) bool {
	switch s {
	case "edge", "orders", "catalogue", "payment", "inventory", "shipping":
		return true
	}
	return false
}

// usageError prints msg and the usage to fs's output and returns it as
// an error.
func usageError(fs *flag.FlagSet, msg string) error {
	fmt.Fprintln(fs.Output(), msg)
	fs.Usage()
	return errors.New(msg)
}
