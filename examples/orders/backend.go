package main

import (
	"context"
	"errors"
	"os"
	"sync"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/examples/internal/examplepg"
	"github.com/otelpatterns/patterns/hexagonal"
)

// backend is where the run keeps its events.
type backend struct {
	name  string // for the output
	store eventsource.Store
	// ready is the readiness check of the store; nil in memory, which is
	// always ready.
	ready func(context.Context) error
	// close closes the store (dropping its schema, on PostgreSQL); it may
	// be called more than once.
	close func(context.Context) error
}

// once makes close a function that does its work at its first call only.
func once(close func(context.Context) error) func(context.Context) error {
	var done sync.Once
	return func(ctx context.Context) (err error) {
		done.Do(func() { err = close(ctx) })
		return err
	}
}

// openBackend returns the in-memory store, or a PostgreSQL one when
// PATTERNS_POSTGRES_URL is set.
func openBackend(ctx context.Context, otelp *providers) (*backend, error) {
	if url := os.Getenv(examplepg.URLVar); url != "" {
		return openPostgres(ctx, url, otelp)
	}
	return &backend{
		name:  "the in-memory event store",
		store: &eventsource.MemoryStore{},
		close: func(context.Context) error { return nil },
	}, nil
}

// openPostgres returns a [pgstore.Store] in a new schema of its own, which
// close drops, with everything in it, before it closes the pool.
func openPostgres(ctx context.Context, url string, otelp *providers) (*backend, error) {
	pool, schema, drop, err := examplepg.Open(ctx, url, "orders_example_", 4)
	if err != nil {
		return nil, err
	}
	store, err := pgstore.New(pool,
		pgstore.WithSchema(schema),
		pgstore.WithTracerProvider(otelp.tp),
		pgstore.WithMeterProvider(otelp.mp))
	if err == nil {
		err = store.Migrate(ctx)
	}
	if err != nil {
		return nil, errors.Join(err, drop(context.WithoutCancel(ctx)))
	}
	return &backend{name: "PostgreSQL (eventsource/pgstore)", store: store, ready: hexagonal.PingCheck(pool), close: once(drop)}, nil
}
