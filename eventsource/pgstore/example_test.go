package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
)

// A service opens a pool, creates the store's tables at start-up and
// appends events with optimistic concurrency.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders?pool_max_conns=10")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	store, err := pgstore.New(pool, pgstore.WithSchema("orders_events"))
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil { // idempotent; safe from every instance
		log.Fatal(err)
	}

	events, err := store.Append(ctx, "order-42", eventsource.NoStream,
		eventsource.NewEvent{Type: "order.placed.v1", Data: []byte(`{"total":1200}`)},
		eventsource.NewEvent{Type: "order.paid.v1", Data: []byte(`{"amount":1200}`)},
	)
	if errors.Is(err, eventsource.ErrConcurrencyConflict) {
		log.Print("order-42 exists already") // load it and decide again
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range events {
		fmt.Printf("%s version %d at position %d\n", e.Type, e.Version, e.Position)
	}
}

// A batch job reads every event in the global order, from a checkpoint;
// the read streams in pages rather than loading everything.
func ExampleStore_ReadAll() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(pool, pgstore.WithSchema("orders_events"))
	if err != nil {
		log.Fatal(err)
	}

	var checkpoint int64 // loaded from where the job keeps it
	for e, err := range store.ReadAll(ctx, checkpoint) {
		if err != nil {
			log.Fatal(err) // start again from the checkpoint
		}
		fmt.Println(e.Position, e.StreamID, e.Type)
		checkpoint = e.Position // no event below it can appear later
	}
}

// A projection follows the store: it catches up from its checkpoint, then
// receives events as they are committed, until the process is told to
// stop.
func ExampleStore_Subscribe() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(pool, pgstore.WithSchema("orders_events"))
	if err != nil {
		log.Fatal(err)
	}

	var checkpoint int64 // loaded from the projection's own table
	for e, err := range store.Subscribe(ctx, checkpoint) {
		if err != nil {
			log.Print(err) // the database is unreachable: Subscribe tries again
			continue
		}
		// Update the read model and the checkpoint in one transaction.
		fmt.Println(e.Position, e.StreamID, e.Type)
		checkpoint = e.Position
	}
	// ctx is done: the subscription has released its connection.
}

// The store keeps snapshots for a repository too.
func ExampleStore_SaveSnapshot() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(pool)
	if err != nil {
		log.Fatal(err)
	}
	reg := eventsource.NewRegistry()
	eventsource.Register[Deposited](reg, "account.deposited.v1")
	accounts, err := eventsource.NewRepository(store, reg, func() *Account { return &Account{} },
		eventsource.WithSnapshots(store, 100)) // a snapshot every 100 events
	if err != nil {
		log.Fatal(err)
	}
	acc, err := accounts.Load(ctx, "account-7")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(acc.Balance)
}
