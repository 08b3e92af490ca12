package saga_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// Trip is the data of the examples' saga: what to book, and what the
// steps booked.
type Trip struct {
	Traveller string
	Flight    string // set by step "flight"
	Hotel     string // set by step "hotel"
}

// tripSaga defines a trip saga of two steps; the hotel step fails for good
// if failHotel is set.
func tripSaga(failHotel bool) *saga.Definition[Trip] {
	def, err := saga.Define("trip", 1,
		saga.Step[Trip]{
			Name: "flight",
			Action: func(ctx context.Context, t Trip) (func(*Trip), error) {
				fmt.Println("book a flight for", t.Traveller)
				return func(t *Trip) { t.Flight = "LH 400" }, nil
			},
			Compensate: func(ctx context.Context, t Trip) error {
				fmt.Println("cancel flight", t.Flight)
				return nil
			},
		},
		saga.Step[Trip]{
			Name: "hotel",
			Action: func(ctx context.Context, t Trip) (func(*Trip), error) {
				if failHotel {
					fmt.Println("no room for", t.Traveller)
					return nil, retry.Permanent(errors.New("hotel: fully booked"))
				}
				fmt.Println("book a room for", t.Traveller)
				return func(t *Trip) { t.Hotel = "room 12" }, nil
			},
			Compensate: func(ctx context.Context, t Trip) error {
				fmt.Println("cancel", t.Hotel)
				return nil
			},
		},
	)
	if err != nil {
		log.Fatal(err)
	}
	return def
}

// A saga of three steps in sequence, the last one the pivot: once the
// parcel has shipped, the order is not undone. Define checks the
// definition and names every step at fault.
func ExampleDefine() {
	type order struct{ ID, PaymentID string }
	noop := func(ctx context.Context, o order) (func(*order), error) { return nil, nil }
	undo := func(ctx context.Context, o order) error { return nil }

	def, err := saga.Define("order", 1,
		saga.Step[order]{Name: "pay", Action: noop, Compensate: undo},
		saga.Step[order]{Name: "reserve", Action: noop, Compensate: undo},
		saga.Step[order]{Name: "ship", Action: noop, Pivot: true},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(def.Name(), "version", def.Version())

	// Steps with no order between them run in parallel: "reserve" and
	// "notify" both come after "pay". Here "reserve" has no compensation,
	// and "notify" comes after a step that does not exist.
	_, err = saga.Define("order", 2,
		saga.Step[order]{Name: "pay", Action: noop, Compensate: undo},
		saga.Step[order]{Name: "reserve", Action: noop, After: []string{"pay"}},
		saga.Step[order]{Name: "notify", Action: noop, Compensate: undo, After: []string{"pai"}},
	)
	fmt.Println(errors.Is(err, saga.ErrInvalidDefinition))
	fmt.Println(err)
	// Output:
	// order version 1
	// true
	// saga: invalid definition "order": step "notify": After names unknown step "pai"
}

// Start records the saga in the log and runs it in the background; Wait
// waits for its end.
func ExampleOrchestrator_Start() {
	ctx := context.Background()
	o, err := saga.NewOrchestrator(&saga.MemoryLog{})
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)

	// WithID makes the saga's id the caller's: starting the saga for one
	// trip twice fails with ErrExists instead of booking twice.
	def := tripSaga(false)
	id, err := o.Start(ctx, def, Trip{Traveller: "Ada"}, saga.WithID("trip-1"))
	if err != nil {
		log.Fatal(err)
	}
	status, err := o.Wait(ctx, id)
	fmt.Println(id, status, err)

	_, err = o.Start(ctx, def, Trip{Traveller: "Ada"}, saga.WithID("trip-1"))
	fmt.Println(errors.Is(err, saga.ErrExists))
	// Output:
	// book a flight for Ada
	// book a room for Ada
	// trip-1 completed <nil>
	// true
}

// When a step fails for good, Wait returns the status Compensated and the
// error that made the saga compensate, once the compensations have run.
func ExampleOrchestrator_Wait() {
	ctx := context.Background()
	o, err := saga.NewOrchestrator(&saga.MemoryLog{})
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)

	id, err := o.Start(ctx, tripSaga(true), Trip{Traveller: "Grace"})
	if err != nil {
		log.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	status, err := o.Wait(wctx, id)
	fmt.Println(status)
	fmt.Println(err)
	// Output:
	// book a flight for Grace
	// no room for Grace
	// cancel flight LH 400
	// compensated
	// step "hotel": retry: not retryable after 1 attempt: hotel: fully booked
}

