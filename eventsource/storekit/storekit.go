package storekit

import (
	"context"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/internal/kit"
)

// The implementations live in package eventsource, whose in-memory stores
// use them too (it cannot import this package); internal/kit hands them
// over. Importing eventsource has set them.
var (
	checkAppend   = kit.CheckAppend.(func(string, eventsource.ExpectedVersion, []eventsource.NewEvent) error)
	checkSnapshot = kit.CheckSnapshot.(func(eventsource.Snapshot) error)
	prepareAppend = kit.PrepareAppend.(func(context.Context, []eventsource.NewEvent) []eventsource.NewEvent)
)

// CheckAppend validates the arguments of [eventsource.Store.Append], so
// that every store rejects the same input; call it first in Append. It
// returns an error matching [eventsource.ErrInvalidArgument] that lists
// every fault: an empty stream id, an expected version below
// [eventsource.Any] (such as a negative [eventsource.Exact]), no events or
// more than [eventsource.MaxBatch], an event without a type. Besides these
// rules of Append, the stream id, event types and metadata must be text
// every store can keep: valid UTF-8 without NUL bytes (PostgreSQL's text
// type holds nothing else).
func CheckAppend(streamID string, expected eventsource.ExpectedVersion, events []eventsource.NewEvent) error {
	return checkAppend(streamID, expected, events)
}

// CheckSnapshot validates a snapshot for
// [eventsource.SnapshotStore.SaveSnapshot], so that every snapshot store
// rejects the same input; call it first in SaveSnapshot. It returns an
// error matching [eventsource.ErrInvalidArgument] for an empty stream id
// or one that is not text a store can keep (see [CheckAppend]), or a
// negative version.
func CheckSnapshot(s eventsource.Snapshot) error {
	return checkSnapshot(s)
}

// PrepareAppend returns a copy of events in which each event without an ID
// has a random one, and whose metadata holds the trace context of ctx, so
// that readers can link their work to the append
// ([eventsource.TraceContext] reads it back): written through the global
// propagator ([go.opentelemetry.io/otel.GetTextMapPropagator]), or as the
// W3C trace context when the service has set none. Keys the caller set are
// kept. Call it in Append after [CheckAppend], under the context of the
// append's span if the store has one; it does not change the caller's
// events.
func PrepareAppend(ctx context.Context, events []eventsource.NewEvent) []eventsource.NewEvent {
	return prepareAppend(ctx, events)
}
