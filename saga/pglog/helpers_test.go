package pglog_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// newPool returns a pool of at most maxConns connections to the database
// of PATTERNS_POSTGRES_URL, closed when the test ends, or skips the test.
func newPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// schemaName returns a schema name private to this test run, made of the
// test's name and a random suffix, dropped (with everything in it) when
// the test ends.
func schemaName(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	schema := "pglog_test_" + name + "_" + hex.EncodeToString(b[:])
	url := testenv.PostgresURL(t)
	t.Cleanup(func() { dropSchema(t, url, schema) })
	return schema
}

// dropSchema drops schema on a connection of its own, so that it works
// after the test closed its pool.
func dropSchema(t testing.TB, url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("dropping schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("dropping schema %s: %v", schema, err)
	}
}

// newLog returns a migrated log in a schema of the test's own, on a pool
// of its own of maxConns connections.
func newLog(t testing.TB, maxConns int32, opts ...pglog.Option) (*pglog.Log, *pgxpool.Pool, string) {
	t.Helper()
	pool := newPool(t, maxConns)
	schema := schemaName(t)
	l := newLogIn(t, pool, schema, opts...)
	require.NoError(t, l.Migrate(ctxWithin(t, 10*time.Second)))
	return l, pool, schema
}

// newLogIn returns a log of schema on pool, not migrated.
func newLogIn(t testing.TB, pool *pgxpool.Pool, schema string, opts ...pglog.Option) *pglog.Log {
	t.Helper()
	l, err := pglog.New(pool, append([]pglog.Option{pglog.WithSchema(schema)}, opts...)...)
	require.NoError(t, err)
	return l
}

// ctxWithin returns a context that ends after d, or with the test.
func ctxWithin(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