// A process that stops while a step runs leaves the saga unfinished in the
// log; the next orchestrator on the log resumes it with Recover. Here the
// first orchestrator is closed with an expired context, which cancels the
// attempt in flight instead of waiting for it; its outcome is then unknown,
// and since the step is Idempotent, the second orchestrator makes it again.
// (A MemoryLog lives as long as the process; saga/pglog keeps sagas across
// restarts.)
func ExampleOrchestrator_Recover() {
	ctx := context.Background()
	sagas := &saga.MemoryLog{}
	started := make(chan struct{})
	def, err := saga.Define("report", 1, saga.Step[string]{
		Name:       "render",
		Idempotent: true,
		Action: func(ctx context.Context, name string) (func(*string), error) {
			info, _ := saga.StepFromContext(ctx)
			fmt.Printf("render %s, attempt %d\n", name, info.Attempt)
			if info.Attempt == 1 {
				close(started)
				<-ctx.Done() // a slow attempt, cut short
				return nil, ctx.Err()
			}
			return nil, nil
		},
		Compensate: func(ctx context.Context, name string) error { return nil },
	})
	if err != nil {
		log.Fatal(err)
	}

	first, err := saga.NewOrchestrator(sagas)
	if err != nil {
		log.Fatal(err)
	}
	id, err := first.Start(ctx, def, "q3-sales")
	if err != nil {
		log.Fatal(err)
	}
	<-started
	expired, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	fmt.Println("close:", first.Close(expired))

	// A restarted process registers its definitions, then recovers.
	second, err := saga.NewOrchestrator(sagas, saga.WithDefinitions(def))
	if err != nil {
		log.Fatal(err)
	}
	defer second.Close(ctx)
	n, err := second.Recover(ctx)
	if err != nil {
		log.Fatal(err)
	}
	status, err := second.Wait(ctx, id)
	fmt.Println("resumed", n, "saga:", status, err)
	// Output:
	// render q3-sales, attempt 1
	// close: context deadline exceeded
	// render q3-sales, attempt 2
	// resumed 1 saga: completed <nil>
}

