package cqrs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/retry"
)

// SubmitOrder is a command; OrderTotal a query.
type SubmitOrder struct {
	Order string
	Total int
}

type OrderTotal struct{ Order string }

// The whole flow in one process: a command handler appends an event to
// the event store, the relay publishes it to the bus, a consumer group
// keeps a read model, and a query reads it.
func Example() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	events := cqrs.NewMemoryBus()
	defer events.Close()

	// The read model, kept by the "totals" consumer group.
	var mu sync.Mutex
	totals := map[string]string{}
	updated := make(chan struct{}, 1)
	sub, err := events.Subscribe(ctx, "orders", "totals", func(ctx context.Context, m cqrs.Message) error {
		mu.Lock()
		defer mu.Unlock()
		totals[m.Metadata["order"]] = string(m.Data)
		updated <- struct{}{}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	// The relay publishes every committed event (the outbox).
	relay, err := cqrs.NewRelay("outbox", store, events, &cqrs.MemoryCheckpoints{},
		func(eventsource.Event) string { return "orders" })
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = relay.Run(runCtx) }()

	// Commands change the store; queries read the read model.
	bus := cqrs.NewBus()
	err = cqrs.HandleCommand(bus, func(ctx context.Context, c SubmitOrder) error {
		_, err := store.Append(ctx, "order-"+c.Order, eventsource.NoStream, eventsource.NewEvent{
			Type:     "order.placed.v1",
			Data:     fmt.Appendf(nil, "%d", c.Total),
			Metadata: map[string]string{"order": c.Order},
		})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	err = cqrs.HandleQuery(bus, func(ctx context.Context, q OrderTotal) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return totals[q.Order], nil
	})
	if err != nil {
		log.Fatal(err)
	}

	if err := bus.Dispatch(ctx, SubmitOrder{Order: "42", Total: 1200}); err != nil {
		log.Fatal(err)
	}
	<-updated // the read model is eventually consistent
	total, err := cqrs.Ask[OrderTotal, string](ctx, bus, OrderTotal{"42"})
	fmt.Println(total, err)
	// Output: 1200 <nil>
}

// NewBus takes where its spans and metrics go; with no options, the
// global providers.
func ExampleNewBus() {
	bus := cqrs.NewBus() // or cqrs.NewBus(cqrs.WithTracerProvider(tp), cqrs.WithMeterProvider(mp))
	err := bus.Dispatch(context.Background(), SubmitOrder{Order: "1"})
	fmt.Println(errors.Is(err, cqrs.ErrNoHandler))
	fmt.Println(err)
	// Output:
	// true
	// cqrs: no handler for command cqrs_test.SubmitOrder
}

// Middleware wraps every handler registered after it; the first is the
// outermost.
func ExampleBus_Use() {
	bus := cqrs.NewBus()
	trace := func(name string) cqrs.Middleware {
		return func(next cqrs.HandlerFunc) cqrs.HandlerFunc {
			return func(ctx context.Context, msg any) (any, error) {
				fmt.Println("enter", name)
				defer fmt.Println("leave", name)
				return next(ctx, msg)
			}
		}
	}
	if err := bus.Use(trace("outer"), trace("inner")); err != nil {
		log.Fatal(err)
	}
	_ = cqrs.HandleCommand(bus, func(ctx context.Context, c SubmitOrder) error {
		fmt.Println("handle", c.Order)
		return nil
	})
	_ = bus.Dispatch(context.Background(), SubmitOrder{Order: "7"})

	fmt.Println(bus.Use(nil))
	// Output:
	// enter outer
	// enter inner
	// handle 7
	// leave inner
	// leave outer
	// cqrs: Bus.Use: middleware 0 (of 1) is nil
}

// A command type has one handler; registering a second is an error.
func ExampleHandleCommand() {
	bus := cqrs.NewBus()
	place := func(ctx context.Context, c SubmitOrder) error {
		if c.Total <= 0 {
			return fmt.Errorf("order %s: total must be positive", c.Order)
		}
		return nil // in a real service: load the aggregate, decide, save
	}
	fmt.Println(cqrs.HandleCommand(bus, place))
	fmt.Println(cqrs.HandleCommand(bus, place))
	// Output:
	// <nil>
	// cqrs: duplicate handler for cqrs_test.SubmitOrder
}

// Dispatch returns the handler's error, or one matching ErrNoHandler.
func ExampleBus_Dispatch() {
	ctx := context.Background()
	bus := cqrs.NewBus()
	_ = cqrs.HandleCommand(bus, func(ctx context.Context, c SubmitOrder) error {
		if c.Total <= 0 {
			return fmt.Errorf("order %s: total must be positive", c.Order)
		}
		return nil
	})
	fmt.Println(bus.Dispatch(ctx, SubmitOrder{Order: "1", Total: 10}))
	fmt.Println(bus.Dispatch(ctx, SubmitOrder{Order: "2"}))
	fmt.Println(bus.Dispatch(ctx, OrderTotal{"1"})) // a query type, not a command
	// Output:
	// <nil>
	// order 2: total must be positive
	// cqrs: no handler for command cqrs_test.OrderTotal
}

// A query handler answers with a value of its own type.
func ExampleHandleQuery() {
	bus := cqrs.NewBus()
	err := cqrs.HandleQuery(bus, func(ctx context.Context, q OrderTotal) (int, error) {
		return 1200, nil // in a real service: read a projection
	})
	fmt.Println(err)
	// Output: <nil>
}

// Ask names the query and answer types; the answer is typed.
func ExampleAsk() {
	ctx := context.Background()
	bus := cqrs.NewBus()
	_ = cqrs.HandleQuery(bus, func(ctx context.Context, q OrderTotal) (int, error) {
		if q.Order != "42" {
			return 0, fmt.Errorf("order %s: not found", q.Order)
		}
		return 1200, nil
	})
	total, err := cqrs.Ask[OrderTotal, int](ctx, bus, OrderTotal{"42"})
	fmt.Println(total, err)
	_, err = cqrs.Ask[OrderTotal, int](ctx, bus, OrderTotal{"7"})
	fmt.Println(err)
	_, err = cqrs.Ask[OrderTotal, string](ctx, bus, OrderTotal{"42"}) // the wrong answer type
	fmt.Println(err)
	// Output:
	// 1200 <nil>
	// order 7: not found
	// cqrs: the handler of cqrs_test.OrderTotal answers int, not string
}

// Logging logs each command and query with its type and duration.
func ExampleLogging() {
	// Without the time and duration, so that the output is the same each run.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{}
			}
			return a
		},
	}))
	bus := cqrs.NewBus()
	_ = bus.Use(cqrs.Logging(logger))
	_ = cqrs.HandleCommand(bus, func(ctx context.Context, c SubmitOrder) error {
		if c.Total <= 0 {
			return errors.New("total must be positive")
		}
		return nil
	})
	_ = bus.Dispatch(context.Background(), SubmitOrder{Order: "1", Total: 5})
	_ = bus.Dispatch(context.Background(), SubmitOrder{Order: "2"})
	// Output:
	// level=INFO msg="cqrs: handled" type=cqrs_test.SubmitOrder
	// level=ERROR msg="cqrs: handling failed" type=cqrs_test.SubmitOrder error="total must be positive"
}

