package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// roots are the spans that may start a trace with neither a parent nor a
// link, by name pattern, each for the reason given. Every other span the
// packages make, run together below, must continue a trace: a child of the
// caller's span, or linked to the span whose work it carries on.
var roots = map[string]string{
	"request": "the test's own root spans: a service's request, or its start-up",
	"subscribe {schema}.events": "pgstore: the reads of a subscription (of a projection or relay) " +
		"that find events run on the reader's context, which is its own; the work on each event links to its append",
	"listen {db}|{schema}":   "pgstore: a subscription starts listening on the reader's context, as it reads",
	"unlisten {db}|{schema}": "pgstore: and stops listening there",
	"SUBSCRIBE":              "rediscache: the invalidation subscription, started by New, lives on its own",
	"ensure_checkpoint {schema}.checkpoints": "pgcheckpoint: a projection's start-up, on the context of " +
		"the long-running Project call, which has no span of its own",
	"load_checkpoint {schema}.checkpoints": "pgcheckpoint: the same",
}

// TestSpansContinueTheirTraces runs the packages together, as a service
// does, with one set of SDK providers, and fails on any span that has
// neither a parent nor a link unless it is a documented root: a span
// that starts a trace of its own where it should continue one is a trace
// that users cannot follow.
func TestSpansContinueTheirTraces(t *testing.T) { // not parallel: sets the global propagator
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	p := telemetrytest.New(t)
	tracer := p.TracerProvider.Tracer("test")
	ctx := testenv.Context(t, 60*time.Second)

	t.Run("http client with retry and breaker", func(t *testing.T) {
		calls := 0
		srv := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls++
			if calls == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, "ok")
		}), "server", otelhttp.WithTracerProvider(p.TracerProvider), otelhttp.WithMeterProvider(p.MeterProvider)))
		defer srv.Close()
		client := &http.Client{Transport: retry.NewTransport(
			circuitbreaker.NewTransport(otelhttp.NewTransport(http.DefaultTransport,
				otelhttp.WithTracerProvider(p.TracerProvider), otelhttp.WithMeterProvider(p.MeterProvider)),
				circuitbreaker.WithMeterProvider(p.MeterProvider)),
			retry.WithTracerProvider(p.TracerProvider), retry.WithMeterProvider(p.MeterProvider),
			retry.WithBackoff(retry.Constant(time.Millisecond)),
		)}
		rctx, root := tracer.Start(ctx, "request")
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		root.End()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})

	t.Run("cache with Redis", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
		defer rdb.Close()
		l2, err := rediscache.New(rdb, rediscache.WithPrefix("telemetry-test:"+t.Name()+":"),
			rediscache.WithTracerProvider(p.TracerProvider), rediscache.WithMeterProvider(p.MeterProvider))
		if err != nil {
			t.Fatal(err)
		}
		c, err := cache.New[string](cache.WithStore(l2), cache.WithTracerProvider(p.TracerProvider), cache.WithMeterProvider(p.MeterProvider),
			cache.WithLoader(func(context.Context, string) (string, error) { return "v", nil }))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rctx, root := tracer.Start(ctx, "request")
		if _, err := c.Get(rctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(rctx, "k"); err != nil {
			t.Fatal(err)
		}
		root.End()
	})

	pool := testenv.PostgresPool(t, 16)

	t.Run("event store, projections and outbox", func(t *testing.T) {
		store, err := pgstore.New(pool, pgstore.WithSchema(testenv.Schema(t, "telemetry_")), pgstore.WithPollInterval(20*time.Millisecond),
			pgstore.WithTracerProvider(p.TracerProvider), pgstore.WithMeterProvider(p.MeterProvider))
		if err != nil {
			t.Fatal(err)
		}
		rctx, root := tracer.Start(ctx, "request")
		if err := store.Migrate(rctx); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(rctx, "order-1", eventsource.NoStream, eventsource.NewEvent{Type: "order.placed.v1", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		root.End()

		// A cqrs projection.
		runner, err := cqrs.NewRunner(store, &cqrs.MemoryCheckpoints{}, cqrs.WithTracerProvider(p.TracerProvider), cqrs.WithMeterProvider(p.MeterProvider))
		if err != nil {
			t.Fatal(err)
		}
		handled := make(chan struct{}, 1)
		if err := runner.Start(projection{"orders", handled}); err != nil {
			t.Fatal(err)
		}
		<-handled
		if err := runner.Close(); err != nil {
			t.Fatal(err)
		}

		// An exactly-once PostgreSQL projection.
		cps, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(testenv.Schema(t, "telemetry_cp_")),
			pgcheckpoint.WithTracerProvider(p.TracerProvider), pgcheckpoint.WithMeterProvider(p.MeterProvider))
		if err != nil {
			t.Fatal(err)
		}
		mctx, root := tracer.Start(ctx, "request")
		err = cps.Migrate(mctx)
		root.End()
		if err != nil {
			t.Fatal(err)
		}
		pctx, stop := context.WithCancel(ctx)
		if err := cps.Project(pctx, "read-model", store, func(context.Context, pgx.Tx, eventsource.Event) error {
			stop()
			return nil
		}); err != nil {
			t.Fatal(err)
		}

		// The outbox relay to a bus and a subscriber.
		bus := cqrs.NewMemoryBus(cqrs.WithTracerProvider(p.TracerProvider), cqrs.WithMeterProvider(p.MeterProvider))
		defer bus.Close()
		relay, err := cqrs.NewRelay("outbox", store, bus, &cqrs.MemoryCheckpoints{}, func(eventsource.Event) string { return "orders" })
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan struct{}, 1)
		sub, err := bus.Subscribe(ctx, "orders", "shipping", func(context.Context, cqrs.Message) error {
			got <- struct{}{}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- relay.Run(rctx) }()
		<-got
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})

	t.Run("outbox to NATS JetStream", func(t *testing.T) {
		nc, err := nats.Connect(testenv.NATSURL(t))
		if err != nil {
			t.Fatal(err)
		}
		// A cleanup, not a defer: the stream's cleanup below needs the
		// connection, and cleanups run after the test's defers.
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		stream := fmt.Sprintf("TELEMETRY_%d", time.Now().UnixNano())
		t.Cleanup(func() { _ = js.DeleteStream(context.Background(), stream) })
		bus, err := natsbus.New(js, natsbus.WithStream(stream), natsbus.WithSubjectPrefix(strings.ToLower(stream)+"."),
			natsbus.WithTracerProvider(p.TracerProvider), natsbus.WithMeterProvider(p.MeterProvider))
		if err != nil {
			t.Fatal(err)
		}
		store := &eventsource.MemoryStore{}
		rctx, root := tracer.Start(ctx, "request")
		err = bus.Setup(rctx)
		if err == nil {
			_, err = store.Append(rctx, "order-1", eventsource.NoStream, eventsource.NewEvent{Type: "order.placed.v1", Data: []byte(`{}`)})
		}
		root.End()
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan struct{}, 1)
		sub, err := bus.Subscribe(ctx, "orders", "shipping", func(context.Context, cqrs.Message) error {
			got <- struct{}{}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		relay, err := cqrs.NewRelay("outbox", store, bus, &cqrs.MemoryCheckpoints{}, func(eventsource.Event) string { return "orders" })
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- relay.Run(rctx) }()
		<-got
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("saga on PostgreSQL", func(t *testing.T) {
		log, err := pglog.New(pool, pglog.WithSchema(testenv.Schema(t, "telemetry_saga_")),
			pglog.WithTracerProvider(p.TracerProvider), pglog.WithMeterProvider(p.MeterProvider))
		if err != nil {
			t.Fatal(err)
		}
		mctx, root := tracer.Start(ctx, "request")
		err = log.Migrate(mctx)
		root.End()
		if err != nil {
			t.Fatal(err)
		}
		type order struct{ Paid bool }
		def, err := saga.Define("order", 1,
			saga.Step[order]{Name: "pay",
				Action:     func(context.Context, order) (func(*order), error) { return func(o *order) { o.Paid = true }, nil },
				Compensate: func(context.Context, order) error { return nil }},
			saga.Step[order]{Name: "ship",
				Action: func(context.Context, order) (func(*order), error) {
					return nil, retry.Permanent(errors.New("out of stock"))
				},
				Compensate: func(context.Context, order) error { return nil }},
		)
		if err != nil {
			t.Fatal(err)
		}
		o, err := saga.NewOrchestrator(log, saga.WithDefinitions(def),
			saga.WithTracerProvider(p.TracerProvider), saga.WithMeterProvider(p.MeterProvider))
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close(context.Background())
		rctx, root := tracer.Start(ctx, "request")
		id, err := o.Start(rctx, def, order{})
		root.End()
		if err != nil {
			t.Fatal(err)
		}
		if status, err := o.Wait(ctx, id); status != saga.Compensated {
			t.Fatalf("Wait() = %v, %v; want the saga compensated", status, err)
		}
	})

	ended := p.Spans.Ended()
	scopes := map[string]bool{}
	for _, s := range ended {
		scopes[s.InstrumentationScope().Name] = true
	}
	for _, scope := range []string{retry.ScopeName, cache.ScopeName, rediscache.ScopeName, pgstore.ScopeName,
		cqrs.ScopeName, natsbus.ScopeName, pgcheckpoint.ScopeName, saga.ScopeName, pglog.ScopeName, otelhttp.ScopeName} {
		if !scopes[scope] {
			t.Errorf("no span of %s: its scenario did not run", scope)
		}
	}
	for _, s := range ended {
		if s.Parent().IsValid() || len(s.Links()) > 0 {
			continue
		}
		if !isRoot(s) {
			t.Errorf("span %q (scope %s) has neither a parent nor a link", s.Name(), s.InstrumentationScope().Name)
		}
	}
}

func isRoot(s sdktrace.ReadOnlySpan) bool {
	for pattern := range roots {
		if telemetrytest.NameMatches(pattern, s.Name()) {
			return true
		}
	}
	return false
}

// projection is a cqrs projection that reports its first event.
type projection struct {
	name    string
	handled chan struct{}
}

func (p projection) Name() string { return p.name }

func (p projection) Handle(context.Context, eventsource.Event) error {
	select {
	case p.handled <- struct{}{}:
	default:
	}
	return nil
}
