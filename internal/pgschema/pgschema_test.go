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

// exists reports whether table exists in schema.
func exists(t *testing.T, ctx context.Context, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema, table string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{schema, table}.Sanitize()).Scan(&ok))
	return ok
}

// TestMigrateComponentsShareASchema protects against the bug of one
// version per schema: two packages sharing a schema each get their tables,
// in either order and at once.
func TestMigrateComponentsShareASchema(t *testing.T) {
	pool := testenv.PostgresPool(t, 8)
	ctx := testenv.Context(t, 20*time.Second)
	a := pgschema.Component{Name: "example.com/a", Probe: "a1", Migrations: []string{
		`CREATE TABLE {s}.a1 (x int)`, `CREATE TABLE {s}.a2 (x int)`,
	}}
	b := pgschema.Component{Name: "example.com/b", Probe: "b1", Migrations: []string{`CREATE TABLE {s}.b1 (x int)`}}
	for name, order := range map[string][]pgschema.Component{"a then b": {a, b}, "b then a": {b, a}} {
		t.Run(name, func(t *testing.T) {
			schema := testenv.Schema(t, "pgschema_test_")
			for _, c := range order {
				require.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, c), c.Name)
			}
			for _, table := range []string{"a1", "a2", "b1"} {
				assert.True(t, exists(t, ctx, pool, schema, table), "table %s", table)
			}
			for _, c := range order { // again: nothing to do
				require.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, c), c.Name)
			}
		})
	}
	t.Run("concurrently", func(t *testing.T) {
		schema := testenv.Schema(t, "pgschema_test_")
		var wg sync.WaitGroup
		for range 3 {
			for _, c := range []pgschema.Component{a, b} {
				wg.Go(func() { assert.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, c), c.Name) })
			}
		}
		wg.Wait()
		for _, table := range []string{"a1", "a2", "b1"} {
			assert.True(t, exists(t, ctx, pool, schema, table), "table %s", table)
		}
	})
	t.Run("newer", func(t *testing.T) {
		schema := testenv.Schema(t, "pgschema_test_")
		require.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, a))
		old := a
		old.Migrations = a.Migrations[:1]
		err := pgschema.MigrateComponent(ctx, pool, schema, old)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "the tables of example.com/a are at version 2, newer than this package's 1")
		require.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, b), "b is not held back by a's version")
	})
}

// TestMigrateComponentUpgradesLegacy: a schema that an earlier release
// migrated (one version for the schema) keeps its tables: the package
// whose probe table exists takes the versions, another starts at 0.
func TestMigrateComponentUpgradesLegacy(t *testing.T) {
	pool := testenv.PostgresPool(t, 4)
	ctx := testenv.Context(t, 20*time.Second)
	schema := testenv.Schema(t, "pgschema_test_")
	q := pgx.Identifier{schema}.Sanitize()
	// What an earlier release left: a's two migrations, recorded as the
	// schema's versions 1 and 2.
	for _, stmt := range []string{
		"CREATE SCHEMA " + q,
		"CREATE TABLE " + q + ".schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		"CREATE TABLE " + q + ".a1 (x int)", "CREATE TABLE " + q + ".a2 (x int)",
		"INSERT INTO " + q + ".schema_migrations (version) VALUES (1), (2)",
	} {
		_, err := pool.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	a := pgschema.Component{Name: "example.com/a", Probe: "a1", Migrations: []string{
		`CREATE TABLE {s}.a1 (x int)`, `CREATE TABLE {s}.a2 (x int)`, `CREATE TABLE {s}.a3 (x int)`,
	}}
	b := pgschema.Component{Name: "example.com/b", Probe: "b1", Migrations: []string{`CREATE TABLE {s}.b1 (x int)`}}
	require.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, b), "b's probe does not exist: it starts at 0")
	require.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, a), "a takes versions 1 and 2 and runs only 3")
	for _, table := range []string{"a1", "a2", "a3", "b1"} {
		assert.True(t, exists(t, ctx, pool, schema, table), "table %s", table)
	}
	rows, err := pool.Query(ctx, "SELECT component, version FROM "+q+".schema_migrations ORDER BY 1, 2")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var c string
		var v int
		err := r.Scan(&c, &v)
		return fmt.Sprintf("%s/%d", c, v), err
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"example.com/a/1", "example.com/a/2", "example.com/a/3", "example.com/b/1"}, got)
}
