package pglog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// TestDeleteInRepeatableReadLeavesNoTransitions deletes a saga in a
// transaction of each isolation level whose snapshot was taken before an
// Append that sets no status (which locks the saga's row, but writes no
// new version of it) committed. The delete must either fail to
// serialize, as the foreign key of version 1 made it, or be refused
// (version 2 refuses to delete a leased saga but in read committed), or
// take the appended transitions with it: transitions left behind would
// belong to the next saga created with the same id.
func TestDeleteInRepeatableReadLeavesNoTransitions(t *testing.T) {
	t.Parallel()
	for _, version := range []int{1, pglog.SchemaVersion} {
		for _, iso := range []pgx.TxIsoLevel{pgx.ReadCommitted, pgx.RepeatableRead, pgx.Serializable} {
			t.Run(string(iso)+"/v"+string(rune('0'+version)), func(t *testing.T) {
				t.Parallel()
				pool := testenv.PostgresPool(t, 4)
				schema := schemaName(t)
				ctx := testenv.Context(t, 20*time.Second)
				l := newLogIn(t, pool, schema)
				require.NoError(t, pglog.MigrateTo(ctx, l, version))
				q := pgx.Identifier{schema}.Sanitize()
				require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order", Version: 1}, "owner", time.Minute))

				tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: iso})
				require.NoError(t, err)
				defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
				_, err = tx.Exec(ctx, `SELECT count(*) FROM `+q+`.schema_migrations`) // takes the snapshot
				require.NoError(t, err)

				require.NoError(t, l.Append(ctx, "a", "owner", saga.Transition{Seq: 1, Step: "pay", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}))

				_, err = tx.Exec(ctx, `DELETE FROM `+q+`.sagas WHERE id = 'a'`)
				if err == nil {
					err = tx.Commit(ctx)
				}
				var pgErr *pgconn.PgError
				if err != nil {
					require.True(t, errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "55000"), "the delete failed, but not to serialize nor refused: %v", err)
					return
				}
				var left int
				require.NoError(t, pool.QueryRow(ctx, `SELECT count(*)::int FROM `+q+`.transitions WHERE saga_id = 'a'`).Scan(&left))
				require.Zero(t, left, "transitions of the deleted saga left behind")
			})
		}
	}
}

// TestDeleteFinishedInRepeatableRead checks that a saga that no one
// leases (finished) can still be deleted, with its transitions, in a
// transaction of repeatable read.
func TestDeleteFinishedInRepeatableRead(t *testing.T) {
	t.Parallel()
	l, pool, schema := newLog(t, 4)
	ctx := testenv.Context(t, 20*time.Second)
	q := pgx.Identifier{schema}.Sanitize()
	require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order", Version: 1}, "owner", time.Minute))
	require.NoError(t, l.Append(ctx, "a", "owner", saga.Transition{Seq: 1, Step: "pay", Phase: saga.Forward, Kind: saga.Started, Attempt: 1},
		saga.Transition{Seq: 2, Status: saga.Completed}))
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, err = tx.Exec(ctx, `DELETE FROM `+q+`.sagas WHERE id = 'a'`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	var left int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*)::int FROM `+q+`.transitions`).Scan(&left))
	require.Zero(t, left, "transitions of the deleted saga left behind")
}
