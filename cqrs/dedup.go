package cqrs

import (
	"context"
	"errors"
	"fmt"

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

// Deduplication is middleware that lets a command take effect at most
// once per stream, however often it is dispatched, with the event
// store's de-duplication by command ID (see [eventsource.WithCommandID]).
//
// It acts on a message that is [Identified], or else that is dispatched
// with a context carrying a command ID, and passes any other through
// untouched. For such a message it:
//
//  1. rejects an ID that [eventsource.CheckCommandID] refuses, without
//     calling the handler;
//  2. if log is not nil, asks it whether the command has been recorded,
//     and if so returns nil without calling the handler;
//  3. calls the handler with the ID in its context, so that the
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
// [eventsource.MemoryStore] or an eventsource/pgstore Store), at the
// cost of one query per command. Pass nil only if every handler reaches
// its append on a retry.
//
// Commands are recorded per (command ID, stream): a handler appends once
// to each stream under one command, and a second append to the same
// stream under the same ID fails as a duplicate. A handler that appends
// to several streams is not made atomic by this: if it fails between
// them, step 2 skips the retry (one stream has the command). Give each
// stream a command of its own, coordinated by a saga. A command
// dispatched from a handler inherits its parent's ID unless it is
// Identified itself.
//
// Put Deduplication after [Retrying] in [Bus.Use], so that it runs
// inside each attempt and a duplicate ends the retries at once.
func Deduplication(log eventsource.CommandLog) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, msg any) (any, error) {
			var id string
			if c, ok := msg.(Identified); ok {
				id = c.CommandID()
			} else if id, ok = eventsource.CommandID(ctx); !ok {
				return next(ctx, msg)
			}
			if err := eventsource.CheckCommandID(id); err != nil {
				return nil, fmt.Errorf("cqrs: %T: %w", msg, err)
			}
			if log != nil {
				seen, err := log.CommandRecorded(ctx, id)
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

func markDuplicate(ctx context.Context) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(AttrCommandDuplicate.Bool(true))
	}
}
