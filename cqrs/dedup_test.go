package cqrs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/retry"
)

// Withdraw is an identified command: its ID comes from its sender.
type Withdraw struct {
	ID      string
	Account string
	Amount  int
}

func (w Withdraw) CommandID() string { return w.ID }

// CommandStream makes Withdraw a Targeted command: Deduplication looks
// it up in its account's stream.
func (w Withdraw) CommandStream() string { return w.Account }

var errInsufficientFunds = errors.New("insufficient funds")

// accounts handles Withdraw on a store: it reads the account's balance
// (starting at 50), decides, and appends expecting the version it read,
// as a repository does.
type accounts struct {
	store eventsource.Store
	calls atomic.Int32
	// afterAppend, if set, is the error the handler returns after its
	// append succeeded: a crash, or a reply lost on the way back.
	afterAppend func() error
}

func (a *accounts) withdraw(ctx context.Context, w Withdraw) error {
	a.calls.Add(1)
	balance, version := 50, int64(0)
	for e, err := range a.store.ReadStream(ctx, w.Account, 1) {
		if err != nil {
			return err
		}
		var d struct{ Amount int }
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return err
		}
		balance -= d.Amount
		version = e.Version
	}
	if balance < w.Amount {
		return errInsufficientFunds
	}
	data, _ := json.Marshal(struct{ Amount int }{w.Amount})
	if _, err := a.store.Append(ctx, w.Account, eventsource.Exact(version), eventsource.NewEvent{Type: "withdrawn.v1", Data: data}); err != nil {
		return err
	}
	if a.afterAppend != nil {
		return a.afterAppend()
	}
	return nil
}

func newDedupBus(t *testing.T, store eventsource.Store, log eventsource.CommandLog, opts ...cqrs.BusOption) (*cqrs.Bus, *accounts) {
	t.Helper()
	bus := cqrs.NewBus(opts...)
	require.NoError(t, bus.Use(cqrs.Deduplication(log)))
	a := &accounts{store: store}
	require.NoError(t, cqrs.HandleCommand(bus, a.withdraw))
	return bus, a
}

func streamLen(t *testing.T, s eventsource.Store, stream string) int {
	t.Helper()
	n := 0
	for _, err := range s.ReadStream(context.Background(), stream, 1) {
		require.NoError(t, err)
		n++
	}
	return n
}

// TestDeduplicationWithLog dispatches a withdrawal twice: the second
// dispatch succeeds without calling the handler, which would have found
// the money gone.
func TestDeduplicationWithLog(t *testing.T) {
	p := telemetrytest.New(t)
	store := &eventsource.MemoryStore{}
	bus, a := newDedupBus(t, store, store, cqrs.WithTracerProvider(p.TracerProvider))
	ctx := context.Background()
	w := Withdraw{ID: "w-1", Account: "acc-1", Amount: 30}
	require.NoError(t, bus.Dispatch(ctx, w))
	require.NoError(t, bus.Dispatch(ctx, w), "Dispatch of a duplicate")
	assert.Equal(t, int32(1), a.calls.Load(), "handler calls")
	assert.Equal(t, 1, streamLen(t, store, "acc-1"))

	// Another command is handled, and fails on the state.
	require.ErrorIs(t, bus.Dispatch(ctx, Withdraw{ID: "w-2", Account: "acc-1", Amount: 30}), errInsufficientFunds)

	spans := p.Spans.Ended()
	require.Len(t, spans, 3)
	for i, s := range spans {
		dup := false
		for _, kv := range s.Attributes() {
			if kv.Key == cqrs.AttrCommandDuplicate {
				dup = kv.Value.AsBool()
			}
		}
		assert.Equal(t, i == 1, dup, "span %d has cqrs.command.duplicate", i)
	}
}

// TestDeduplicationWithoutLog relies on the store's check alone: the
// handler runs again, its append fails as a duplicate, and the dispatch
// succeeds.
func TestDeduplicationWithoutLog(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus, a := newDedupBus(t, store, nil)
	ctx := context.Background()
	w := Withdraw{ID: "w-1", Account: "acc-1", Amount: 10}
	for range 3 {
		require.NoError(t, bus.Dispatch(ctx, w))
	}
	assert.Equal(t, int32(3), a.calls.Load(), "handler calls")
	assert.Equal(t, 1, streamLen(t, store, "acc-1"))
}

func TestDeduplicationPassesOthersThrough(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus := cqrs.NewBus()
	require.NoError(t, bus.Use(cqrs.Deduplication(store)))
	var got []string
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, d Deposit) error {
		id, _ := eventsource.CommandID(ctx)
		got = append(got, id)
		return nil
	}))
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, w Withdraw) error {
		return &eventsource.DuplicateCommandError{CommandID: "elsewhere", StreamID: "s"}
	}))
	require.NoError(t, cqrs.HandleQuery(bus, func(ctx context.Context, b Balance) (int, error) { return 7, nil }))
	ctx := context.Background()

	// Not identified: handled every time, with no command ID.
	require.NoError(t, bus.Dispatch(ctx, Deposit{"a", 1}))
	require.NoError(t, bus.Dispatch(ctx, Deposit{"a", 1}))
	n, err := cqrs.Ask[Balance, int](ctx, bus, Balance{"a"})
	require.NoError(t, err)
	assert.Equal(t, 7, n)
	// A command ID in the context counts, qualified by the command's type.
	require.NoError(t, bus.Dispatch(eventsource.WithCommandID(ctx, "from-header"), Deposit{"a", 1}))
	assert.Equal(t, []string{"", "", "from-header/cqrs_test.Deposit"}, got)

	// A bad ID is refused before the handler.
	err = bus.Dispatch(ctx, Withdraw{ID: "", Account: "acc-1"})
	require.ErrorIs(t, err, eventsource.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "cqrs_test.Withdraw")
	assert.Empty(t, streamLen(t, store, "acc-1"))
}

