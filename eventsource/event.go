package eventsource

import (
	"math"
	"time"

	"github.com/google/uuid"
)

// Event is an event as a [Store] keeps it: encoded, with the facts the
// store assigns.
type Event struct {
	// ID identifies the event; appending an ID that is already stored is a
	// no-op, so a retried append does not duplicate events.
	ID uuid.UUID
	// StreamID names the stream (usually one aggregate instance).
	StreamID string
	// Version is the event's place in its stream, from 1.
	Version int64
	// Position is the event's place in the store's global order, from 1.
	// Positions increase in the order readers see events; there may be
	// gaps, which are never filled later.
	Position int64
	// Type names the event's Go type in a Registry.
	Type string
	// Data is the encoded event.
	Data []byte
	// Metadata holds string pairs, such as the W3C trace context of the
	// append ("traceparent", "tracestate"), so a reader can link to it.
	Metadata map[string]string
	// RecordedAt is when the store recorded the event.
	RecordedAt time.Time
}

// NewEvent is an event to append: its ID, type, encoded data and metadata.
// The store fills in the rest. A zero ID gets a new random one.
type NewEvent struct {
	ID       uuid.UUID
	Type     string
	Data     []byte
	Metadata map[string]string
}

// ExpectedVersion is the stream version an append expects to find, for
// optimistic concurrency: [Any], [NoStream], or an exact version (the
// version of the stream's last event, as loaded).
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version.
	Any ExpectedVersion = -1
	// NoStream appends only to a stream that has no events yet.
	NoStream ExpectedVersion = 0
)

// Exact expects the stream's last event to have version v; Exact(0) is
// [NoStream]. A negative v is invalid, and an append with it fails with an
// error matching [ErrInvalidArgument]: Exact(-1) is not [Any], although
// Any's value is -1, so that a version computed wrongly is caught instead
// of appending with no check.
func Exact(v int64) ExpectedVersion {
	if v < 0 {
		return negativeExact
	}
	return ExpectedVersion(v)
}

// negativeExact is what Exact makes of a negative version: a value below
// Any, which checkAppend rejects.
const negativeExact ExpectedVersion = math.MinInt64

// MaxBatch is the most events one Append may write.
const MaxBatch = 10_000
