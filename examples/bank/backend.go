package main

import (
	"context"
	"errors"
	"os"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/examples/internal/examplepg"
)

// backend is where the run keeps its events and snapshots.
type backend struct {
	name      string // for the output
	store     eventsource.Store
	snapshots eventsource.SnapshotStore
	close     func(context.Context) error
}

// openBackend returns the in-memory store, or a PostgreSQL one when
// PATTERNS_POSTGRES_URL is set.
func openBackend(ctx context.Context, otelp *providers) (*backend, error) {
	if url := os.Getenv(examplepg.URLVar); url != "" {
		return openPostgres(ctx, url, otelp)
	}
	return &backend{
		name:      "the in-memory store",
		store:     &eventsource.MemoryStore{},
		snapshots: &eventsource.MemorySnapshots{},
		close:     func(context.Context) error { return nil },
	}, nil
}

// openPostgres returns a [pgstore.Store] in a new schema of its own, which
// close drops, with everything in it, before it closes the pool. The store
// keeps the snapshots too.
func openPostgres(ctx context.Context, url string, otelp *providers) (*backend, error) {
	// The projection's subscription holds a connection while it runs; the
	// commands need one more.
	pool, schema, drop, err := examplepg.Open(ctx, url, "bank_example_", 4)
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
	return &backend{name: "PostgreSQL", store: store, snapshots: store, close: drop}, nil
}
