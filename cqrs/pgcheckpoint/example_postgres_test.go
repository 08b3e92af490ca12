package pgcheckpoint_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
)

// A read model in PostgreSQL, at PATTERNS_POSTGRES_URL
// (postgres://postgres@127.0.0.1:5432/test?sslmode=disable, say), kept
// exactly once by Store.Project; without it the example does nothing. It
// works in a schema of its own, which it drops. The events come from an
// in-memory store here; a service would use eventsource/pgstore.
func Example() {
	url := os.Getenv("PATTERNS_POSTGRES_URL")
	if url == "" {
		return // needs PostgreSQL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	schema := "example_" + strings.ToLower(rand.Text()[:8]) // unique per run
	cps, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema))
	if err != nil {
		log.Fatal(err)
	}
	if err := cps.Migrate(ctx); err != nil { // creates the schema and the checkpoints table
		log.Fatal(err)
	}
	defer func() { _, _ = pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }()
	if _, err := pool.Exec(ctx, "CREATE TABLE "+schema+".orders_per_customer (customer text PRIMARY KEY, n int NOT NULL)"); err != nil {
		log.Fatal(err)
	}

	events := &eventsource.MemoryStore{}
	for _, customer := range []string{"ada", "bob", "ada"} {
		_, err := events.Append(ctx, "order-"+rand.Text()[:6], eventsource.NoStream, eventsource.NewEvent{
			Type: "order.placed.v1", Metadata: map[string]string{"customer": customer}})
		if err != nil {
			log.Fatal(err)
		}
	}

	// Project runs until its context ends; stop it once the checkpoint
	// reaches the last event (position 3).
	projectCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- cps.Project(projectCtx, "orders-per-customer", events,
			func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
				// A plain increment: the checkpoint moves in this transaction.
				_, err := tx.Exec(ctx, `INSERT INTO `+schema+`.orders_per_customer AS o (customer, n)
VALUES ($1, 1) ON CONFLICT (customer) DO UPDATE SET n = o.n + 1`, e.Metadata["customer"])
				return err
			})
	}()
	for pos := int64(0); pos < 3; pos, _ = cps.LoadCheckpoint(ctx, "orders-per-customer") {
		select {
		case err := <-done: // Project gave up: the checkpoint will not move
			log.Fatal("Project: ", err)
		case <-ctx.Done():
			log.Fatal("the checkpoint did not reach position 3: ", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}

	rows, _ := pool.Query(ctx, "SELECT customer, n FROM "+schema+".orders_per_customer ORDER BY customer")
	var customer string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&customer, &n}, func() error {
		fmt.Println(customer, n)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// With PostgreSQL, it prints:
	//
	// ada 2
	// bob 1
}
