package pgcdc_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// ids returns the ids of the rows a transaction inserted.
func ids(tx pgcdc.Transaction) []int32 {
	var out []int32
	for _, c := range tx.Changes {
		out = append(out, c.New["id"].(int32))
	}
	return out
}

// insert inserts the rows of ids into the fixture's table t, one
// transaction for each id.
func (f *fixture) insert(ids ...int) {
	f.t.Helper()
	for _, id := range ids {
		f.exec("INSERT INTO "+f.table("t")+" VALUES ($1)", id)
	}
}

// TestHandlerErrorIsRetriedUnconfirmed: a failing handler gets the same
// transaction again, after a backoff, and the slot does not move past it
// until the handler succeeded.
func TestHandlerErrorIsRetriedUnconfirmed(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	var calls atomic.Int32
	failing := make(chan pgcdc.Transaction, 10)
	release := make(chan struct{})
	h, ch := channel()
	c := f.consumer([]string{"t"}, func(ctx context.Context, tx pgcdc.Transaction) error {
		if calls.Add(1) <= 3 {
			failing <- tx
			if calls.Load() == 3 {
				<-release // hold the third failure until the test read the slot's position
			}
			return errors.New("downstream unavailable")
		}
		return h(ctx, tx)
	})
	f.setup(c)
	stop := run(t, c)
	f.insert(1)
	first := next(t, failing)
	assert.Equal(t, []int32{1}, ids(first))
	for range 2 {
		again := next(t, failing)
		assert.Equal(t, first.CommitLSN, again.CommitLSN, "the same transaction, again")
	}
	assert.Less(t, f.slotPosition(), first.EndLSN, "the slot moved past a transaction the handler failed")
	close(release)
	assert.Equal(t, first.CommitLSN, next(t, ch).CommitLSN)
	f.insert(2)
	assert.Equal(t, []int32{2}, ids(next(t, ch)))
	require.NoError(t, stop())
	assert.GreaterOrEqual(t, f.slotPosition(), first.EndLSN, "confirmed once handled")
	assert.EqualValues(t, 5, calls.Load())
}

// TestResumesFromSlotAfterGivingUp: a consumer whose handler failed as
// often as WithMaxAttempts allows returns a HandlerError; the next
// consumer of the slot gets the failed transaction again, and every one
// after it, but not those handled before.
func TestResumesFromSlotAfterGivingUp(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t"}, func(ctx context.Context, tx pgcdc.Transaction) error {
		if ids(tx)[0] == 2 {
			return errors.New("cannot handle 2")
		}
		return h(ctx, tx)
	}, pgcdc.WithMaxAttempts(2))
	f.setup(c)
	f.insert(1, 2, 3)
	err := c.Run(testenv.Context(t, 60*time.Second))
	var herr *pgcdc.HandlerError
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, 2, herr.Attempts)
	assert.EqualError(t, herr.Err, "cannot handle 2")
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	assert.Empty(t, ch)

	h2, ch2 := channel()
	stop := run(t, f.consumer([]string{"t"}, h2))
	f.insert(4)
	for _, want := range []int32{2, 3, 4} {
		tx := next(t, ch2)
		assert.Equal(t, []int32{want}, ids(tx))
		if want == 2 {
			assert.Equal(t, herr.CommitLSN, tx.CommitLSN)
		}
	}
	require.NoError(t, stop())
}

// TestCancelMidStreamRedeliversUnconfirmed: a Run cancelled while its
// handler works on a transaction returns nil; the next Run delivers that
// transaction again (at-least-once), then the rest.
func TestCancelMidStreamRedeliversUnconfirmed(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, ch := channel()
	c := f.consumer([]string{"t"}, func(hctx context.Context, tx pgcdc.Transaction) error {
		if ids(tx)[0] == 2 {
			cancel() // the process is stopping while the handler works
			<-hctx.Done()
			return hctx.Err()
		}
		return h(hctx, tx)
	})
	f.setup(c)
	f.insert(1, 2, 3)
	require.NoError(t, c.Run(ctx), "Run after its context was cancelled")
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	assert.Empty(t, ch)

	h2, ch2 := channel()
	stop := run(t, f.consumer([]string{"t"}, h2))
	assert.Equal(t, []int32{2}, ids(next(t, ch2)), "the unconfirmed transaction, again")
	assert.Equal(t, []int32{3}, ids(next(t, ch2)))
	require.NoError(t, stop())
}

