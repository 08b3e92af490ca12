package shop

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/adapters"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/app"
	"github.com/otelpatterns/patterns/hexagonal"
)

// Service names, the values of [Config.Only].
const (
	Orders    = "orders"
	Catalogue = "catalogue"
	Payment   = "payment"
	Inventory = "inventory"
	Shipping  = "shipping"
)

// Backends are the shared infrastructure the services run on; each nil
// field is replaced by its in-memory counterpart.
type Backends struct {
	// Postgres holds the event store (pgstore), the saga log (pglog) and
	// the checkpoints (pgcheckpoint); nil keeps them in memory.
	Postgres *pgxpool.Pool
	// Schema is the PostgreSQL schema the backends use; the caller
	// creates and drops it. "" uses each package's default schema.
	Schema string
	// Redis is the catalogue cache's second level; nil keeps one level.
	Redis redis.UniversalClient
	// NATS carries the event bus on JetStream; nil uses cqrs.MemoryBus.
	NATS *nats.Conn
	// Kafka, the seed brokers of a Kafka cluster, carries the event bus on
	// Kafka (cqrs/kafkabus) instead, its topics prefixed with the
	// StreamPrefix in lower case; nil uses NATS or memory.
	Kafka []string
	// StreamPrefix names the JetStream stream, the subjects and the Redis
	// keys of this run, so that runs sharing a server do not meet. ""
	// uses "shop".
	StreamPrefix string
}

// Addrs holds one address or URL per service.
type Addrs struct {
	Orders, Catalogue, Payment, Inventory, Shipping string
}

// Config configures [New].
type Config struct {
	// Backends are the stores and bus; the zero value runs in memory.
	Backends Backends
	// Only runs one service alone (one of the service name constants);
	// "" runs all five.
	Only string
	// Addrs are the listen addresses; "" means 127.0.0.1:0.
	Addrs Addrs
	// Remote are the base URLs of the services not run here (with Only).
	Remote Addrs
	// TracerProvider and MeterProvider default to the global ones.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Shop is the services of one process: those of [Config.Only], or all
// five. It is made by [New] and run by the hexagonal.App its components
// are registered with. Its methods are safe for concurrent use.
type Shop struct {
	cfg        Config
	faults     *Faults
	urls       Addrs
	components []hexagonal.Component
	checks     []hexagonal.Check
	// closers release what New built: when New fails half way, or at
	// Close.
	closers   []func()
	closeOnce sync.Once

	// The services run here (nil for the others).
	payments  *payments
	stock     *stock
	shipments *shipments
	catalogue *catalogue
	orders    *app.Orders
	stats     *adapters.StatsProjection
	breakers  *circuitbreaker.Group
	// relayCheckpoints holds the outbox relay's checkpoint (for tests),
	// and wrapCheckpoints, if set, wraps it (tests inject failures).
	relayCheckpoints cqrs.CheckpointStore
	wrapCheckpoints  func(cqrs.CheckpointStore) cqrs.CheckpointStore

	// openFor is how long a breaker stays open; shipAttempts bounds the
	// ship step's attempts. Tests shorten them.
	openFor      time.Duration
	shipAttempts int
}

// New builds the services of cfg and binds their listeners, so that
// [Shop.URLs] are known before the app runs. A service run elsewhere
// (with Only) is reached at its Remote URL, which must then be given
// where a service run here calls it. ctx is not kept.
//
// The components release what they hold when the app stops them; call
// [Shop.Close] after the app's Run returns too, for what a start that
// failed half way did not reach (or when the app never runs).
func New(ctx context.Context, cfg Config) (*Shop, error) { return newShop(ctx, cfg, nil) }

// newShop is New with tune, if not nil, changing the shop's timings
// before it is built.
func newShop(ctx context.Context, cfg Config, tune func(*Shop)) (*Shop, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Backends.StreamPrefix == "" {
		cfg.Backends.StreamPrefix = "shop"
	}
	switch cfg.Only {
	case "", Orders, Catalogue, Payment, Inventory, Shipping:
	default:
		return nil, fmt.Errorf("shop: unknown service %q", cfg.Only)
	}
	s := &Shop{cfg: cfg, faults: &Faults{}, urls: cfg.Remote, openFor: 2 * time.Second, shipAttempts: 60}
	if tune != nil {
		tune(s)
	}
	if err := s.build(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Components returns the services' components in start order: the
// backends, the HTTP servers, then the consumers (outbox relay,
// projection).
func (s *Shop) Components() []hexagonal.Component { return slices.Clone(s.components) }

// URLs returns the base URLs of the services, "http://127.0.0.1:PORT" for
// those run here and the Remote ones for the others.
func (s *Shop) URLs() Addrs { return s.urls }

// Faults returns the scripted faults of the services run here.
func (s *Shop) Faults() *Faults { return s.faults }

// Checks returns the readiness checks of the backends the services use
// (PostgreSQL, Redis, NATS), for the process-wide health.
func (s *Shop) Checks() []hexagonal.Check { return slices.Clone(s.checks) }

// Breaker returns the order service's circuit breaker on service name
// (Catalogue, Inventory, Payment or Shipping), to show its state; nil when
// the order service does not run here.
func (s *Shop) Breaker(name string) *circuitbreaker.Breaker {
	if s.breakers == nil {
		return nil
	}
	return s.breakers.Get(name)
}

// OrderStats returns how many orders stand at each status (also served
// by the order service at GET /stats); zero when the order service does
// not run here.
func (s *Shop) OrderStats() adapters.Stats {
	if s.stats == nil {
		return adapters.Stats{}
	}
	return s.stats.Stats()
}

// Close releases what New built and the app did not release: the
// listeners, the saga orchestrator (its background recovery), the
// catalogue's cache. It is safe to call after the app stopped them, and
// more than once.
func (s *Shop) Close() {
	s.closeOnce.Do(func() {
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i]()
		}
	})
}

// runs reports whether service name runs in this process.
func (s *Shop) runs(name string) bool { return s.cfg.Only == "" || s.cfg.Only == name }
