package cqrs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
)

// AttrCommandDuplicate is set to true on the cqrs.command span of a
// command that [Deduplication] recognised as handled already.
const AttrCommandDuplicate = attribute.Key("cqrs.command.duplicate")

// Identified is implemented by commands that carry an ID of their own,
// chosen by their sender (an idempotency key), that stays the same when
// the sender retries them. See [Deduplication].
type Identified interface{ CommandID() string }

// Targeted is implemented by commands that append to one stream, which
// they name (the ID of the aggregate they change): [Deduplication] then
// asks the command log whether the command appended to that stream, the
// pair the event store records. See [Deduplication].
type Targeted interface{ CommandStream() string }

// Deduplication is middleware that lets a command take effect at most
// once per stream, however often it is dispatched, with the event
// store's de-duplication by command ID (see [eventsource.WithCommandID]).
// It leaves queries alone.
//
// A command's ID is its own if it is [Identified]. Otherwise, if it is
// dispatched with a context carrying a command ID (an idempotency key a
// transport put there, or the ID of the command whose handler dispatches
// it), its ID is that ID qualified by the command's Go type ("req-7/
// shop.Reserve"; hashed if that exceeds [eventsource.MaxCommandIDLen]), so
// that distinct commands dispatched under one ID, and a command and those
// its handler dispatches, are distinct commands. A command with neither
// passes through untouched. For a command with an ID, the middleware:
//
//  1. rejects an ID that [eventsource.CheckCommandID] refuses, without
//     calling the handler;
//  2. if log is not nil, asks it whether the command has been recorded,
//     and if so returns nil without calling the handler: in the stream
//     it names if it is [Targeted] ([eventsource.CommandLog.CommandRecordedIn]),
//     or else, for an Identified command, in any stream (CommandRecorded);
//     a command that is neither is not looked up;
//  3. calls the handler with the command's ID in its context, so that the
//     handler's appends record it in their transactions;
//  4. returns nil if the handler returns an error matching
//     [eventsource.ErrDuplicateCommand].
//
// In steps 2 and 4 the command has taken effect before, so its dispatch
// succeeds; the cqrs.command span gets the attribute
// cqrs.command.duplicate=true. The result of a duplicate is nil.
//
// Step 4 alone is exact: the check is made in the transaction of the
// append, so two copies of a command handled at once, or a copy handled
// after its first run committed and then crashed, append nothing. But it
// comes after the handler has decided on the aggregate's state, and that
// state now holds the command's own events: a retried withdrawal finds
// the money gone and may fail rather than reach its append. Step 2
// recognises the retry first; pass the event store as log (a
// [eventsource.MemoryStore] or a
// [github.com/otelpatterns/patterns/eventsource/pgstore.Store]), at the
// cost of one query per command, and make commands Targeted. Pass nil
// only if every handler reaches its append on a retry.
//
// Commands are recorded per (command ID, stream): a handler appends once
// to each stream under one command, and a second append to the same
// stream under the same ID fails as a duplicate. A handler that appends
// to several streams is not made atomic by this: if it fails between
// them, a retry appends to the streams it had not reached, but step 2
// skips an Identified command that is not Targeted (one stream has it).
// Give each stream a command of its own, dispatched from the handler or
// coordinated by a saga. Two commands of one type dispatched under one
// context ID to one stream are one command: make them Identified.
//
// Put Deduplication after [Retrying] in [Bus.Use], so that it runs
// inside each attempt and a duplicate ends the retries at once.
func Deduplication(log eventsource.CommandLog) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, msg any) (any, error) {
			if isQuery(ctx) {
				return next(ctx, msg)
			}
			var id string
			c, own := msg.(Identified)
			if own {
				id = c.CommandID()
			} else if outer, ok := eventsource.CommandID(ctx); ok {
				if err := eventsource.CheckCommandID(outer); err != nil {
					return nil, fmt.Errorf("cqrs: %T: %w", msg, err)
				}
				id = qualify(outer, msg)
			} else {
				return next(ctx, msg)
			}
			if err := eventsource.CheckCommandID(id); err != nil {
				return nil, fmt.Errorf("cqrs: %T: %w", msg, err)
			}
			if log != nil {
				var seen bool
				var err error
				if t, ok := msg.(Targeted); ok && t.CommandStream() != "" {
					seen, err = log.CommandRecordedIn(ctx, id, t.CommandStream())
				} else if own {
					seen, err = log.CommandRecorded(ctx, id)
				}
				if err != nil {
					return nil, fmt.Errorf("cqrs: looking up command %q: %w", id, err)
				}
				if seen {
					markDuplicate(ctx)
					return nil, nil
				}
			}
			res, err := next(eventsource.WithCommandID(ctx, id), msg)
			if errors.Is(err, eventsource.ErrDuplicateCommand) {
				markDuplicate(ctx)
				return nil, nil
			}
			return res, err
		}
	}
}

// qualify returns the ID of command msg dispatched under the command ID
// outer: outer, '/' and msg's Go type, or a hash of that when it is too
// long for a command ID.
func qualify(outer string, msg any) string {
	id := outer + "/" + reflect.TypeOf(msg).String()
	if len(id) <= eventsource.MaxCommandIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func markDuplicate(ctx context.Context) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(AttrCommandDuplicate.Bool(true))
	}
}

// queryKey marks the context of a query's handling (true), or of a
// command's handled within it (false), for middleware that acts on
// commands only.
type queryKey struct{}

// isQuery reports whether ctx is that of a query's handling.
func isQuery(ctx context.Context) bool {
	q, _ := ctx.Value(queryKey{}).(bool)
	return q
}
