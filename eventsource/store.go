package eventsource

import (
	"context"
	"iter"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Store keeps streams of events: [MemoryStore] in memory,
// [github.com/otelpatterns/patterns/eventsource/pgstore] in PostgreSQL.
//
// Implementations are safe for concurrent use and pass the conformance
// suite [github.com/otelpatterns/patterns/eventsource/storetest]; the
// helpers of [github.com/otelpatterns/patterns/eventsource/storekit]
// check their arguments and prepare their events as every store does.
// Every method returns promptly with ctx's error once ctx is done. The
// events they return are the caller's to keep and change.
type Store interface {
	// Append adds events to the end of a stream, atomically: all of them or
	// none. If the stream's version is not what expected says, it appends
	// nothing and returns an error matching ErrConcurrencyConflict (a
	// *ConflictError). Bad arguments (see ErrInvalidArgument) make it
	// append nothing and return an error matching ErrInvalidArgument. Events
	// whose ID is already stored in this stream are skipped, so retrying an
	// append that may have succeeded is safe; if all are already stored,
	// Append returns them as stored and checks no version. An event whose
	// ID is stored in another stream makes Append add nothing and return an
	// error matching ErrEventIDTaken. It returns the events as stored,
	// with versions and positions.
	//
	// If ctx carries a command ID (see WithCommandID), Append records
	// the pair (command ID, streamID) in the transaction that appends the
	// events, and checks it first: if the pair is recorded already, it
	// appends nothing and returns an error matching ErrDuplicateCommand,
	// before looking at event IDs or versions. A command may so append once
	// to each of several streams; a second append of one command to one
	// stream is taken for a retry. An append that fails records nothing;
	// one whose events are all stored already records the pair too. A
	// command ID that CheckCommandID rejects makes Append fail with an
	// error matching ErrInvalidArgument.
	Append(ctx context.Context, streamID string, expected ExpectedVersion, events ...NewEvent) ([]Event, error)

	// ReadStream yields a stream's events with a version of fromVersion or
	// more, in version order, reading as it goes rather than loading the
	// whole stream. A stream with no events yields nothing.
	ReadStream(ctx context.Context, streamID string, fromVersion int64) iter.Seq2[Event, error]

	// ReadAll yields the events whose position is greater than
	// afterPosition, in increasing position order, each once, and ends
	// where the store's readable order ends when the read reaches it: it
	// yields only committed events, and never one while an event of a
	// lower position may still be committed. So positions a reader has
	// passed are never filled in later, and a reader that stores the last
	// position it handled and reads on from there misses nothing.
	//
	// The readable order may end before the last committed event: a
	// store may hold back events committed while a transaction that could
	// still commit events below them is running, until it ends (pgstore
	// holds back the events committed after the oldest transaction
	// running on its server began; see its documentation, and its
	// AwaitVisible for a reader that must see its own appends). The
	// memory store holds nothing back: a read yields every event
	// committed when it reaches it.
	ReadAll(ctx context.Context, afterPosition int64) iter.Seq2[Event, error]

	// Subscribe yields every event whose position is greater than
	// afterPosition, like ReadAll, and then waits for new events and yields
	// them as they become readable (committed, and not held back, as
	// ReadAll says), until ctx is done, when the sequence ends
	// without an error. Delivery is at least once: a subscriber that
	// resumes from its stored position sees again the events it handled
	// after storing it.
	Subscribe(ctx context.Context, afterPosition int64) iter.Seq2[Event, error]
}

// prepareAppend is storekit.PrepareAppend, which documents it.
func prepareAppend(ctx context.Context, events []NewEvent) []NewEvent {
	out := make([]NewEvent, len(events))
	carrier := propagation.MapCarrier{}
	propagator().Inject(ctx, carrier)
	for i, e := range events {
		if e.ID == uuid.Nil {
			e.ID = uuid.New()
		}
		if len(carrier) > 0 {
			md := make(map[string]string, len(e.Metadata)+len(carrier))
			for k, v := range e.Metadata {
				md[k] = v
			}
			for k, v := range carrier {
				if _, ok := md[k]; !ok {
					md[k] = v
				}
			}
			e.Metadata = md
		}
		out[i] = e
	}
	return out
}

// TraceContext returns the context of the append that recorded e, from its
// metadata, for a link: trace.LinkFromContext(eventsource.TraceContext(ctx, e)).
// Stores write it when they append (see
// [github.com/otelpatterns/patterns/eventsource/storekit.PrepareAppend]),
// through the global propagator ([otel.GetTextMapPropagator]), or the W3C
// trace context when the service has set none; TraceContext reads it with
// the same propagator.
func TraceContext(ctx context.Context, e Event) context.Context {
	return propagator().Extract(ctx, propagation.MapCarrier(e.Metadata))
}

// propagator is the global propagator, or the W3C trace context when the
// service set none (the global one then carries nothing).
func propagator() propagation.TextMapPropagator {
	p := otel.GetTextMapPropagator()
	if len(p.Fields()) == 0 {
		return propagation.TraceContext{}
	}
	return p
}
