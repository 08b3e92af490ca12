package pglog_test

import (
	"context"
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

// TestMigrateUpgradesVersion1 checks that Migrate brings tables of
// version 1 (with the transitions' foreign key) to version 2 in place:
// the sagas and transitions written before are loaded as they were, the
// key is gone, and deleting or truncating sagas still takes their
// transitions with them.
func TestMigrateUpgradesVersion1(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	ctx := testenv.Context(t, 20*time.Second)
	l := newLogIn(t, pool, schema)
	require.NoError(t, pglog.MigrateTo(ctx, l, 1))
	require.Equal(t, 1, foreignKeys(ctx, t, pool, schema), "foreign keys of the transitions at version 1")

	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		require.NoError(t, l.Create(ctx, saga.Record{ID: id, Name: "order", Version: 1, Data: []byte(`{"id":"` + id + `"}`)}, "owner", time.Minute))
		require.NoError(t, l.Append(ctx, id, "owner",
			saga.Transition{Seq: 1, Step: "pay", Phase: saga.Forward, Kind: saga.Started, Attempt: 1},
			saga.Transition{Seq: 2, Step: "pay", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: []byte(`{"paid":true}`)}))
	}
	require.NoError(t, l.Append(ctx, "c", "owner", saga.Transition{Seq: 3, Status: saga.Completed}))
	type loaded struct {
		rec saga.Record
		ts  []saga.Transition
	}
	before := map[string]loaded{}
	for _, id := range ids {
		rec, ts, err := l.Load(ctx, id)
		require.NoError(t, err)
		before[id] = loaded{rec, ts}
	}

	require.NoError(t, l.Migrate(ctx))
	require.Equal(t, []int{1, 2}, versions(ctx, t, pool, schema))
	require.Zero(t, foreignKeys(ctx, t, pool, schema), "foreign keys of the transitions at version 2")
	for _, id := range ids {
		rec, ts, err := l.Load(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, before[id], loaded{rec, ts}, "saga %s after the upgrade", id)
	}
	require.NoError(t, l.Append(ctx, "a", "owner", saga.Transition{Seq: 3, Status: saga.Completed}), "Append after the upgrade")
	checkDeletesTakeTransitions(ctx, t, pool, schema, ids)
}

// TestDeletesTakeTransitions checks that, in tables made at the latest
// version, deleting a saga deletes its transitions and no other's, and
// that truncating the sagas truncates the transitions.
func TestDeletesTakeTransitions(t *testing.T) {
	t.Parallel()
	l, pool, schema := newLog(t, 4)
	ctx := testenv.Context(t, 20*time.Second)
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		require.NoError(t, l.Create(ctx, saga.Record{ID: id, Name: "order", Version: 1}, "owner", time.Minute))
		require.NoError(t, l.Append(ctx, id, "owner", saga.Transition{Seq: 1, Step: "pay", Phase: saga.Forward, Kind: saga.Started, Attempt: 1},
			saga.Transition{Seq: 2, Status: saga.Completed}))
	}
	require.Zero(t, foreignKeys(ctx, t, pool, schema), "foreign keys of the transitions")
	checkDeletesTakeTransitions(ctx, t, pool, schema, ids)
}

// checkDeletesTakeTransitions deletes the first two sagas of ids, one at
// a time, checking each time that the deleted saga's transitions went
// with it and those of the sagas left are all there, and then truncates
// the sagas, which must leave no transition.
func checkDeletesTakeTransitions(ctx context.Context, t *testing.T, pool *pgxpool.Pool, schema string, ids []string) {
	t.Helper()
	q := pgx.Identifier{schema}.Sanitize()
	counts := func() map[string]int {
		rows, err := pool.Query(ctx, `SELECT saga_id, count(*)::int FROM `+q+`.transitions GROUP BY saga_id`)
		require.NoError(t, err)
		m := map[string]int{}
		for rows.Next() {
			var id string
			var n int
			require.NoError(t, rows.Scan(&id, &n))
			m[id] = n
		}
		require.NoError(t, rows.Err())
		return m
	}
	all := counts()
	require.Len(t, all, len(ids), "sagas with transitions before the deletes")
	for k, id := range ids[:2] {
		_, err := pool.Exec(ctx, `DELETE FROM `+q+`.sagas WHERE id = $1`, id)
		require.NoError(t, err)
		delete(all, id)
		require.Equal(t, all, counts(), "transitions after deleting saga %s (%d of %d)", id, k+1, len(ids))
	}
	_, err := pool.Exec(ctx, `TRUNCATE `+q+`.sagas`)
	require.NoError(t, err)
	require.Empty(t, counts(), "transitions after truncating the sagas")
}

// foreignKeys returns how many foreign keys the transitions of schema have.
func foreignKeys(ctx context.Context, t *testing.T, pool *pgxpool.Pool, schema string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*)::int FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'`,
		pgx.Identifier{schema, "transitions"}.Sanitize()).Scan(&n))
	return n
}

// versions returns the versions of the log's tables recorded in schema.
func versions(ctx context.Context, t *testing.T, pool *pgxpool.Pool, schema string) []int {
	t.Helper()
	rows, err := pool.Query(ctx, "SELECT version FROM "+pgx.Identifier{schema}.Sanitize()+".schema_migrations WHERE component = $1 ORDER BY version", pglog.ScopeName)
	require.NoError(t, err)
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	return vs
}
