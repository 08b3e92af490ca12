package saga_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// Shipment is the data of the package example's saga.
type Shipment struct {
	Order     string
	PaymentID string // set by step "pay"
	Parcel    string // set by step "ship"
}

// An order saga of two steps, the second the pivot: it is started and
// waited for with the typed Start and Wait, whose Result holds the data
// the steps recorded and, for a saga that did not complete, the
// *StepError that made it compensate.
func Example() {
	ctx := context.Background()
	outOfStock := map[string]bool{"A-1002": true}
	def, err := saga.Define("shipment", 1,
		saga.Step[Shipment]{
			Name: "pay",
			Action: func(ctx context.Context, s Shipment) (func(*Shipment), error) {
				fmt.Println("charge", s.Order)
				return func(s *Shipment) { s.PaymentID = "pay-" + s.Order }, nil
			},
			Compensate: func(ctx context.Context, s Shipment) error {
				fmt.Println("refund", s.PaymentID)
				return nil
			},
		},
		saga.Step[Shipment]{
			Name:  "ship",
			Pivot: true, // once shipped, the order is not undone
			Action: func(ctx context.Context, s Shipment) (func(*Shipment), error) {
				if outOfStock[s.Order] {
					return nil, retry.Permanent(errors.New("out of stock"))
				}
				fmt.Println("ship", s.Order)
				return func(s *Shipment) { s.Parcel = "parcel-" + s.Order }, nil
			},
		},
	)
	if err != nil {
		log.Fatal(err)
	}
	o, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithDefinitions(def))
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)

	for _, order := range []string{"A-1001", "A-1002"} {
		id, err := saga.Start(ctx, o, def, Shipment{Order: order}, saga.WithID(order))
		if err != nil {
			log.Fatal(err)
		}
		res, err := saga.Wait(ctx, o, def, id)
		if err != nil {
			log.Fatal(err) // the wait failed: ctx ended, the log is down
		}
		var failed *saga.StepError
		switch {
		case res.Status == saga.Completed:
			fmt.Println(id, "completed:", res.Data.Parcel)
		case errors.As(res.Err, &failed):
			fmt.Printf("%s %s: step %q failed: %s\n", id, res.Status, failed.Step, failed.Message)
		}
	}
	// Output:
	// charge A-1001
	// ship A-1001
	// A-1001 completed: parcel-A-1001
	// charge A-1002
	// refund pay-A-1002
	// A-1002 compensated: step "ship" failed: retry: not retryable after 1 attempt: out of stock
}

// An orchestrator on a log, with the definitions it may have to resume
// and someone to tell when a saga needs attention; Recover at start-up
// resumes what a crash left unfinished. NewOrchestrator names every bad
// option at once.
func ExampleNewOrchestrator() {
	ctx := context.Background()
	def := tripSaga(false)
	sagaLog := &saga.MemoryLog{} // saga/pglog in production
	o, err := saga.NewOrchestrator(sagaLog,
		saga.WithDefinitions(def),
		saga.WithLease(10*time.Second), // a crashed process's sagas resume after 10s
		saga.WithNeedsAttention(func(ctx context.Context, id, name string, err error) {
			log.Printf("saga %s %s needs attention: %v", name, id, err) // page someone
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)
	n, err := o.Recover(ctx)
	fmt.Println("resumed", n, err)

	_, err = saga.NewOrchestrator(nil, saga.WithLease(0), saga.WithOwner(""))
	fmt.Println(err)
	// Output:
	// resumed 0 <nil>
	// saga: NewOrchestrator: nil log
	// WithOwner(""): empty
	// WithLease(0s): under a second
}

// Start takes the data of the definition's type: the compiler rejects
// saga.Start(ctx, o, def, &Trip{}) for a Definition[Trip], which
// Orchestrator.Start, taking any definition, rejects only when it runs.
func ExampleStart() {
	ctx := context.Background()
	o, err := saga.NewOrchestrator(&saga.MemoryLog{})
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)
	def := tripSaga(false)

	id, err := saga.Start(ctx, o, def, Trip{Traveller: "Ada"}, saga.WithID("trip-7"))
	if err != nil {
		log.Fatal(err)
	}
	res, err := saga.Wait(ctx, o, def, id)
	fmt.Println(id, res.Status, err)

	_, err = o.Start(ctx, def, &Trip{Traveller: "Ada"})
	fmt.Println(err)
	_, err = saga.Start(ctx, o, def, Trip{Traveller: "Ada"}, saga.WithID(""))
	fmt.Println(err)
	// Output:
	// book a flight for Ada
	// book a room for Ada
	// trip-7 completed <nil>
	// saga: Start "trip": data is *saga_test.Trip, the definition's data is saga_test.Trip
	// saga: Start "trip": WithID(""): empty
}

// Wait reads a saga's result from the log: here the saga runs in one
// orchestrator and another, sharing the log (in another process, say),
// waits for it.
func ExampleWait() {
	ctx := context.Background()
	sagaLog := &saga.MemoryLog{}
	def := tripSaga(false)
	runner, err := saga.NewOrchestrator(sagaLog)
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Close(ctx)
	watcher, err := saga.NewOrchestrator(sagaLog)
	if err != nil {
		log.Fatal(err)
	}
	defer watcher.Close(ctx)

	id, err := saga.Start(ctx, runner, def, Trip{Traveller: "Grace"})
	if err != nil {
		log.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := saga.Wait(wctx, watcher, def, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Data.Flight, res.Data.Hotel, res.Err)
	// Output:
	// book a flight for Grace
	// book a room for Grace
	// completed LH 400 room 12 <nil>
}

// A choreography of the payment service: it charges on order.placed and
// publishes payment.charged for the next participant. Each participant
// builds its own choreography, of the same saga name, on a shared bus.
func ExampleNewChoreography() {
	ctx := context.Background()
	bus := cqrs.NewMemoryBus() // cqrs/natsbus across services
	defer bus.Close()
	payments, err := saga.NewChoreography("order", bus)
	if err != nil {
		log.Fatal(err)
	}
	defer payments.Close()
	err = payments.React(ctx, saga.Reaction{
		Name: "charge",
		On:   "order.placed",
		Handle: func(ctx context.Context, m cqrs.Message) (saga.Outcome, error) {
			fmt.Printf("charge for saga %s: %s\n", saga.CorrelationID(m), m.Data)
			return saga.Next("payment.charged", cqrs.Message{Type: "payment.charged", Data: []byte("12.00")}), nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	// The next participant, here in the same process.
	charged := make(chan cqrs.Message, 1)
	sub, err := bus.Subscribe(ctx, "payment.charged", "inventory", func(ctx context.Context, m cqrs.Message) error {
		charged <- m
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	err = bus.Publish(ctx, "order.placed", cqrs.Message{ID: "order-42", Type: "order.placed", Data: []byte("2 books")})
	if err != nil {
		log.Fatal(err)
	}
	m := <-charged
	fmt.Printf("inventory got %s of saga %s: %s\n", m.Type, saga.CorrelationID(m), m.Data)

	_, err = saga.NewChoreography("", nil)
	fmt.Println(err)
	// Output:
	// charge for saga order-42: 2 books
	// inventory got payment.charged of saga order-42: 12.00
	// saga: new choreography "": name must not be empty
	// bus must not be nil
}
