package pgstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestAppendsUnderRepeatableReadDefault appends concurrently to one
// stream through a pool whose sessions default to REPEATABLE READ
// (default_transaction_isolation, as some deployments set it): an
// append must read the stream's version after it has the stream's lock,
// so appends with eventsource.Any all succeed, as under READ COMMITTED.
// A transaction that took its snapshot before the wait for the lock
// reads a stale version and fails with a conflict.
func TestAppendsUnderRepeatableReadDefault(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t, 30*time.Second)
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	require.NoError(t, err)
	cfg.MaxConns = 8
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "repeatable read"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s := newStoreIn(t, pool, schemaName(t))
	require.NoError(t, s.Migrate(ctx))

	const writers, each = 6, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := s.Append(ctx, "shared", eventsource.Any, events(1, "test.v1")...); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	got := collect(t, s.ReadStream(ctx, "shared", 1))
	assert.Len(t, got, writers*each)
}
