package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

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

// A check that reads the global order right after an append waits until
// no transaction that began before the append holds readers back.
func ExampleStore_AwaitVisible() {
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
	appended, err := store.Append(ctx, "order-42", eventsource.Any,
		eventsource.NewEvent{Type: "order.noted.v1", Data: []byte(`{}`)})
	if err != nil {
		log.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second) // a long transaction would keep it waiting
	defer cancel()
	if err := store.AwaitVisible(wait); err != nil {
		log.Fatal(err)
	}
	for e, err := range store.ReadAll(ctx, appended[0].Position-1) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Position, e.StreamID, e.Type) // the appended event first
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

// A service behind a slow or unreliable network bounds how long a
// subscription waits for an answer before it takes its connection for
// dead, and how long an append may stall while it holds the append lock.
func ExampleWithSubscriptionTimeout() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(pool,
		pgstore.WithPollInterval(500*time.Millisecond),
		// A dead connection is reported within 0.5 s + 3 s.
		pgstore.WithSubscriptionTimeout(3*time.Second),
		// A client that stalls inside an append holds the others up
		// for 2 s at most.
		pgstore.WithAppendIdleTimeout(2*time.Second),
	)
	if err != nil {
		log.Fatal(err)
	}
	for e, err := range store.Subscribe(ctx, 0) {
		if err != nil {
			log.Print(err) // a dead connection, say: it goes on with a new one
			continue
		}
		fmt.Println(e.Position, e.Type)
	}
}

// When an aggregate's snapshot encoding changes, a repository of the new
// format ignores the old snapshots and replaces them as it saves; one
// that is wrong can also be dropped, so that the next load replays.
func ExampleStore_DeleteSnapshot() {
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
		eventsource.WithSnapshots(store, 100),
		eventsource.WithSnapshotFormat(2)) // Account changed: format 1 is ignored
	if err != nil {
		log.Fatal(err)
	}
	if err := accounts.DropSnapshot(ctx, "account-7"); err != nil { // through store.DeleteSnapshot
		log.Fatal(err)
	}
}
