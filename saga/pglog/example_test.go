package pglog_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// A service opens a pool, creates the log's tables at start-up and hands
// the log to its saga orchestrator.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders?pool_max_conns=10")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	sagaLog, err := pglog.New(pool, pglog.WithSchema("orders_sagas"))
	if err != nil {
		log.Fatal(err)
	}
	if err := sagaLog.Migrate(ctx); err != nil { // idempotent; safe from every instance
		log.Fatal(err)
	}
	var _ saga.Log = sagaLog // give it to the orchestrator
}

// The log used directly, as the orchestrator uses it: an instance creates
// a saga under its lease and records its transitions; after the instance
// dies and the lease expires, another claims the saga, loads it and goes
// on, while the first, should it wake up, is turned away.
func ExampleLog_Claim() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	sagaLog, err := pglog.New(pool)
	if err != nil {
		log.Fatal(err)
	}

	rec := saga.Record{ID: "order-42", Name: "place-order", Version: 1, Data: []byte(`{"total":1200}`)}
	if err := sagaLog.Create(ctx, rec, "instance-a", 30*time.Second); err != nil {
		log.Fatal(err)
	}
	err = sagaLog.Append(ctx, "order-42", "instance-a", saga.Transition{
		Seq: 1, Step: "reserve", Phase: saga.Forward, Kind: saga.Started, Attempt: 1,
	})
	if err != nil {
		log.Fatal(err)
	}

	// Later, on another instance: resume the sagas whose owner is gone.
	recs, err := sagaLog.Claim(ctx, "instance-b", []string{"place-order"}, 30*time.Second, 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		_, transitions, err := sagaLog.Load(ctx, r.ID)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("resuming %s after %d transitions\n", r.ID, len(transitions))
	}

	// instance-a, back from a long pause, finds it lost the saga.
	err = sagaLog.Append(ctx, "order-42", "instance-a", saga.Transition{Seq: 2, Status: saga.Completed})
	if errors.Is(err, saga.ErrLeaseLost) {
		fmt.Println("instance-a: order-42 was taken over; stop running it")
	}
}
