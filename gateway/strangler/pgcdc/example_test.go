package pgcdc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/google/uuid"

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
