package storekit_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/storekit"
)

// A store's Append rejects bad input before it does any work, with one
// error that lists every fault.
func ExampleCheckAppend() {
	err := storekit.CheckAppend("", eventsource.Exact(-3), []eventsource.NewEvent{{Data: []byte("{}")}})
	fmt.Println(errors.Is(err, eventsource.ErrInvalidArgument))
	fmt.Println(err)
	// Output:
	// true
	// eventsource: invalid argument: empty stream id
	// eventsource: invalid argument: expected a negative exact version
	// eventsource: invalid argument: event 0 has no type
}

// PrepareAppend gives each event an ID and copies the caller's metadata,
// with the trace context of ctx when there is one.
func ExamplePrepareAppend() {
	in := []eventsource.NewEvent{{Type: "order.placed.v1", Metadata: map[string]string{"tenant": "t1"}}}
	out := storekit.PrepareAppend(context.Background(), in)
	fmt.Println(in[0].ID == out[0].ID, out[0].Metadata["tenant"])
	// Output: false t1
}

// The first steps of an Append: check the arguments, then prepare the
// events (IDs and the trace context of the append) before storing them.
func Example() {
	ctx := context.Background()
	events := []eventsource.NewEvent{{Type: "order.placed.v1", Data: []byte(`{"total":42}`)}}
	if err := storekit.CheckAppend("order-7", eventsource.NoStream, events); err != nil {
		fmt.Println(err)
		return
	}
	events = storekit.PrepareAppend(ctx, events)
	for _, e := range events {
		fmt.Println(e.Type, e.ID.Version()) // random (version 4) IDs
	}
	// Output: order.placed.v1 VERSION_4
}
