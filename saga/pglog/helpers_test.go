package pglog_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// schemaName returns a schema name private to this test run, made of the
// test's name and a random suffix, dropped (with everything in it) when
// the test ends.
func schemaName(t testing.TB) string { return testenv.Schema(t, "pglog_test_") }

// newLog returns a migrated log in a schema of the test's own, on a pool
// of its own of maxConns connections.
func newLog(t testing.TB, maxConns int32, opts ...pglog.Option) (*pglog.Log, *pgxpool.Pool, string) {
	t.Helper()
	pool := testenv.PostgresPool(t, maxConns)
	schema := schemaName(t)
	l := newLogIn(t, pool, schema, opts...)
	require.NoError(t, l.Migrate(testenv.Context(t, 10*time.Second)))
	return l, pool, schema
}

// newLogIn returns a log of schema on pool, not migrated.
func newLogIn(t testing.TB, pool *pgxpool.Pool, schema string, opts ...pglog.Option) *pglog.Log {
	t.Helper()
	l, err := pglog.New(pool, append([]pglog.Option{pglog.WithSchema(schema)}, opts...)...)
	require.NoError(t, err)
	return l
}