// TestConnectionKilledMidStream: the server ends the consumer's
// connection while a handler works; the consumer connects again and
// every change arrives, in commit order, those not confirmed perhaps
// twice.
func TestConnectionKilledMidStream(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	h, ch := channel()
	holding := make(chan struct{})
	release := make(chan struct{})
	var held atomic.Bool
	var reported atomic.Int32
	c := f.consumer([]string{"t"}, func(ctx context.Context, tx pgcdc.Transaction) error {
		if ids(tx)[0] == 2 && held.CompareAndSwap(false, true) {
			close(holding)
			<-release
			return errors.New("lost the downstream too")
		}
		return h(ctx, tx)
	}, pgcdc.WithErrorHandler(func(error) { reported.Add(1) }))
	f.setup(c)
	stop := run(t, c)
	f.insert(1, 2, 3)
	<-holding
	f.exec("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1", f.schema)
	close(release)
	f.insert(4)
	var got []int32
	for len(got) == 0 || got[len(got)-1] != 4 {
		got = append(got, ids(next(t, ch))...)
	}
	require.NoError(t, stop())
	assert.Equal(t, []int32{1, 2, 3, 4}, dedupe(got), "delivered: %v", got)
	assert.NotZero(t, reported.Load(), "the lost connection was reported to the error handler")
}

// dedupe drops the repeats of an id delivered again, keeping the first.
func dedupe(ids []int32) []int32 {
	seen := map[int32]bool{}
	var out []int32
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// crashChildVar names the slot of TestCrashChild's consumer.
const crashChildVar = "PGCDC_CRASH_CHILD_SLOT"

// TestCrashChild is not a test: it is the child process of
// TestKilledProcessResumesFromSlot, which kills it at its crash point.
func TestCrashChild(t *testing.T) {
	slot := os.Getenv(crashChildVar)
	if slot == "" {
		t.Skip("the child process of TestKilledProcessResumesFromSlot")
	}
	c, err := pgcdc.New(testenv.PostgresURL(t), slot, []string{slot + ".t"}, func(ctx context.Context, tx pgcdc.Transaction) error {
		if ids(tx)[0] == 2 {
			fmt.Println(testenv.CrashMarker)
			<-ctx.Done() // until killed
		}
		return nil
	}, pgcdc.WithStatusInterval(100*time.Millisecond))
	require.NoError(t, err)
	_ = c.Run(testenv.Context(t, time.Minute))
	t.Fatal("not killed")
}

// TestKilledProcessResumesFromSlot: a consumer's process killed (SIGKILL)
// while its handler works on a transaction loses nothing: a consumer
// of the same slot, in another process, gets that transaction and those
// after it.
func TestKilledProcessResumesFromSlot(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	f.setup(f.consumer([]string{"t"}, func(context.Context, pgcdc.Transaction) error { return nil }))
	f.insert(1, 2, 3)
	testenv.KillAtCrashPoint(t, "TestCrashChild", []string{crashChildVar + "=" + f.schema}, time.Minute)

	h, ch := channel()
	stop := run(t, f.consumer([]string{"t"}, h))
	var got []int32
	for len(got) == 0 || got[len(got)-1] != 3 {
		got = append(got, ids(next(t, ch))...)
	}
	require.NoError(t, stop())
	assert.Contains(t, [][]int32{{2, 3}, {1, 2, 3}}, got, "transaction 2 and those after it, perhaps 1 again")
}

// TestSlowHandlerKeepsConnection: a handler slower than the server's
// wal_sender_timeout does not cost the consumer its connection, for the
// consumer reports its position while the handler runs.
func TestSlowHandlerKeepsConnection(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	h, ch := channel()
	var reported atomic.Int32
	var calls atomic.Int32
	opts := []pgcdc.Option{
		pgcdc.WithStatusInterval(100 * time.Millisecond),
		pgcdc.WithErrorHandler(func(err error) { reported.Add(1); t.Logf("reconnecting after: %v", err) }),
	}
	c, err := pgcdc.New(f.url+"&options=-c%20wal_sender_timeout%3D1s", f.schema, []string{f.table("t")},
		func(ctx context.Context, tx pgcdc.Transaction) error {
			calls.Add(1)
			if ids(tx)[0] == 1 {
				time.Sleep(3 * time.Second) // the slow handler this test is about
			}
			return h(ctx, tx)
		}, opts...)
	require.NoError(t, err)
	f.setup(c)
	stop := run(t, c)
	f.insert(1, 2)
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	assert.Equal(t, []int32{2}, ids(next(t, ch)))
	require.NoError(t, stop())
	assert.Zero(t, reported.Load(), "the connection was lost")
	assert.EqualValues(t, 2, calls.Load(), "delivered again")
}

// TestIdleConfirmationKeepsOpenTransactions: between transactions the
// consumer confirms the server's WAL end, which moves the slot past the
// start of a transaction still open; that transaction, committed while
// no consumer runs, is delivered all the same by the next one.
func TestIdleConfirmationKeepsOpenTransactions(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	f.exec("CREATE TABLE " + f.table("other") + " (id serial PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)

	ctx := testenv.Context(t, time.Minute)
	open, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = open.Rollback(context.Background()) }()
	_, err = open.Exec(ctx, "INSERT INTO "+f.table("t")+" VALUES (1)")
	require.NoError(t, err)
	var started string
	require.NoError(t, open.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&started))
	var hi, lo uint32
	_, err = fmt.Sscanf(started, "%X/%X", &hi, &lo)
	require.NoError(t, err)
	after := pgcdc.LSN(uint64(hi)<<32 | uint64(lo))
	for f.slotPosition() <= after { // writes elsewhere, until the consumer confirmed past the open transaction
		require.NoError(t, ctx.Err(), "the slot did not move past %s", after)
		f.exec("INSERT INTO " + f.table("other") + " DEFAULT VALUES")
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, stop())
	require.NoError(t, open.Commit(ctx))
	assert.Empty(t, ch)

	h2, ch2 := channel()
	stop2 := run(t, f.consumer([]string{"t"}, h2))
	assert.Equal(t, []int32{1}, ids(next(t, ch2)))
	require.NoError(t, stop2())
}

