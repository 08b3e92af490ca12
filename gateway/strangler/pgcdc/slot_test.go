package pgcdc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestSetupWaitsForSlotBeingCreated: a Setup that finds the slot being
// created by another consumer's Setup (which waits for the transactions
// running on the server) waits until the slot has a position. Returning
// nil at once, before the slot exists for good, loses the writes its
// caller makes next, trusting that Setup made the slot.
func TestSetupWaitsForSlotBeingCreated(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	ctx := testenv.Context(t, time.Minute)
	// A transaction running on the server holds the slot's creation.
	open, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = open.Rollback(context.Background()) }()
	_, err = open.Exec(ctx, "SELECT pg_current_xact_id()")
	require.NoError(t, err)

	nop := func(context.Context, pgcdc.Transaction) error { return nil }
	first := make(chan error, 1)
	a := f.consumer([]string{"t"}, nop)
	go func() { first <- a.Setup(ctx) }()
	for !f.slotExists(ctx) { // a's slot, being created
		require.NoError(t, ctx.Err())
		time.Sleep(20 * time.Millisecond)
	}

	// b's connection is found by its application_name.
	b, err := pgcdc.New(f.url+"&application_name="+f.schema, f.schema, []string{f.table("t")}, nop)
	require.NoError(t, err)
	second := make(chan error, 1)
	go func() { second <- b.Setup(ctx) }()
	// Until b read the slot twice (it waits, polling) or returned.
	var bErr error
	returnedEarly := false
	reads := map[time.Time]bool{}
	for len(reads) < 2 && !returnedEarly {
		select {
		case bErr = <-second:
			returnedEarly = true
			continue
		default:
		}
		var start *time.Time
		err := f.pool.QueryRow(ctx, `SELECT max(query_start) FROM pg_stat_activity
WHERE application_name = $1 AND query LIKE '%pg_replication_slots%'`, f.schema).Scan(&start)
		require.NoError(t, err)
		if start != nil {
			reads[*start] = true
		}
		require.NoError(t, ctx.Err())
		time.Sleep(10 * time.Millisecond)
	}
	if returnedEarly {
		f.insert(1) // what Setup is for: the writes after it are delivered
	}
	require.NoError(t, open.Rollback(ctx))
	if !returnedEarly {
		bErr = <-second
		f.insert(1)
	}
	require.NoError(t, bErr)
	require.NoError(t, <-first)
	f.insert(2)

	h, ch := channel()
	stop := run(t, f.consumer([]string{"t"}, h))
	tx := next(t, ch)
	require.NoError(t, stop())
	assert.False(t, returnedEarly, "Setup returned while the slot was being created")
	assert.Equal(t, []int32{1}, ids(tx), "the first write after Setup returned")
}

// TestVanishedSlotIsFatal: a consumer that streamed from its slot and
// finds it gone when it connects again (dropped by an administrator as
// it held WAL, or missing on a standby promoted in the primary's place,
// which before PostgreSQL 17 carries no logical slot over) returns
// ErrSlotLost, naming the slot, instead of creating a new one at the
// server's current position and going on as if the changes committed in
// between had not been lost. DropSlot acknowledges the loss: it makes
// the consumer forget its position, and Setup makes the slot anew.
func TestVanishedSlotIsFatal(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)
	f.insert(1)
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	require.NoError(t, stop())
	require.NotZero(t, c.Confirmed())

	ctx := testenv.Context(t, time.Minute)
	for { // once the server ended the walsender of the stopped Run
		_, err := f.pool.Exec(ctx, "SELECT pg_drop_replication_slot($1)", f.schema)
		if err == nil {
			break
		}
		require.ErrorContains(t, err, "is active")
		require.NoError(t, ctx.Err())
		time.Sleep(20 * time.Millisecond)
	}
	f.insert(2) // committed while the slot is gone: lost

	err := c.Run(testenv.Context(t, 15*time.Second))
	require.ErrorIs(t, err, pgcdc.ErrSlotLost, "Run")
	assert.ErrorContains(t, err, "slot "+f.schema+" ")
	assert.False(t, f.slotExists(ctx), "the slot was made anew")
	require.ErrorIs(t, c.Setup(ctx), pgcdc.ErrSlotLost, "Setup")
	assert.Empty(t, ch)

	require.NoError(t, c.DropSlot(ctx))
	assert.Zero(t, c.Confirmed(), "the position after DropSlot")
	f.setup(c)
	stop = run(t, c)
	f.insert(3)
	assert.Equal(t, []int32{3}, ids(next(t, ch)))
	require.NoError(t, stop())
}
