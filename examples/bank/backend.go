package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
)

// postgresURLVar names the environment variable that selects PostgreSQL.
const postgresURLVar = "PATTERNS_POSTGRES_URL"

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
	if url := os.Getenv(postgresURLVar); url != "" {
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
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", postgresURLVar, err)
	}
	// The projection's subscription holds a connection while it runs; the
	// commands need one more.
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	schema := "bank_example_" + hex.EncodeToString(suffix[:])
	drop := func(ctx context.Context) error {
		defer pool.Close()
		_, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		return err
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
