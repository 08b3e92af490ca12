package main

import (
	"context"
	"errors"
	"os"

	"github.com/otelpatterns/patterns/examples/internal/examplepg"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// backend is where the run keeps its sagas.
type backend struct {
	name  string // for the output
	log   saga.Log
	close func(context.Context) error
}

// openBackend returns an in-memory log, or a PostgreSQL one when
// PATTERNS_POSTGRES_URL is set.
func openBackend(ctx context.Context, otelp *providers) (*backend, error) {
	if url := os.Getenv(examplepg.URLVar); url != "" {
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
	pool, schema, drop, err := examplepg.Open(ctx, url, "saga_example_", 4)
	if err != nil {
		return nil, err
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
