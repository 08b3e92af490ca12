package pglog_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// Parcel is the data of the example's saga.
type Parcel struct {
	Order    string
	Tracking string // set by step "ship"
}

// A saga on PostgreSQL: an orchestrator runs it, and another, sharing the
// log as another instance of the service would, reads its result from
// the database. The example runs when PATTERNS_POSTGRES_URL names a
// database it may create a schema in (its own, dropped at the end); its
// test checks what it prints then.
func Example() {
	ctx := context.Background()
	url := os.Getenv("PATTERNS_POSTGRES_URL") // postgres://postgres@127.0.0.1:5432/test
	if url == "" {
		fmt.Println("set PATTERNS_POSTGRES_URL to run this example")
		return
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	schema := fmt.Sprintf("pglog_example_%d", time.Now().UnixNano())
	defer pool.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE")

	sagaLog, err := pglog.New(pool, pglog.WithSchema(schema))
	if err != nil {
		log.Fatal(err)
	}
	if err := sagaLog.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	def, err := saga.Define("parcel", 1,
		saga.Step[Parcel]{
			Name: "reserve",
			Action: func(ctx context.Context, p Parcel) (func(*Parcel), error) {
				fmt.Println("reserve", p.Order, "key", saga.IdempotencyKey(ctx))
				return nil, nil
			},
			Compensate: func(ctx context.Context, p Parcel) error { return nil },
		},
		saga.Step[Parcel]{
			Name:  "ship",
			Pivot: true,
			Action: func(ctx context.Context, p Parcel) (func(*Parcel), error) {
				fmt.Println("ship", p.Order)
				return func(p *Parcel) { p.Tracking = "TRK-" + p.Order }, nil
			},
		},
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, owner := range []string{"instance-a", "instance-b"} {
		o, err := saga.NewOrchestrator(sagaLog, saga.WithOwner(owner), saga.WithDefinitions(def))
		if err != nil {
			log.Fatal(err)
		}
		defer o.Close(ctx)
		if owner == "instance-a" {
			if _, err := saga.Start(ctx, o, def, Parcel{Order: "A-1001"}, saga.WithID("A-1001")); err != nil {
				log.Fatal(err)
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := saga.Wait(wctx, o, def, "A-1001")
		cancel()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(owner, "sees", res.Status, res.Data.Tracking)
	}
	_, ts, err := sagaLog.Load(ctx, "A-1001")
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range ts { // the rows of the transitions table
		if t.Status != "" {
			fmt.Println(t.Seq, "status", t.Status)
		} else {
			fmt.Println(t.Seq, t.Step, t.Kind)
		}
	}

	// With PostgreSQL, it prints:
	//
	// reserve A-1001 key A-1001/reserve/forward
	// ship A-1001
	// instance-a sees completed TRK-A-1001
	// instance-b sees completed TRK-A-1001
	// 1 reserve started
	// 2 reserve succeeded
	// 3 ship started
	// 4 ship succeeded
	// 5 status completed
}

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

// A log whose writes never go in batches: through PgBouncer in statement
// mode, which runs no transaction of more than one statement.
func ExampleWithGroupCommit() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@pgbouncer:6432/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	sagaLog, err := pglog.New(pool, pglog.WithGroupCommit(0))
	if err != nil {
		log.Fatal(err)
	}
	var _ saga.Log = sagaLog
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