// failingLog is a CommandLog whose lookups fail.
type failingLog struct{}

func (failingLog) CommandRecorded(context.Context, string) (bool, error) {
	return false, errors.New("connection refused")
}

func (failingLog) CommandRecordedIn(context.Context, string, string) (bool, error) {
	return false, errors.New("connection refused")
}

func TestDeduplicationLogFails(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus, a := newDedupBus(t, store, failingLog{})
	err := bus.Dispatch(context.Background(), Withdraw{ID: "w-1", Account: "acc-1", Amount: 10})
	require.ErrorContains(t, err, "connection refused")
	assert.Equal(t, int32(0), a.calls.Load(), "the handler ran without the lookup")
}

// TestDeduplicationInsideRetrying has a conflict retried and a duplicate
// not retried.
func TestDeduplicationInsideRetrying(t *testing.T) {
	store := &eventsource.MemoryStore{}
	bus := cqrs.NewBus()
	require.NoError(t, bus.Use(cqrs.Retrying(retry.New(retry.WithMaxAttempts(5), retry.WithBackoff(retry.Constant(0)))), cqrs.Deduplication(nil)))
	var calls atomic.Int32
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, w Withdraw) error {
		n := calls.Add(1)
		expected := eventsource.Any
		if n == 1 {
			expected = eventsource.Exact(99) // a conflict, retried
		}
		_, err := store.Append(ctx, w.Account, expected, eventsource.NewEvent{Type: "withdrawn.v1"})
		return err
	}))
	ctx := context.Background()
	w := Withdraw{ID: "w-1", Account: "acc-1", Amount: 10}
	require.NoError(t, bus.Dispatch(ctx, w))
	assert.Equal(t, int32(2), calls.Load())
	require.NoError(t, bus.Dispatch(ctx, w))
	assert.Equal(t, int32(3), calls.Load(), "a duplicate was retried")
	assert.Equal(t, 1, streamLen(t, store, "acc-1"))
}

// newPGStore returns a migrated pgstore in a schema of the test's own,
// dropped when the test ends, or skips the test.
func newPGStore(t *testing.T) *pgstore.Store {
	t.Helper()
	pool := testenv.PostgresPool(t, 16)
	s, err := pgstore.New(pool, pgstore.WithSchema(testenv.Schema(t, "cqrs_dedup_test_")))
	require.NoError(t, err)
	require.NoError(t, s.Migrate(testenv.Context(t, 10*time.Second)))
	return s
}

// TestDeduplicationPostgres handles withdrawals on PostgreSQL whose
// handler fails after its append committed (a crash, a lost reply): the
// sender's retry appends nothing, with and without the lookup; copies of
// one command dispatched at once append once.
func TestDeduplicationPostgres(t *testing.T) {
	s := newPGStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, withLog := range []bool{false, true} {
		t.Run(fmt.Sprintf("log=%v", withLog), func(t *testing.T) {
			var log eventsource.CommandLog
			if withLog {
				log = s
			}
			bus, a := newDedupBus(t, s, log)
			account := fmt.Sprintf("acc-%v", withLog)
			crash := errors.New("crashed after the commit")
			a.afterAppend = func() error { return crash }
			// Without the lookup, the retry must reach its append to be
			// recognised: it may not find the money gone.
			amount := 20
			if withLog {
				amount = 30
			}
			w := Withdraw{ID: "w-" + account, Account: account, Amount: amount}
			require.ErrorIs(t, bus.Dispatch(ctx, w), crash)
			a.afterAppend = nil
			require.NoError(t, bus.Dispatch(ctx, w), "the sender's retry")
			assert.Equal(t, 1, streamLen(t, s, account))
			wantCalls := int32(2)
			if withLog {
				wantCalls = 1
			}
			assert.Equal(t, wantCalls, a.calls.Load(), "handler calls")

			// Copies at once, of a command that needs 10 of the 20 or 30
			// left: all succeed, one appends.
			const copies = 8
			w = Withdraw{ID: "w2-" + account, Account: account, Amount: 10}
			errs := make([]error, copies)
			var wg sync.WaitGroup
			gate := make(chan struct{})
			for i := range copies {
				wg.Go(func() {
					<-gate
					errs[i] = bus.Dispatch(ctx, w)
				})
			}
			close(gate)
			wg.Wait()
			for i, err := range errs {
				// Each copy that reached its append did so after the
				// winner committed (appends take turns), so it found
				// the command before the version: no conflicts.
				assert.NoError(t, err, "Dispatch of copy %d", i)
			}
			assert.Equal(t, 2, streamLen(t, s, account), "copies appended more than once")
		})
	}
}
