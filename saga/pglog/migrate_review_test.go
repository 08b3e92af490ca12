package pglog_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// TestDeletesTakeTransitionsOddSchema upgrades version 1 tables to the
// latest in a schema whose name needs quoting and holds what the
// trigger function's body could trip on (a double quote, "$$", a single
// quote, capitals, a dot), and checks that deletes and TRUNCATE take the
// transitions.
func TestDeletesTakeTransitionsOddSchema(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := testenv.DropSchemaAtEnd(t, `Odd "$$' s.ch `+schemaName(t)[len("pglog_test_"):])
	ctx := testenv.Context(t, 20*time.Second)
	l := newLogIn(t, pool, schema)
	require.NoError(t, pglog.MigrateTo(ctx, l, 1))
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		require.NoError(t, l.Create(ctx, saga.Record{ID: id, Name: "order", Version: 1}, "owner", time.Minute))
		require.NoError(t, l.Append(ctx, id, "owner", saga.Transition{Seq: 1, Step: "pay", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}))
	}
	require.NoError(t, l.Migrate(ctx))
	require.Zero(t, foreignKeys(ctx, t, pool, schema), "foreign keys of the transitions")
	checkDeletesTakeTransitions(ctx, t, pool, schema, ids)
}

// TestMigrateUpgradesLegacyVersion1 upgrades the tables of the first
// release, whose schema_migrations kept one version for the whole schema
// (here 1, as pgstore's would overwrite it too): they are adopted at
// version 1 and upgraded to the latest, their data kept.
func TestMigrateUpgradesLegacyVersion1(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	ctx := testenv.Context(t, 20*time.Second)
	l := newLogIn(t, pool, schema)
	require.NoError(t, pglog.MigrateTo(ctx, l, 1))
	q := pgx.Identifier{schema}.Sanitize()
	for _, stmt := range []string{
		"DROP TABLE " + q + ".schema_migrations",
		"CREATE TABLE " + q + ".schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		"INSERT INTO " + q + ".schema_migrations (version) VALUES (1)",
	} {
		_, err := pool.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		require.NoError(t, l.Create(ctx, saga.Record{ID: id, Name: "order", Version: 1}, "owner", time.Minute))
		require.NoError(t, l.Append(ctx, id, "owner", saga.Transition{Seq: 1, Step: "pay", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}))
	}
	require.NoError(t, l.Migrate(ctx))
	require.Equal(t, []int{1, 2}, versions(ctx, t, pool, schema))
	require.Zero(t, foreignKeys(ctx, t, pool, schema), "foreign keys of the transitions")
	_, ts, err := l.Load(ctx, "a")
	require.NoError(t, err)
	require.Len(t, ts, 1, "transitions of saga a after the upgrade")
	checkDeletesTakeTransitions(ctx, t, pool, schema, ids)
}
