package pglog_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

func TestNewRejectsBadArguments(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none") // never connects
	require.NoError(t, err)
	defer pool.Close()
	for _, tt := range []struct {
		name string
		pool *pgxpool.Pool
		opts []pglog.Option
		want []string
	}{
		{"nil pool", nil, nil, []string{"pool is nil"}},
		{"empty schema", pool, []pglog.Option{pglog.WithSchema("")}, []string{`WithSchema("")`, "empty"}},
		{"long schema", pool, []pglog.Option{pglog.WithSchema(strings.Repeat("s", 64))}, []string{"WithSchema(", "64 bytes; at most 63"}},
		{"reserved schema", pool, []pglog.Option{pglog.WithSchema("pg_saga")}, []string{`WithSchema("pg_saga")`, "reserved"}},
		{"NUL in schema", pool, []pglog.Option{pglog.WithSchema("a\x00b")}, []string{"WithSchema(", "NUL"}},
		{"bad UTF-8 schema", pool, []pglog.Option{pglog.WithSchema("a\xffb")}, []string{"WithSchema(", "UTF-8"}},
		{"nil option", pool, []pglog.Option{pglog.WithSchema("orders"), nil}, []string{"opts[1] is nil"}},
		{"negative slots", pool, []pglog.Option{pglog.WithGroupCommit(-1)}, []string{"WithGroupCommit(-1)", "negative"}},
		{"every bad argument", nil, []pglog.Option{nil, pglog.WithSchema("")}, []string{"pool is nil", "opts[0] is nil", `WithSchema("")`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := pglog.New(tt.pool, tt.opts...)
			require.Error(t, err, "New() = %v, nil; want an error", l)
			assert.Nil(t, l)
			assert.True(t, strings.HasPrefix(err.Error(), "pglog: New: "), "New() = %v; want the prefix pglog: New:", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w, "New() = %v; want it to say %q", err, w)
			}
		})
	}
	l, err := pglog.New(pool, pglog.WithSchema("Orders"), pglog.WithTracerProvider(nil), pglog.WithMeterProvider(nil))
	require.NoError(t, err, "New with nil providers")
	require.NotNil(t, l)
}

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	l, pool, schema := newLog(t, 4)
	ctx := testenv.Context(t, 10*time.Second)
	rec := saga.Record{ID: "a", Name: "order", Version: 1, Data: []byte("{}")}
	require.NoError(t, l.Create(ctx, rec, "owner", time.Minute))
	require.NoError(t, l.Migrate(ctx), "a second Migrate")
	_, _, err := l.Load(ctx, "a")
	require.NoError(t, err, "Load after a second Migrate")

	var versions []int
	rows, err := pool.Query(ctx, "SELECT version FROM "+pgx.Identifier{schema}.Sanitize()+".schema_migrations WHERE component = $1 ORDER BY version", pglog.ScopeName)
	require.NoError(t, err)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, versions)
	assert.Equal(t, 2, pglog.SchemaVersion)

	// A schema from a later version of the package is left alone.
	_, err = pool.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema}.Sanitize()+".schema_migrations (component, version) VALUES ($1, 99)", pglog.ScopeName)
	require.NoError(t, err)
	err = l.Migrate(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "version 99, newer than this package's 2")
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 10)
	schema := schemaName(t)
	ctx := testenv.Context(t, 20*time.Second)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		l := newLogIn(t, pool, schema)
		wg.Go(func() { errs[i] = l.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "Migrate %d of %d running at once", i, len(errs))
	}
	l := newLogIn(t, pool, schema)
	require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order"}, "owner", time.Minute))
}

// TestBeforeMigrate checks that calls before Migrate fail with the
// database's error and a hint.
func TestBeforeMigrate(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 2)
	l := newLogIn(t, pool, schemaName(t))
	ctx := testenv.Context(t, 10*time.Second)
	_, _, err := l.Load(ctx, "a")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has Migrate been called?")
	err = l.Append(ctx, "a", "owner", saga.Transition{Seq: 1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has Migrate been called?")
	assert.False(t, errors.Is(err, saga.ErrNotFound) || errors.Is(err, saga.ErrLeaseLost), "Append before Migrate = %v; want no saga sentinel", err)
}

// holdRow starts a transaction that locks saga id's row, runs more in it,
// and returns it with its backend's pid.
func holdRow(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema, id string, more ...string) (pgx.Tx, uint32) {
	t.Helper()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	_, err = tx.Exec(ctx, "SELECT FROM "+schema+".sagas WHERE id = $1 FOR UPDATE", id)
	require.NoError(t, err)
	for _, q := range more {
		_, err = tx.Exec(ctx, strings.ReplaceAll(q, "{s}", schema), id)
		require.NoError(t, err, q)
	}
	return tx, tx.Conn().PgConn().PID()
}

// waitBlockedBy waits until a backend waits for a lock that pid holds.
func waitBlockedBy(t *testing.T, ctx context.Context, pool *pgxpool.Pool, pid uint32) {
	t.Helper()
	require.Eventually(t, func() bool {
		var blocked bool
		err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE $1::integer = ANY(pg_blocking_pids(pid)))", int32(pid)).Scan(&blocked)
		return err == nil && blocked
	}, 5*time.Second, 5*time.Millisecond, "no backend waited for the lock of backend %d", pid)
}

