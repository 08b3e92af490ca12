package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/examples/internal/examplepg"
	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
)

// backend is where the legacy monolith and the new system keep their data.
type backend struct {
	name   string // for the output
	legacy legacyDB
	store  eventsource.Store // the new system's

	// On PostgreSQL only: the change data capture from the legacy table
	// to the new store. startCDC creates its slot and starts it; nil in
	// memory.
	cdc      *cdcHandler
	startCDC func(context.Context) error

	close func(context.Context) error
}

// openBackend returns in-memory storage, or PostgreSQL when
// PATTERNS_POSTGRES_URL is set.
func openBackend(ctx context.Context, otelp *providers) (*backend, error) {
	if url := os.Getenv(examplepg.URLVar); url != "" {
		return openPostgres(ctx, url, otelp)
	}
	return &backend{
		name:   "in memory",
		legacy: newMemLegacy(),
		store:  &eventsource.MemoryStore{},
		close:  func(context.Context) error { return nil },
	}, nil
}

// openPostgres puts everything in a schema of its own, which close drops:
// the monolith's orders table and the new system's event store (pgstore;
// in real life two databases, here one). Three things of the run live
// outside the schema, on the server, and close removes them too: the
// CDC consumer's replication slot (pgcdc never drops it by itself: a
// slot must survive restarts), its publication, and the replication
// origin that marks the dual write's sessions. All three are named after
// the schema.
func openPostgres(ctx context.Context, url string, otelp *providers) (b *backend, err error) {
	// The store's subscriptions (two projections) hold a connection each
	// while they run; requests and appends need a few more.
	pool, schema, drop, err := examplepg.Open(ctx, url, "strangler_example_", 8)
	if err != nil {
		return nil, err
	}
	var cleanup []func(context.Context) error // run last first
	closeAll := func(ctx context.Context) error {
		var errs []error
		for i := len(cleanup) - 1; i >= 0; i-- {
			errs = append(errs, cleanup[i](ctx))
		}
		return errors.Join(append(errs, drop(ctx))...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, closeAll(context.WithoutCancel(ctx)))
		}
	}()

	if err := createLegacyTables(ctx, pool, schema); err != nil {
		return nil, fmt.Errorf("creating the legacy tables: %w", err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	legacy := &pgLegacy{pool: pool, orders: s + ".orders", seq: "'" + s + ".order_numbers'"}

	// The dual write's connection, its session marked with a replication
	// origin of the run.
	if _, err := pool.Exec(ctx, "SELECT pg_replication_origin_create($1)", schema); err != nil {
		return nil, fmt.Errorf("creating the replication origin: %w", err)
	}
	cleanup = append(cleanup, func(ctx context.Context) error {
		// After closeDual, which ends the session's use of it.
		_, err := pool.Exec(ctx, "SELECT pg_replication_origin_drop($1)", schema)
		return err
	})
	dual, err := pgx.Connect(ctx, url)
	if err == nil {
		legacy.dual = dual
		_, err = dual.Exec(ctx, "SELECT pg_replication_origin_session_setup($1)", schema)
		legacy.marked = err == nil
	}
	cleanup = append(cleanup, legacy.closeDual)
	if err != nil {
		return nil, fmt.Errorf("marking the dual write's session: %w", err)
	}

	store, err := pgstore.New(pool, pgstore.WithSchema(schema),
		pgstore.WithTracerProvider(otelp.tp), pgstore.WithMeterProvider(otelp.mp))
	if err == nil {
		err = store.Migrate(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("the event store: %w", err)
	}

	h := &cdcHandler{store: store}
	// The slot's name is the schema's (a-z, 0-9 and _), and so is the
	// publication's, which the consumer creates.
	consumer, err := pgcdc.New(url, schema, []string{schema + ".orders"}, h.handle,
		pgcdc.WithBackoff(50*time.Millisecond, time.Second),
		pgcdc.WithTracerProvider(otelp.tp), pgcdc.WithMeterProvider(otelp.mp))
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func(ctx context.Context) error {
		// After the Run has stopped (see startCDC); dropping the schema
		// takes the table out of the publication but leaves it.
		_, err := pool.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{consumer.Publication()}.Sanitize())
		return errors.Join(consumer.DropSlot(ctx), err)
	})
	b = &backend{name: "in PostgreSQL", legacy: legacy, store: store, cdc: h}
	b.startCDC = func(ctx context.Context) error {
		// The slot streams what commits after its creation.
		if err := consumer.Setup(ctx); err != nil {
			return err
		}
		runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan error, 1)
		go func() { done <- consumer.Run(runCtx) }()
		cleanup = append(cleanup, func(context.Context) error {
			stop()
			if err := <-done; err != nil {
				return fmt.Errorf("CDC: %w", err)
			}
			return nil
		})
		return nil
	}
	b.close = closeAll
	return b, nil
}
