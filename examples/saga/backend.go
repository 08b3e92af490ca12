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

	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// postgresURLVar names the environment variable that selects PostgreSQL.
const postgresURLVar = "PATTERNS_POSTGRES_URL"

// backend is where the run keeps its sagas.
type backend struct {
	name  string // for the output
	log   saga.Log
	close func(context.Context) error
}

// openBackend returns an in-memory log, or a PostgreSQL one when
// PATTERNS_POSTGRES_URL is set.
func openBackend(ctx context.Context, otelp *providers) (*backend, error) {
	if url := os.Getenv(postgresURLVar); url != "" {
		return openPostgres(ctx, url, otelp)
	}
	return &backend{
		name:  "the in-memory log",
		log:   &saga.MemoryLog{},
		close: func(context.Context) error { return nil },
	}, nil
}

// openPostgres returns a [pglog.Log] in a new schema of its own, which
// close drops, with everything in it, before it closes the pool.
func openPostgres(ctx context.Context, url string, otelp *providers) (*backend, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", postgresURLVar, err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	schema := "saga_example_" + hex.EncodeToString(suffix[:])
	drop := func(ctx context.Context) error {
		defer pool.Close()
		_, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		return err
	}

	log, err := pglog.New(pool,
		pglog.WithSchema(schema),
		pglog.WithTracerProvider(otelp.tp),
		pglog.WithMeterProvider(otelp.mp))
	if err == nil {
		err = log.Migrate(ctx)
	}
	if err != nil {
		return nil, errors.Join(err, drop(context.WithoutCancel(ctx)))
	}
	return &backend{name: "PostgreSQL", log: log, close: drop}, nil
}