// TestAppendSeqTakenWhileWaiting covers a Seq taken by a transaction that
// commits while the append waits for the saga's row. The primary key
// turns the transition away, and the append's UPDATE (here a final status that would end the lease)
// is rolled back with it.
func TestAppendSeqTakenWhileWaiting(t *testing.T) {
	t.Parallel()
	l, pool, _ := newLog(t, 4)
	schema := pglog.Schema(l)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order"}, "owner", time.Minute))

	tx, pid := holdRow(t, ctx, pool, schema, "a",
		`INSERT INTO {s}.transitions (saga_id, seq, status, step, phase, kind, attempt, error) VALUES ($1, 1, '', 'other', 'forward', 'succeeded', 1, '')`)
	done := make(chan error, 1)
	go func() {
		done <- l.Append(ctx, "a", "owner", saga.Transition{Seq: 1, Status: saga.Completed, Step: "mine", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1})
	}()
	waitBlockedBy(t, ctx, pool, pid)
	require.NoError(t, tx.Commit(ctx))
	err := <-done
	require.ErrorIs(t, err, saga.ErrLeaseLost)
	assert.Contains(t, err.Error(), "has a transition of [1] already")

	rec, ts, err := l.Load(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, saga.Running, rec.Status, "the failed append's status")
	require.Len(t, ts, 1)
	assert.Equal(t, "other", ts[0].Step)
	lost, err := l.Renew(ctx, "owner", time.Minute, []string{"a"})
	require.NoError(t, err)
	assert.Empty(t, lost, "the failed append's final status ended the lease")
	require.NoError(t, l.Append(ctx, "a", "owner", saga.Transition{Seq: 2, Step: "next", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}))
}

// TestAppendWaitsForClaim checks that an append that waits for the saga's
// row while another owner's claim holds it sees the new owner once the
// claim commits, and records nothing.
func TestAppendWaitsForClaim(t *testing.T) {
	t.Parallel()
	l, pool, _ := newLog(t, 4)
	schema := pglog.Schema(l)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order"}, "old", time.Minute))

	tx, pid := holdRow(t, ctx, pool, schema, "a", `UPDATE {s}.sagas SET owner = 'new' WHERE id = $1`)
	done := make(chan error, 1)
	go func() {
		done <- l.Append(ctx, "a", "old", saga.Transition{Seq: 1, Status: saga.Compensating, Step: "old", Phase: saga.Forward, Kind: saga.Failed, Attempt: 1})
	}()
	waitBlockedBy(t, ctx, pool, pid)
	require.NoError(t, tx.Commit(ctx))
	err := <-done
	require.ErrorIs(t, err, saga.ErrLeaseLost)
	assert.Contains(t, err.Error(), `not leased to "old"`)
	rec, ts, err := l.Load(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, saga.Running, rec.Status)
	assert.Empty(t, ts)
	require.NoError(t, l.Append(ctx, "a", "new", saga.Transition{Seq: 1, Step: "new", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}))
}

// TestClaimSkipsLockedSagas checks that a claim does not wait for a saga
// whose row another transaction (an append, a claim) holds: it passes it
// over and takes the next.
func TestClaimSkipsLockedSagas(t *testing.T) {
	t.Parallel()
	l, pool, _ := newLog(t, 4)
	schema := pglog.Schema(l)
	ctx := testenv.Context(t, 10*time.Second)
	for _, id := range []string{"a", "b"} {
		require.NoError(t, l.Create(ctx, saga.Record{ID: id, Name: "order"}, "", time.Minute)) // no owner: claimable
	}
	_, _ = holdRow(t, ctx, pool, schema, "a")
	start := time.Now()
	recs, err := l.Claim(ctx, "claimer", []string{"order"}, time.Minute, 10)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 2*time.Second, "Claim waited for a locked row")
	require.Len(t, recs, 1)
	assert.Equal(t, "b", recs[0].ID)
}

// TestLeaseUsesDatabaseClock checks that the lease is written from the
// database's clock: lease_until is now() plus the lease.
func TestLeaseUsesDatabaseClock(t *testing.T) {
	t.Parallel()
	l, pool, _ := newLog(t, 4)
	schema := pglog.Schema(l)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order"}, "owner", 90*time.Second))
	var left time.Duration
	require.NoError(t, pool.QueryRow(ctx, "SELECT (extract(epoch FROM lease_until - now()) * 1e6)::bigint * 1000 FROM "+schema+".sagas WHERE id = 'a'").Scan(&left))
	assert.InDelta(t, float64(90*time.Second), float64(left), float64(5*time.Second), "lease left: %v", left)
	_, err := l.Renew(ctx, "owner", 10*time.Minute, []string{"a"})
	require.NoError(t, err)
	require.NoError(t, pool.QueryRow(ctx, "SELECT (extract(epoch FROM lease_until - now()) * 1e6)::bigint * 1000 FROM "+schema+".sagas WHERE id = 'a'").Scan(&left))
	assert.InDelta(t, float64(10*time.Minute), float64(left), float64(5*time.Second), "lease left after Renew: %v", left)
}
