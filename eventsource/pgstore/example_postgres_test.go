package pgstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
)

// An account kept in PostgreSQL: the store's tables are created, the
// account's events appended through a repository, the account loaded back
// from them and the global order read. It runs when PATTERNS_POSTGRES_URL
// names a database (as TestExample does), in a schema of its own that it
// drops at the end; without the variable it prints nothing.
func Example() {
	url := os.Getenv("PATTERNS_POSTGRES_URL") // postgres://user@host:5432/db
	if url == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	schema := fmt.Sprintf("pgstore_example_%d", time.Now().UnixNano())
	defer pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")

	store, err := pgstore.New(pool, pgstore.WithSchema(schema))
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil { // at start-up; idempotent
		log.Fatal(err)
	}
	reg := eventsource.NewRegistry()
	eventsource.Register[Deposited](reg, "account.deposited.v1")
	accounts, err := eventsource.NewRepository(store, reg, func() *Account { return &Account{} },
		eventsource.WithSnapshots(store, 100))
	if err != nil {
		log.Fatal(err)
	}

	acc := accounts.New("account-7")
	_ = eventsource.Raise(acc, Deposited{Amount: 100})
	_ = eventsource.Raise(acc, Deposited{Amount: 20})
	if err := accounts.Save(ctx, acc); err != nil {
		log.Fatal(err)
	}

	acc, err = accounts.Load(ctx, "account-7")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("balance", acc.Balance, "at version", acc.Version())

	// A reader of the global order may be held back by transactions
	// still running; AwaitVisible waits until it can read the events
	// committed so far (positions are made of transaction ids: large,
	// increasing, with gaps).
	if err := store.AwaitVisible(ctx); err != nil {
		log.Fatal(err)
	}
	for e, err := range store.ReadAll(ctx, 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.StreamID, e.Version, e.Type, string(e.Data))
	}
	// With PostgreSQL, it prints:
	//
	// balance 120 at version 2
	// account-7 1 account.deposited.v1 {"Amount":100}
	// account-7 2 account.deposited.v1 {"Amount":20}
}