// A step passes its idempotency key to the services it calls, so that a
// request repeated after a lost reply, a timeout or a crash is applied
// once. The key is the same for every attempt of one step's action (or
// compensation) in one saga.
func ExampleIdempotencyKey() {
	ctx := context.Background()
	attempts := 0
	def, err := saga.Define("payment", 1, saga.Step[int]{
		Name: "charge",
		// Two attempts, 1ms apart.
		Retry: retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(retry.Constant(time.Millisecond))),
		Action: func(ctx context.Context, cents int) (func(*int), error) {
			attempts++
			fmt.Printf("attempt %d: charge %d with Idempotency-Key %s\n", attempts, cents, saga.IdempotencyKey(ctx))
			if attempts == 1 {
				return nil, errors.New("connection reset") // transient: retried
			}
			return nil, nil
		},
		Compensate: func(ctx context.Context, cents int) error { return nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	o, err := saga.NewOrchestrator(&saga.MemoryLog{})
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)
	id, err := o.Start(ctx, def, 1250, saga.WithID("order-7"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(o.Wait(ctx, id))
	// Output:
	// attempt 1: charge 1250 with Idempotency-Key order-7/charge/forward
	// attempt 2: charge 1250 with Idempotency-Key order-7/charge/forward
	// completed <nil>
}

// The context of an action or compensation tells which saga, step, phase
// and attempt it runs for.
func ExampleStepFromContext() {
	ctx := context.Background()
	show := func(ctx context.Context) {
		s, _ := saga.StepFromContext(ctx)
		fmt.Printf("saga %s (%s), step %s, %s phase, attempt %d\n", s.SagaID, s.Saga, s.Step, s.Phase, s.Attempt)
	}
	def, err := saga.Define("signup", 1,
		saga.Step[string]{
			Name: "account",
			Action: func(ctx context.Context, email string) (func(*string), error) {
				show(ctx)
				return nil, nil
			},
			Compensate: func(ctx context.Context, email string) error {
				show(ctx)
				return nil
			},
		},
		saga.Step[string]{
			Name: "welcome-mail",
			Action: func(ctx context.Context, email string) (func(*string), error) {
				show(ctx)
				return nil, retry.Permanent(errors.New("mailbox does not exist"))
			},
			Compensate: func(ctx context.Context, email string) error { return nil },
		},
	)
	if err != nil {
		log.Fatal(err)
	}
	o, err := saga.NewOrchestrator(&saga.MemoryLog{})
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)
	id, err := o.Start(ctx, def, "ada@example.com", saga.WithID("signup-1"))
	if err != nil {
		log.Fatal(err)
	}
	status, _ := o.Wait(ctx, id)
	fmt.Println(status)

	_, ok := saga.StepFromContext(ctx)
	fmt.Printf("outside a step: %v, key %q\n", ok, saga.IdempotencyKey(ctx))
	// Output:
	// saga signup-1 (signup), step account, forward phase, attempt 1
	// saga signup-1 (signup), step welcome-mail, forward phase, attempt 1
	// saga signup-1 (signup), step account, compensate phase, attempt 1
	// compensated
	// outside a step: false, key ""
}

// A MemoryLog keeps each saga and its transitions, as every Log does:
// Load shows what the orchestrator recorded, one write per transition.
func ExampleMemoryLog() {
	ctx := context.Background()
	sagas := &saga.MemoryLog{}
	o, err := saga.NewOrchestrator(sagas)
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)
	id, err := o.Start(ctx, tripSaga(true), Trip{Traveller: "Linus"}, saga.WithID("trip-2"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := o.Wait(ctx, id); err == nil {
		log.Fatal("the saga completed; want it compensated")
	}

	rec, transitions, err := sagas.Load(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.ID, rec.Name, rec.Status)
	for _, t := range transitions {
		if t.Status != "" {
			fmt.Printf("%2d status %s\n", t.Seq, t.Status)
			continue
		}
		fmt.Printf("%2d %s %s %s\n", t.Seq, t.Step, t.Phase, t.Kind)
	}
	// Output:
	// book a flight for Linus
	// no room for Linus
	// cancel flight LH 400
	// trip-2 trip compensated
	//  1 flight forward started
	//  2 flight forward succeeded
	//  3 hotel forward started
	//  4 hotel forward failed
	//  5 status compensating
	//  6 flight compensate started
	//  7 flight compensate succeeded
	//  8 status compensated
}

// refundingTrip defines a trip saga whose hotel step fails for good and
// whose flight cancellation fails while the airline's service is down.
func refundingTrip(airlineDown *bool) *saga.Definition[Trip] {
	def, err := saga.Define("trip", 1,
		saga.Step[Trip]{
			Name: "flight",
			Action: func(ctx context.Context, t Trip) (func(*Trip), error) {
				return func(t *Trip) { t.Flight = "LH 400" }, nil
			},
			Compensate: func(ctx context.Context, t Trip) error {
				if *airlineDown {
					return retry.Permanent(errors.New("airline: refunds suspended"))
				}
				fmt.Println("cancel flight", t.Flight)
				return nil
			},
		},
		saga.Step[Trip]{
			Name: "hotel",
			Action: func(ctx context.Context, t Trip) (func(*Trip), error) {
				return nil, retry.Permanent(errors.New("hotel: fully booked"))
			},
			Compensate: func(ctx context.Context, t Trip) error { return nil },
		},
	)
	if err != nil {
		log.Fatal(err)
	}
	return def
}

// A compensation that cannot succeed stops the saga in status
// NeedsAttention, and WithNeedsAttention tells someone. Once the cause is
// fixed, Retry takes the saga up where it stopped: here the flight is
// cancelled, and the saga ends compensated.
func ExampleOrchestrator_Retry() {
	ctx := context.Background()
	airlineDown := true
	def := refundingTrip(&airlineDown)
	o, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithDefinitions(def),
		saga.WithNeedsAttention(func(ctx context.Context, id, name string, err error) {
			fmt.Println("needs attention:", id, err)
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)

	id, err := o.Start(ctx, def, Trip{Traveller: "Ada"}, saga.WithID("trip-7"))
	if err != nil {
		log.Fatal(err)
	}
	status, _ := o.Wait(ctx, id)
	fmt.Println(status)

	airlineDown = false // the airline is back
	if err := o.Retry(ctx, id); err != nil {
		log.Fatal(err)
	}
	status, _ = o.Wait(ctx, id)
	fmt.Println(status)
	// Output:
	// needs attention: trip-7 compensation of step "flight": retry: not retryable after 1 attempt: airline: refunds suspended; left in effect: steps ["flight"]
	// needs_attention
	// cancel flight LH 400
	// compensated
}

// When a person has dealt with a saga that needs attention themselves (the
// flight refunded by phone, say), Resolve records it, with the reason: the
// saga's status becomes Resolved, for good.
func ExampleOrchestrator_Resolve() {
	ctx := context.Background()
	airlineDown := true
	def := refundingTrip(&airlineDown)
	sagas := &saga.MemoryLog{}
	o, err := saga.NewOrchestrator(sagas, saga.WithDefinitions(def))
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)

	id, err := o.Start(ctx, def, Trip{Traveller: "Grace"}, saga.WithID("trip-8"))
	if err != nil {
		log.Fatal(err)
	}
	status, _ := o.Wait(ctx, id)
	fmt.Println(status)

	if err := o.Resolve(ctx, id, "refunded by phone, ticket 4711"); err != nil {
		log.Fatal(err)
	}
	rec, ts, err := sagas.Load(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	last := ts[len(ts)-1]
	fmt.Println(rec.Status, last.Error)
	// Output:
	// needs_attention
	// resolved refunded by phone, ticket 4711
}
