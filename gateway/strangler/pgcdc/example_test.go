package pgcdc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
)

// The legacy system's orders table feeds the new system's event store.
// The events' IDs are derived from the transaction's commit LSN and the
// change's index, so that a transaction delivered again (after a crash)
// appends nothing twice: the store skips IDs it has. It needs a
// PostgreSQL with wal_level=logical, so it has no output to check.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var store eventsource.Store = &eventsource.MemoryStore{} // the new system's
	ns := uuid.MustParse("6f1c1a52-8d0e-4c59-9a43-0d7b0f0c2a11")

	c, err := pgcdc.New(os.Getenv("LEGACY_DATABASE_URL"), "orders_to_new", []string{"public.orders"},
		func(ctx context.Context, tx pgcdc.Transaction) error {
			for i, ch := range tx.Changes {
				data, err := json.Marshal(map[string]any{"new": ch.New, "key": ch.Key})
				if err != nil {
					return err
				}
				id := uuid.NewSHA1(ns, fmt.Appendf(nil, "%s/%d", tx.CommitLSN, i))
				stream := fmt.Sprintf("order-%v", ch.Key["id"])
				if _, err := store.Append(ctx, stream, eventsource.Any,
					eventsource.NewEvent{ID: id, Type: "legacy.order." + string(ch.Op), Data: data}); err != nil {
					return err // the transaction is delivered again after a backoff
				}
			}
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
	// Create the slot (and the publication) before the writes that must
	// not be missed: a slot streams what commits after its creation.
	if err := c.Setup(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil { // until interrupted
		log.Fatal(err)
	}
}

func ExampleLSN_String() {
	fmt.Println(pgcdc.LSN(0x16_B374D848))
	// Output: 16/B374D848
}

// A database administrator manages the publication, and the consumer's
// role does not own the tables: the consumer requires the publication
// to exist and to publish its tables, and creates only its slot.
func ExampleWithCreatePublication() {
	c, err := pgcdc.New(os.Getenv("LEGACY_DATABASE_URL"), "billing_cdc",
		[]string{"billing.invoices", "billing.payments"},
		func(ctx context.Context, tx pgcdc.Transaction) error {
			for _, ch := range tx.Changes {
				fmt.Println(tx.CommitLSN, ch.Table, ch.Op, ch.Key)
			}
			return nil
		},
		pgcdc.WithPublication("billing"), // CREATE PUBLICATION billing FOR TABLE ...
		pgcdc.WithCreatePublication(false),
		pgcdc.WithErrorHandler(func(err error) { log.Printf("cdc: %v; reconnecting", err) }))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		log.Fatal(err) // the publication is missing, say
	}
}

// Retiring a consumer for good: its slot would otherwise keep the
// server's write-ahead log forever.
func ExampleConsumer_DropSlot() {
	c, err := pgcdc.New(os.Getenv("LEGACY_DATABASE_URL"), "orders_to_new", []string{"public.orders"},
		func(context.Context, pgcdc.Transaction) error { return nil })
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.DropSlot(ctx); err != nil { // waits while a Run streams from it
		log.Fatal(err)
	}
}

// A table's changes, one transaction at a time: an order placed, paid,
// then deleted. It runs against the PostgreSQL of PATTERNS_POSTGRES_URL
// (which needs wal_level=logical) and does nothing without it, so it
// has no Output line for go test to check; TestExample checks that it
// prints what the comment at its end shows.
func Example() {
	url := os.Getenv("PATTERNS_POSTGRES_URL")
	if url == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	const name = "pgcdc_test_example" // the schema's, the slot's and the publication's
	exec := func(sql string) {
		if _, err := db.Exec(ctx, sql); err != nil {
			log.Fatal(err)
		}
	}
	exec("DROP SCHEMA IF EXISTS " + name + " CASCADE")
	exec("CREATE SCHEMA " + name)
	exec("CREATE TABLE " + name + ".orders (id int PRIMARY KEY, status text NOT NULL)")
	defer exec("DROP SCHEMA " + name + " CASCADE")

	run, stop := context.WithCancel(ctx)
	seen := 0
	c, err := pgcdc.New(url, name, []string{name + ".orders"},
		func(ctx context.Context, tx pgcdc.Transaction) error {
			for _, ch := range tx.Changes {
				fmt.Printf("%s id=%v status=%v\n", ch.Op, ch.Key["id"], ch.New["status"])
			}
			if seen += len(tx.Changes); seen == 3 {
				stop() // a service runs until it is told to stop
			}
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
	// The slot and the publication, before the writes to capture.
	if err := c.Setup(ctx); err != nil {
		log.Fatal(err)
	}
	defer exec("DROP PUBLICATION " + name)
	defer func() {
		if err := c.DropSlot(ctx); err != nil {
			log.Fatal(err)
		}
	}()

	exec("INSERT INTO " + name + ".orders VALUES (1, 'placed')")
	exec("UPDATE " + name + ".orders SET status = 'paid' WHERE id = 1")
	exec("DELETE FROM " + name + ".orders WHERE id = 1")
	if err := c.Run(run); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	// With PostgreSQL, it prints:
	//
	// insert id=1 status=placed
	// update id=1 status=paid
	// delete id=1 status=<nil>
}

// A consumer whose slot vanished under it (a failover to a standby
// without it, an operator's DROP) stops rather than start again from a
// new slot past the changes in between: the caller decides how to catch
// up, then starts afresh.
func ExampleErrSlotLost() {
	c, err := pgcdc.New(os.Getenv("LEGACY_DATABASE_URL"), "orders_to_new", []string{"public.orders"},
		func(context.Context, pgcdc.Transaction) error { return nil })
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Run(ctx); errors.Is(err, pgcdc.ErrSlotLost) {
		// The changes since the slot's last position are gone. Say the
		// loss is known (DropSlot forgets the position), set a new slot
		// up, copy or reconcile the tables' rows in the new system,
		// then Run from the new slot.
		log.Printf("slot lost: %v; resynchronising", err)
		if err := c.DropSlot(ctx); err != nil {
			log.Fatal(err)
		}
		if err := c.Setup(ctx); err != nil {
			log.Fatal(err)
		}
	}
}