// TestSilentConnectionReplaced: a replication connection that goes
// silent (the server gone behind a proxy, a NAT that dropped the flow)
// is taken for lost once the server sent nothing for the silence bound,
// though the consumer asked it to reply: the consumer connects again, as
// for a lost connection (the error handler told, the backoff applied),
// and the changes after it arrive. Before, it sent its status updates
// into the connection and waited for messages that never came, without
// end (until TCP gave up, a quarter of an hour later, if ever), while
// its changes piled up in the slot.
func TestSilentConnectionReplaced(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	u, err := url.Parse(f.url)
	require.NoError(t, err)
	p := newProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	u.RawQuery += "&options=-c%20wal_sender_timeout%3D2s"
	var reported atomic.Int32
	h, ch := channel()
	c, err := pgcdc.New(u.String(), f.schema, []string{f.table("t")}, h,
		pgcdc.WithStatusInterval(200*time.Millisecond), pgcdc.WithBackoff(10*time.Millisecond, 200*time.Millisecond),
		pgcdc.WithErrorHandler(func(err error) { reported.Add(1); t.Logf("reconnecting after: %v", err) }))
	require.NoError(t, err)
	f.setup(c)
	stop := run(t, c)
	f.insert(1)
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	require.NotZero(t, p.freeze())
	f.insert(2)
	deadline := time.After(30 * time.Second)
	var got []int32
	for len(got) == 0 || got[len(got)-1] != 2 { // 1 again, perhaps, then 2
		select {
		case tx := <-ch:
			got = append(got, ids(tx)...)
			continue
		case <-deadline:
		}
		break
	}
	require.NoError(t, stop())
	assert.Contains(t, got, int32(2), "the change after the connection went silent was not delivered within 30s "+
		"(status interval 200ms, the server's side ended after wal_sender_timeout=2s); errors reported: %d", reported.Load())
	assert.NotZero(t, reported.Load(), "the silent connection was reported to the error handler")
}

// TestIdleConnectionKept: an idle connection to a live server is not
// taken for silent: the consumer's periodic status updates ask the
// server to reply, which it does at once, also when wal_sender_timeout
// is off (then the server sends nothing of its own, and the consumer
// waits 3 status intervals for a message).
func TestIdleConnectionKept(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	var reported atomic.Int32
	h, ch := channel()
	const interval = 200 * time.Millisecond
	c, err := pgcdc.New(f.url+"&options=-c%20wal_sender_timeout%3D0", f.schema, []string{f.table("t")}, h,
		pgcdc.WithStatusInterval(interval),
		pgcdc.WithErrorHandler(func(err error) { reported.Add(1); t.Logf("reconnecting after: %v", err) }))
	require.NoError(t, err)
	f.setup(c)
	stop := run(t, c)
	f.insert(1)
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	time.Sleep(15 * interval) // idle, for 5 times the silence the consumer allows
	f.insert(2)
	assert.Equal(t, []int32{2}, ids(next(t, ch)))
	require.NoError(t, stop())
	assert.Zero(t, reported.Load(), "the idle connection was taken for lost")
}
