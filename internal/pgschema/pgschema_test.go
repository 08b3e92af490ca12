package pgschema_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/pgschema"
	"github.com/otelpatterns/patterns/internal/testenv"
)

func TestCheckName(t *testing.T) {
	for _, name := range []string{"saga", "Orders", "with space", `quo"te`, "ünïcødé", strings.Repeat("s", 11), "PG_upper"} {
		assert.NoError(t, pgschema.CheckName(name, 11), "%q", name)
	}
	for _, tt := range []struct{ name, want string }{
		{"", "empty schema name"},
		{strings.Repeat("s", 12), "schema name of 12 bytes; at most 11"},
		{"bad\xff", "schema name is not valid UTF-8"},
		{"nul\x00", "schema name contains NUL"},
		{"pg_x", `schema names starting with "pg_" are reserved by PostgreSQL`},
	} {
		err := pgschema.CheckName(tt.name, 11)
		if assert.Error(t, err, "%q", tt.name) {
			assert.Equal(t, tt.want, err.Error())
		}
	}
}

func TestLockKey(t *testing.T) {
	h := fnv.New64a()
	h.Write([]byte("example.com/p\x00migrate\x00s"))
	assert.Equal(t, int64(h.Sum64()), pgschema.LockKey("example.com/p", "migrate", "s"), "the key is the FNV-1a hash of scope, purpose and schema")
	assert.NotEqual(t, pgschema.LockKey("p", "migrate", "s"), pgschema.LockKey("p", "append", "s"))
	assert.NotEqual(t, pgschema.LockKey("p", "migrate", "s"), pgschema.LockKey("p", "migrate", "t"))
	assert.NotEqual(t, pgschema.LockKey("p", "migrate", "s"), pgschema.LockKey("q", "migrate", "s"))
}

func TestErr(t *testing.T) {
	missing := fmt.Errorf("query: %w", &pgconn.PgError{Code: "42P01"})
	other := errors.New("other")

	err := pgschema.Err(context.Background(), missing)
	assert.ErrorIs(t, err, missing)
	assert.Contains(t, err.Error(), "(has Migrate been called?)")
	assert.Contains(t, pgschema.Hint(&pgconn.PgError{Code: "3F000"}).Error(), "(has Migrate been called?)")
	assert.Equal(t, other, pgschema.Err(context.Background(), other))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = pgschema.Err(ctx, other)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, other)
	assert.Equal(t, context.Canceled, pgschema.Err(ctx, context.Canceled), "an error that is the context's is returned as is")
}

func TestMigrate(t *testing.T) {
	pool := testenv.PostgresPool(t, 4)
	schema := testenv.Schema(t, "pgschema_test_")
	ctx := testenv.Context(t, 10*time.Second)
	key := pgschema.LockKey("test", "migrate", schema)
	q := pgx.Identifier{schema}.Sanitize()
	v1 := []string{`CREATE TABLE {s}.a (x int)`}
	v2 := append(v1, `CREATE TABLE {s}.b (y int)`)

	version := func() (v int) {
		t.Helper()
		require.NoError(t, pool.QueryRow(ctx, "SELECT max(version) FROM "+q+".schema_migrations").Scan(&v))
		return v
	}
	// Concurrent migrations take turns; one creates, the others find
	// nothing to do.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { assert.NoError(t, pgschema.Migrate(ctx, pool, schema, key, v1)) })
	}
	wg.Wait()
	assert.Equal(t, 1, version())
	require.NoError(t, pgschema.Migrate(ctx, pool, schema, key, v2))
	assert.Equal(t, 2, version())
	_, err := pool.Exec(ctx, "INSERT INTO "+q+".b VALUES (1)")
	require.NoError(t, err)

	err = pgschema.Migrate(ctx, pool, schema, key, v1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the schema is at version 2, newer than this package's 1")

	// A failing migration changes nothing.
	err = pgschema.Migrate(ctx, pool, schema, key, append(v2, `CREATE TABLE {s}.c (z int)`, `bad sql`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "migration 4")
	assert.Equal(t, 2, version())
	var c bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".c").Scan(&c))
	assert.False(t, c, "table c of the failed migration 3 survived")
}
