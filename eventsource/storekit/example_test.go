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
