package cqrs_test

import (
	"context"
	"fmt"
	"log"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
)

// PlaceOrder carries the ID its sender chose, so that a retry of the
// sender (after a timeout, say) is recognised.
type PlaceOrder struct {
	RequestID string
	Order     string
}

func (c PlaceOrder) CommandID() string { return c.RequestID }

func ExampleDeduplication() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	bus := cqrs.NewBus()
	// The store is also the command log.
	if err := bus.Use(cqrs.Deduplication(store)); err != nil {
		log.Fatal(err)
	}

	_ = cqrs.HandleCommand(bus, func(ctx context.Context, c PlaceOrder) error {
		// ctx carries the command ID: the append records it with the events.
		_, err := store.Append(ctx, "order-"+c.Order, eventsource.NoStream,
			eventsource.NewEvent{Type: "order.placed.v1"})
		return err
	})

	cmd := PlaceOrder{RequestID: "req-81c2", Order: "42"}
	fmt.Println(bus.Dispatch(ctx, cmd))
	fmt.Println(bus.Dispatch(ctx, cmd)) // a retry: no second order, no error
	n := 0
	for range store.ReadStream(ctx, "order-42", 1) {
		n++
	}
	fmt.Println(n, "event")
	// Output:
	// <nil>
	// <nil>
	// 1 event
}
