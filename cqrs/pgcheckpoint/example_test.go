package pgcheckpoint_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
)

// A service keeps its checkpoints in PostgreSQL, for a cqrs.Runner.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	checkpoints, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema("read"))
	if err != nil {
		log.Fatal(err)
	}
	if err := checkpoints.Migrate(ctx); err != nil { // idempotent; safe from every instance
		log.Fatal(err)
	}
	events, err := pgstore.New(pool)
	if err != nil {
		log.Fatal(err)
	}
	runner, err := cqrs.NewRunner(events, checkpoints)
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Close()
}

// A read model of order counts per customer, in the database of the
// checkpoints, updated exactly once per event: the increment and the
// checkpoint commit together.
func ExampleStore_Project() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	events, err := pgstore.New(pool)
	if err != nil {
		log.Fatal(err)
	}
	checkpoints, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema("read"))
	if err != nil {
		log.Fatal(err)
	}

	err = checkpoints.Project(ctx, "orders-per-customer", events,
		func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
			if e.Type != "order.placed.v1" {
				return nil
			}
			_, err := tx.Exec(ctx, `INSERT INTO read.orders_per_customer AS o (customer, n)
VALUES ($1, 1) ON CONFLICT (customer) DO UPDATE SET n = o.n + 1`, e.Metadata["customer"])
			return err
		})
	if err != nil {
		log.Fatal(err) // a failed event is rolled back: run Project again to retry it
	}
}

// Rebuilding a read model: empty it and reset its checkpoint in one
// transaction; a running Project replays every event.
func ExampleStore_Rebuild() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	checkpoints, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema("read"))
	if err != nil {
		log.Fatal(err)
	}
	err = checkpoints.Rebuild(ctx, "orders-per-customer", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "TRUNCATE read.orders_per_customer")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}
