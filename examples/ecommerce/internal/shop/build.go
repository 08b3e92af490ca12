package shop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/adapters"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/app"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// OrdersTopic is the bus topic the outbox relay publishes the order's
// events to.
const OrdersTopic = "orders"

// relayName is the outbox relay's name: its checkpoint's.
const relayName = "order-outbox"

// build makes the services that run here, in start order: the four the
// order service calls first, so that they serve before it calls them.
func (s *Shop) build(ctx context.Context) error {
	if s.runs(Payment) {
		s.payments = newPayments(s.faults)
		if err := s.serve(Payment, s.cfg.Addrs.Payment, &s.urls.Payment, s.payments.routes); err != nil {
			return err
		}
	}
	if s.runs(Inventory) {
		s.stock = newStock(s.faults)
		if err := s.serve(Inventory, s.cfg.Addrs.Inventory, &s.urls.Inventory, s.stock.routes); err != nil {
			return err
		}
	}
	if s.runs(Shipping) {
		s.shipments = newShipments(s.faults)
		if err := s.serve(Shipping, s.cfg.Addrs.Shipping, &s.urls.Shipping, s.shipments.routes); err != nil {
			return err
		}
	}
	if s.runs(Catalogue) {
		if err := s.buildCatalogue(); err != nil {
			return err
		}
	}
	if s.runs(Orders) {
		return s.buildOrders(ctx)
	}
	return nil
}

// serve binds service name's listener, mounts its routes and health, and
// registers its server; url receives its base URL.
func (s *Shop) serve(name, addr string, url *string, routes func(*http.ServeMux), checks ...hexagonal.Check) error {
	sv, err := s.newServer(name, addr, checks...)
	if err != nil {
		return err
	}
	routes(sv.mux)
	*url = sv.url()
	s.components = append(s.components, s.component(sv))
	return nil
}

// buildCatalogue makes the catalogue: its cache (with Redis as L2 when
// given), closed when the app stops, and its server.
func (s *Shop) buildCatalogue() error {
	c, err := s.newCatalogue()
	if err != nil {
		return err
	}
	s.catalogue = c
	s.closers = append(s.closers, func() { _ = c.close(context.Background()) })
	var checks []hexagonal.Check
	if rdb := s.cfg.Backends.Redis; rdb != nil {
		checks = append(checks, hexagonal.Check{Name: "redis", Func: hexagonal.RedisCheck(rdb)})
	}
	s.checks = append(s.checks, checks...)
	// The cache is a driven adapter: registered before the server, it
	// closes after the server stops.
	s.components = append(s.components, hexagonal.Component{Name: "catalogue-cache", Stop: c.close})
	return s.serve(Catalogue, s.cfg.Addrs.Catalogue, &s.urls.Catalogue, c.routes, checks...)
}

// remote returns the URL of a service the order service calls: the one
// run here, or the Remote one.
func (s *Shop) remote(name, url string) (string, error) {
	if url == "" {
		return "", fmt.Errorf("shop: the order service needs the URL of %s (Config.Remote)", name)
	}
	return strings.TrimRight(url, "/"), nil
}

