package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestAbandonedAppendStopsWaitingForTheLock: an append whose context
// ends while it waits for its stream's lock must not leave its server
// session queued for the lock. A session queued there, whose client has
// gone (its context's deadline passed, or the network was cut), takes
// the lock when its turn comes and holds it, idle, until the server ends
// it (the append idle timeout; longer if the server cannot tell the
// client is gone): the retries of a client whose attempts time out then
// queue behind their own abandoned attempts, and the stream's appends
// fail for as long as they keep coming (TestWriterAndSubscriberThroughFaults
// saw 0 of 34 appends succeed). The store bounds the server's wait for
// the lock by the context's deadline (lock_timeout).
func TestAbandonedAppendStopsWaitingForTheLock(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t, 30*time.Second)
	proxy, proxiedPool := proxied(t, 2)
	schema := schemaName(t)
	pool := testenv.PostgresPool(t, 4)
	direct := newStoreIn(t, pool, schema)
	require.NoError(t, direct.Migrate(ctx))
	s := newStoreIn(t, proxiedPool, schema)
	key, _ := pgstore.LockKeys(s, "locked")

	holder, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer holder.Release()
	_, err = holder.Exec(ctx, "SELECT pg_advisory_lock($1)", key)
	require.NoError(t, err)
	defer func() { _, _ = holder.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", key) }()

	waiting := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted AND ((classid::bigint << 32) | objid::bigint) = $1`, key).Scan(&n))
		return n
	}
	appended := make(chan error, 1)
	go func() {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := s.Append(actx, "locked", eventsource.Any, events(1, "test.v1")...)
		appended <- err
	}()
	for waiting() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	proxy.Cut() // the client can no longer reach the server, nor cancel
	defer proxy.Restore()
	require.Error(t, <-appended) // the connection was cut
	time.Sleep(time.Second)      // the append's deadline has passed

	// No session waits for the stream's lock any more (the holder has it).
	deadline := time.Now().Add(10 * time.Second)
	for waiting() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.Zero(t, waiting(), "a session of the abandoned append still waits for the stream's lock")
}
