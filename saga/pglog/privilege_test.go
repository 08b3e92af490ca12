package pglog_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
)

// TestDeleteNeedsNoPrivilegeOnTransitions deletes and truncates sagas as
// a role granted DELETE and TRUNCATE on the sagas alone (a retention
// job's, say), as version 1's cascade allowed, for it ran with the rights
// of the transitions' owner: the trigger must take the transitions with
// them, not fail for want of a privilege on them.
func TestDeleteNeedsNoPrivilegeOnTransitions(t *testing.T) {
	t.Parallel()
	l, pool, schema := newLog(t, 4)
	ctx := testenv.Context(t, 20*time.Second)
	q := pgx.Identifier{schema}.Sanitize()
	var b [4]byte
	_, _ = rand.Read(b[:])
	role := pgx.Identifier{"pglog_test_retention_" + hex.EncodeToString(b[:])}.Sanitize()
	for _, stmt := range []string{
		"CREATE ROLE " + role,
		"GRANT USAGE ON SCHEMA " + q + " TO " + role,
		"GRANT SELECT, DELETE, TRUNCATE ON " + q + ".sagas TO " + role,
	} {
		_, err := pool.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, testenv.PostgresURL(t))
		if err != nil {
			t.Errorf("dropping role %s: %v", role, err)
			return
		}
		defer conn.Close(ctx)
		for _, stmt := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				t.Errorf("%s: %v", stmt, err)
			}
		}
	})
	for _, id := range []string{"a", "b"} {
		require.NoError(t, l.Create(ctx, saga.Record{ID: id, Name: "order", Version: 1}, "owner", time.Minute))
		require.NoError(t, l.Append(ctx, id, "owner", saga.Transition{Seq: 1, Step: "pay", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}))
	}
	left := func() (n int) {
		t.Helper()
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*)::int FROM `+q+`.transitions`).Scan(&n))
		return n
	}
	asRole := func(stmt string) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		_, err = tx.Exec(ctx, "SET LOCAL ROLE "+role)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
		require.NoError(t, tx.Commit(ctx))
	}
	asRole(`DELETE FROM ` + q + `.sagas WHERE id = 'a'`)
	require.Equal(t, 1, left(), "transitions after deleting one of two sagas")
	asRole(`TRUNCATE ` + q + `.sagas`)
	require.Zero(t, left(), "transitions after truncating the sagas")
}