// buildOrders wires the order service: the backends (event store, saga
// log, checkpoints, read model, bus), the application on its ports, the
// command bus, the HTTP API, the consumers and the outbox relay.
func (s *Shop) buildOrders(context.Context) error {
	b := s.cfg.Backends
	tp, mp := s.cfg.TracerProvider, s.cfg.MeterProvider
	var urls [4]string
	for i, n := range []struct{ name, url string }{
		{Catalogue, s.urls.Catalogue}, {Inventory, s.urls.Inventory},
		{Payment, s.urls.Payment}, {Shipping, s.urls.Shipping},
	} {
		u, err := s.remote(n.name, n.url)
		if err != nil {
			return err
		}
		urls[i] = u
	}

	// The backends: PostgreSQL, Kafka, NATS or memory.
	var (
		store       eventsource.Store
		sagaLog     saga.Log
		checkpoints cqrs.CheckpointStore
		views       ports.OrderViews
		bus         cqrs.EventBus
		migrations  []func(context.Context) error
		checks      []hexagonal.Check
	)
	if pool := b.Postgres; pool != nil {
		ps, err := pgstore.New(pool, pgstore.WithSchema(schemaOr(b.Schema, pgstore.DefaultSchema)),
			pgstore.WithTracerProvider(tp), pgstore.WithMeterProvider(mp))
		if err != nil {
			return err
		}
		pl, err := pglog.New(pool, pglog.WithSchema(schemaOr(b.Schema, pglog.DefaultSchema)),
			pglog.WithTracerProvider(tp), pglog.WithMeterProvider(mp))
		if err != nil {
			return err
		}
		pc, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schemaOr(b.Schema, pgcheckpoint.DefaultSchema)),
			pgcheckpoint.WithTracerProvider(tp), pgcheckpoint.WithMeterProvider(mp))
		if err != nil {
			return err
		}
		pv := adapters.NewPostgresViews(pool, schemaOr(b.Schema, pgcheckpoint.DefaultSchema))
		store, sagaLog, checkpoints, views = ps, pl, pc, pv
		migrations = append(migrations, ps.Migrate, pl.Migrate, pc.Migrate, pv.Migrate)
		checks = append(checks, hexagonal.Check{Name: "postgres", Func: hexagonal.PingCheck(pool)})
	} else {
		store, sagaLog, checkpoints, views = &eventsource.MemoryStore{}, &saga.MemoryLog{}, &cqrs.MemoryCheckpoints{}, &adapters.MemoryViews{}
	}
	var closeBus func() error
	if brokers := b.Kafka; len(brokers) > 0 {
		kb, err := kafkabus.New(brokers, kafkabus.WithTopicPrefix(KafkaTopicPrefix(b.StreamPrefix)),
			kafkabus.WithTracerProvider(tp), kafkabus.WithMeterProvider(mp))
		if err != nil {
			return err
		}
		bus, closeBus = kb, func() error { kb.Close(); return nil }
		migrations = append(migrations, func(ctx context.Context) error { return kb.Setup(ctx, OrdersTopic) })
	} else if nc := b.NATS; nc != nil {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		name := natsName(b.StreamPrefix)
		nb, err := natsbus.New(js, natsbus.WithStream(name), natsbus.WithSubjectPrefix(name+"."),
			natsbus.WithTracerProvider(tp), natsbus.WithMeterProvider(mp))
		if err != nil {
			return err
		}
		bus = nb
		migrations = append(migrations, nb.Setup)
		checks = append(checks, hexagonal.Check{Name: "nats", Func: hexagonal.NATSCheck(nc)})
	} else {
		mb := cqrs.NewMemoryBus(cqrs.WithTracerProvider(tp), cqrs.WithMeterProvider(mp))
		bus, closeBus = mb, mb.Close
		// The relay's checkpoint must not outlive the bus: what it
		// published and the consumers had not handled dies with the
		// process, and a checkpoint kept in PostgreSQL would skip it
		// at the next start (the order never projected, its saga never
		// started). In memory, the relay publishes the whole store again
		// at each start, which the consumers take as redeliveries.
		checkpoints = &cqrs.MemoryCheckpoints{}
	}
	s.checks = append(s.checks, checks...)

	// The driven adapters and the application.
	repo, err := adapters.NewRepository(store)
	if err != nil {
		return err
	}
	s.breakers = adapters.DefaultBreakers(mp, s.openFor, s.breakerChanged)
	clients := adapters.NewClients(adapters.ClientConfig{
		CatalogueURL: urls[0], InventoryURL: urls[1], PaymentURL: urls[2], ShippingURL: urls[3],
		Breakers: s.breakers, TracerProvider: tp, MeterProvider: mp,
	})
	orders, err := app.New(app.Ports{
		Orders: repo, Views: views, Catalogue: clients,
		Inventory: clients, Payments: clients, Shipping: clients,
	}, app.SagaConfig{ShipRetry: s.shipRetry(), Logger: s.cfg.Logger}, func(opts ...saga.Option) (*saga.Orchestrator, error) {
		return saga.NewOrchestrator(sagaLog, append(opts, saga.WithTracerProvider(tp), saga.WithMeterProvider(mp))...)
	})
	if err != nil {
		return err
	}
	orch := orders.Orchestrator()
	s.closers = append(s.closers, func() { _ = orch.Close(context.Background()) })
	s.orders = orders

	// The command bus: validated and de-duplicated by the event store,
	// which records the command's ID in the append's transaction (and is
	// asked first, so that a copy is not decided again). Commands are not
	// logged one by one: under load that is a line per request, and their
	// spans and cqrs.handled say the same.
	cmds := cqrs.NewBus(cqrs.WithTracerProvider(tp), cqrs.WithMeterProvider(mp))
	if err := cmds.Use(cqrs.Validation(), cqrs.Deduplication(store.(eventsource.CommandLog))); err != nil {
		return err
	}
	if err := orders.Register(cmds); err != nil {
		return err
	}

	if s.wrapCheckpoints != nil {
		checkpoints = s.wrapCheckpoints(checkpoints)
	}
	s.relayCheckpoints = checkpoints
	relay, err := cqrs.NewRelay(relayName, store, bus, checkpoints,
		func(eventsource.Event) string { return OrdersTopic }, cqrs.WithMeterProvider(mp))
	if err != nil {
		return err
	}
	consumers := adapters.NewConsumers(bus, OrdersTopic, orders, s.cfg.Logger)
	// The stats projection runs from the store, its checkpoint in memory
	// as its read model is (see adapters.StatsProjection).
	runner, err := cqrs.NewRunner(store, &cqrs.MemoryCheckpoints{}, cqrs.WithTracerProvider(tp), cqrs.WithMeterProvider(mp))
	if err != nil {
		return err
	}
	stats := adapters.NewStatsProjection()
	s.stats = stats

	// In start order: the backends (tables, stream), the server, the saga
	// orchestrator, the consumers, the relay. They stop the other way
	// round: the relay and consumers first, the sagas before the server
	// whose clients they use... and the bus last.
	s.components = append(s.components, hexagonal.Component{
		Name: "order-backends",
		Start: func(ctx context.Context) error {
			for _, m := range migrations {
				if err := m(ctx); err != nil {
					return err
				}
			}
			return nil
		},
		Stop: func(context.Context) error {
			clients.CloseIdleConnections()
			if closeBus != nil {
				return closeBus()
			}
			return nil
		},
	})
	if err := s.serve(Orders, s.cfg.Addrs.Orders, &s.urls.Orders, func(mux *http.ServeMux) {
		adapters.Routes(mux, cmds)
		mux.Handle("GET /stats", stats)
	}, checks...); err != nil {
		return err
	}
	s.components = append(s.components,
		hexagonal.Component{
			Name: "order-saga",
			// Resume the sagas a previous run left unfinished.
			Start: func(ctx context.Context) error {
				_, err := orch.Recover(ctx)
				if errors.Is(err, saga.ErrUnknownDefinition) {
					s.cfg.Logger.WarnContext(ctx, "sagas of unknown definitions left alone", "error", err)
					return nil
				}
				return err
			},
			Stop: orch.Close,
		},
		hexagonal.Component{Name: "order-consumers", Start: consumers.Start, Stop: consumers.Stop},
		hexagonal.Component{Name: "order-outbox", Run: s.resumed(relayName, relay.Run)},
		hexagonal.Component{
			Name:  "order-stats",
			Start: func(context.Context) error { return runner.Start(stats) },
			Stop:  func(context.Context) error { return runner.Close() },
		},
	)
	return nil
}

