package cqrs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
)

// Transfer is an identified command whose handler appends to From, then
// dispatches a Credit (not identified) for To.
type Transfer struct {
	ID       string
	From, To string
}

func (c Transfer) CommandID() string { return c.ID }

// Credit is a command without an ID of its own.
type Credit struct{ Account string }

// newTransferBus returns a bus with Deduplication(log) whose Transfer and
// Credit handlers append to store, and whose Balance query counts a
// stream's events.
func newTransferBus(t *testing.T, store *eventsource.MemoryStore, log eventsource.CommandLog) *cqrs.Bus {
	t.Helper()
	bus := cqrs.NewBus()
	require.NoError(t, bus.Use(cqrs.Deduplication(log)))
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, c Transfer) error {
		if _, err := store.Append(ctx, c.From, eventsource.Any, eventsource.NewEvent{Type: "debited.v1"}); err != nil {
			return err
		}
		return bus.Dispatch(ctx, Credit{c.To})
	}))
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, c Credit) error {
		_, err := store.Append(ctx, c.Account, eventsource.Any, eventsource.NewEvent{Type: "credited.v1"})
		return err
	}))
	require.NoError(t, cqrs.HandleQuery(bus, func(ctx context.Context, q Balance) (int, error) {
		return streamLen(t, store, q.Account), nil
	}))
	return bus
}

// A command dispatched from a handler is handled, with and without the
// command log, and a retry of its parent appends nothing twice:
// regression for the child inheriting its parent's command ID and being
// taken for a duplicate once its parent had appended.
func TestDeduplicationHandlesChildCommands(t *testing.T) {
	for _, withLog := range []bool{true, false} {
		store := &eventsource.MemoryStore{}
		var log eventsource.CommandLog
		if withLog {
			log = store
		}
		bus := newTransferBus(t, store, log)
		ctx := context.Background()
		tr := Transfer{ID: "t-1", From: "a", To: "b"}
		require.NoError(t, bus.Dispatch(ctx, tr))
		assert.Equal(t, 1, streamLen(t, store, "b"), "credits after the transfer (log: %v)", withLog)
		require.NoError(t, bus.Dispatch(ctx, tr), "the transfer retried")
		assert.Equal(t, 1, streamLen(t, store, "a"), "debits after the retry (log: %v)", withLog)
		assert.Equal(t, 1, streamLen(t, store, "b"), "credits after the retry (log: %v)", withLog)

		// A credit to the stream the parent appended to is a command of
		// its own too.
		require.NoError(t, bus.Dispatch(ctx, Transfer{ID: "t-2", From: "c", To: "c"}))
		assert.Equal(t, 2, streamLen(t, store, "c"), "debit and credit of one stream (log: %v)", withLog)
	}
}

// A query asked from a command handler after the command appended gets
// its answer: regression for Deduplication taking the query for a
// duplicate of the command (whose ID its context carries) and answering
// a zero value.
func TestDeduplicationLeavesQueriesAlone(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus := newTransferBus(t, store, store)
	var got int
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, w Withdraw) error {
		if _, err := store.Append(ctx, w.Account, eventsource.Any, eventsource.NewEvent{Type: "withdrawn.v1"}); err != nil {
			return err
		}
		var err error
		got, err = cqrs.Ask[Balance, int](ctx, bus, Balance{w.Account})
		return err
	}))
	require.NoError(t, bus.Dispatch(context.Background(), Withdraw{ID: "w-1", Account: "acc-1", Amount: 1}))
	assert.Equal(t, 1, got, "Ask from the handler")

	// A query asked under a command ID (an idempotency key that a
	// transport puts in every request's context) is answered too.
	ctx := eventsource.WithCommandID(context.Background(), "w-1")
	n, err := cqrs.Ask[Balance, int](ctx, bus, Balance{"acc-1"})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

// Commands dispatched under one command ID in the context (a request's
// idempotency key) are each handled once: regression for the second
// being taken for a duplicate of the first once the first appended.
func TestDeduplicationKeysContextIDsByCommand(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus := newTransferBus(t, store, store)
	ctx := eventsource.WithCommandID(context.Background(), "req-1")
	for range 2 { // the request retried
		require.NoError(t, bus.Dispatch(ctx, Credit{"a"}))
		require.NoError(t, bus.Dispatch(ctx, Credit{"b"}))
		require.NoError(t, bus.Dispatch(ctx, Transfer{ID: "t-1", From: "a", To: "b"}))
	}
	assert.Equal(t, 2, streamLen(t, store, "a"), "a credit and the debit")
	assert.Equal(t, 2, streamLen(t, store, "b"), "a credit and the transfer's")
}

// A Targeted command is looked up in its own stream: the same ID in
// another stream is another command's doing, and does not skip it.
func TestDeduplicationLooksUpTargetedCommandsInTheirStream(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus, a := newDedupBus(t, store, store)
	ctx := context.Background()
	require.NoError(t, bus.Dispatch(ctx, Withdraw{ID: "w-1", Account: "acc-1", Amount: 10}))
	require.NoError(t, bus.Dispatch(ctx, Withdraw{ID: "w-1", Account: "acc-2", Amount: 10}))
	require.NoError(t, bus.Dispatch(ctx, Withdraw{ID: "w-1", Account: "acc-2", Amount: 10}))
	assert.Equal(t, int32(2), a.calls.Load(), "handler calls")
	assert.Equal(t, 1, streamLen(t, store, "acc-1"))
	assert.Equal(t, 1, streamLen(t, store, "acc-2"))
}

// A command dispatched from a query's handler is a command: it is
// de-duplicated.
func TestDeduplicationOfACommandFromAQuery(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus := newTransferBus(t, store, store)
	type Audit struct{ Account string }
	require.NoError(t, cqrs.HandleQuery(bus, func(ctx context.Context, q Audit) (int, error) {
		return 0, bus.Dispatch(ctx, Credit(q))
	}))
	ctx := eventsource.WithCommandID(context.Background(), "req-1")
	for range 2 {
		_, err := cqrs.Ask[Audit, int](ctx, bus, Audit{"a"})
		require.NoError(t, err)
	}
	assert.Equal(t, 1, streamLen(t, store, "a"))
}

// A context ID qualified by a long type name stays a valid command ID.
func TestDeduplicationQualifiesLongIDs(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus := newTransferBus(t, store, store)
	ctx := eventsource.WithCommandID(context.Background(), strings.Repeat("x", eventsource.MaxCommandIDLen))
	for range 2 {
		require.NoError(t, bus.Dispatch(ctx, Credit{"a"}))
	}
	assert.Equal(t, 1, streamLen(t, store, "a"))
}