// Retrying handles a command again after a failure: here a concurrency
// conflict, which a fresh load of the aggregate resolves.
func ExampleRetrying() {
	bus := cqrs.NewBus()
	_ = bus.Use(cqrs.Retrying(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(retry.Constant(time.Millisecond)))))
	attempts := 0
	_ = cqrs.HandleCommand(bus, func(ctx context.Context, c SubmitOrder) error {
		attempts++
		if attempts < 2 {
			return eventsource.ErrConcurrencyConflict
		}
		return nil
	})
	err := bus.Dispatch(context.Background(), SubmitOrder{Order: "1", Total: 5})
	fmt.Println(err, "after", attempts, "attempts")
	// Output: <nil> after 2 attempts
}

// A message whose handler keeps failing is delivered MaxDeliver times,
// then handed to the dead-letter function.
func ExampleWithDeadLetter() {
	ctx := context.Background()
	bus := cqrs.NewMemoryBus()
	defer bus.Close()
	parked := make(chan string)
	sub, err := bus.Subscribe(ctx, "orders", "billing",
		func(ctx context.Context, m cqrs.Message) error {
			fmt.Println("delivery", m.Delivery)
			return errors.New("billing is down")
		},
		cqrs.WithMaxDeliver(3),
		cqrs.WithRedeliveryBackoff(func(n int) time.Duration { return time.Millisecond }),
		cqrs.WithDeadLetter(func(ctx context.Context, m cqrs.Message, err error) {
			parked <- fmt.Sprintf("parked %s: %v", m.ID, err)
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	if err := bus.Publish(ctx, "orders", cqrs.Message{ID: "order-42"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-parked)
	// Output:
	// delivery 1
	// delivery 2
	// delivery 3
	// parked order-42: billing is down
}

// A relay or runner keeps its place in a checkpoint store; the memory one
// forgets it when the process ends.
func ExampleMemoryCheckpoints() {
	ctx := context.Background()
	var cps cqrs.MemoryCheckpoints
	pos, _ := cps.LoadCheckpoint(ctx, "outbox")
	fmt.Println("before:", pos)
	_ = cps.SaveCheckpoint(ctx, "outbox", 17)
	pos, _ = cps.LoadCheckpoint(ctx, "outbox")
	fmt.Println("after:", pos)
	// Output:
	// before: 0
	// after: 17
}

// An event the bus can never carry (here: a topic function that returns
// an invalid topic) stops the relay, unless a dead-letter function takes
// it.
func ExampleWithRelayDeadLetter() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	_, _ = store.Append(ctx, "order-1", eventsource.NoStream, eventsource.NewEvent{Type: "order.placed.v1"})
	bus := cqrs.NewMemoryBus()
	defer bus.Close()
	cps := &cqrs.MemoryCheckpoints{}
	relay, err := cqrs.NewRelay("outbox", store, bus, cps,
		func(eventsource.Event) string { return "" }, // no topic: ErrInvalidMessage
		cqrs.WithRelayDeadLetter(func(ctx context.Context, e eventsource.Event, err error) error {
			fmt.Println("set aside:", e.Type, strings.Contains(err.Error(), "invalid message"))
			return nil // the relay moves past it
		}))
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	for pos := int64(0); pos < 1; pos, _ = cps.LoadCheckpoint(ctx, "outbox") {
		time.Sleep(time.Millisecond)
	}
	stop()
	fmt.Println(<-done)
	// Output:
	// set aside: order.placed.v1 true
	// <nil>
}