// schemaOr returns schema, or def when it is empty.
func schemaOr(schema, def string) string {
	if schema == "" {
		return def
	}
	return schema
}

// KafkaTopicPrefix returns the prefix of the Kafka topics of the run
// whose stream prefix is prefix: the prefix in lower case, with
// characters Kafka topic names cannot hold replaced by '_', and a '.'.
func KafkaTopicPrefix(prefix string) string {
	if prefix == "" {
		prefix = "shop"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, strings.ToLower(prefix)) + "."
}

// natsName makes prefix a JetStream stream name and subject token.
func natsName(prefix string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, prefix)
}

// shipRetry is the ship step's policy: until shipping answers, for about a
// minute and a half, backing off to 2s (shorter in tests).
func (s *Shop) shipRetry() *retry.Retrier {
	return retry.New(retry.WithName("order.ship"), retry.WithMaxAttempts(s.shipAttempts),
		retry.WithBackoff(retry.Exponential(100*time.Millisecond, 2, 2*time.Second)),
		retry.WithTracerProvider(s.cfg.TracerProvider), retry.WithMeterProvider(s.cfg.MeterProvider))
}

// breakerChanged logs a breaker's change of state.
func (s *Shop) breakerChanged(c circuitbreaker.StateChange) {
	s.cfg.Logger.Info("breaker changed state", "breaker", c.Breaker, "from", c.From.String(), "to", c.To.String())
}

// resumed runs run, a worker that returns an error when a backend fails
// (as cqrs.Relay.Run does: "run it again to resume"), again after each
// failure, backing off from 100ms to 5s, until ctx ends. Returned to a
// hexagonal.App, the failure would shut the whole process down, every
// service in it, for a blink of the store or the bus.
func (s *Shop) resumed(name string, run func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		wait := 100 * time.Millisecond
		for {
			err := run(ctx)
			if ctx.Err() != nil || err == nil {
				return nil
			}
			s.cfg.Logger.WarnContext(ctx, "worker failed; resuming it", "worker", name, "error", err, "after", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
		}
	}
}
