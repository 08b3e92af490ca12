package pgschema_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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

func TestMigrateComponent(t *testing.T) {
	pool := testenv.PostgresPool(t, 4)
	schema := testenv.Schema(t, "pgschema_test_")
	ctx := testenv.Context(t, 10*time.Second)
	q := pgx.Identifier{schema}.Sanitize()
	v1 := pgschema.Component{Name: "example.com/a", Migrations: []string{`CREATE TABLE {s}.a (x int)`}}
	v2 := v1
	v2.Migrations = append(v1.Migrations[:1:1], `CREATE TABLE {s}.b (y int)`)

	version := func() (v int) {
		t.Helper()
		require.NoError(t, pool.QueryRow(ctx, "SELECT max(version) FROM "+q+".schema_migrations WHERE component = $1", v1.Name).Scan(&v))
		return v
	}
	// Concurrent migrations take turns; one creates, the others find
	// nothing to do.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { assert.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, v1)) })
	}
	wg.Wait()
	assert.Equal(t, 1, version())
	require.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, v2))
	assert.Equal(t, 2, version())
	_, err := pool.Exec(ctx, "INSERT INTO "+q+".b VALUES (1)")
	require.NoError(t, err)

	// A failing migration changes nothing.
	bad := v2
	bad.Migrations = append(v2.Migrations[:2:2], `CREATE TABLE {s}.c (z int)`, `bad sql`)
	err = pgschema.MigrateComponent(ctx, pool, schema, bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "migration 4")
	assert.Equal(t, 2, version())
	assert.False(t, exists(t, ctx, pool, schema, "c"), "table c of the failed migration 3 survived")
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
	a := pgschema.Component{Name: "example.com/a", Migrations: []string{
		`CREATE TABLE {s}.a1 (x int)`, `CREATE TABLE {s}.a2 (x int)`,
	}}
	b := pgschema.Component{Name: "example.com/b", Migrations: []string{`CREATE TABLE {s}.b1 (x int)`}}
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

// legacy makes schema as an earlier release left it: statements run in
// a new schema, holding a schema_migrations table of one version per
// schema with versions (none if versions is empty and withTable false).
func legacy(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string, withTable bool, versions []int, stmts ...string) {
	t.Helper()
	q := pgx.Identifier{schema}.Sanitize()
	all := []string{"CREATE SCHEMA " + q}
	if withTable {
		all = append(all, "CREATE TABLE "+q+".schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
	}
	for _, stmt := range stmts {
		all = append(all, strings.ReplaceAll(stmt, "{s}", q))
	}
	for _, v := range versions {
		all = append(all, fmt.Sprintf("INSERT INTO %s.schema_migrations (version) VALUES (%d)", q, v))
	}
	for _, stmt := range all {
		_, err := pool.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
}

// recorded returns the rows of schema's schema_migrations, as
// "component/version".
func recorded(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string) []string {
	t.Helper()
	rows, err := pool.Query(ctx, "SELECT component, version FROM "+pgx.Identifier{schema}.Sanitize()+".schema_migrations ORDER BY 1, 2")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var c string
		var v int
		err := r.Scan(&c, &v)
		return fmt.Sprintf("%s/%d", c, v), err
	})
	require.NoError(t, err)
	return got
}

// TestMigrateComponentUpgradesLegacy: a schema that an earlier release
// migrated (one version for the schema, or none kept) keeps its tables:
// each package adopts the migrations whose tables exist, runs the others,
// and the earlier rows stay as those of component "".
func TestMigrateComponentUpgradesLegacy(t *testing.T) {
	pool := testenv.PostgresPool(t, 4)
	ctx := testenv.Context(t, 20*time.Second)
	a := pgschema.Component{Name: "example.com/a", Released: []string{"a1", "a2"}, Migrations: []string{
		`CREATE TABLE {s}.a1 (x int)`, `CREATE TABLE {s}.a2 (x int)`, `CREATE TABLE {s}.a3 (x int)`,
	}}
	b := pgschema.Component{Name: "example.com/b", Released: []string{"b1"}, Migrations: []string{`CREATE TABLE {s}.b1 (x int)`}}
	c := pgschema.Component{Name: "example.com/c", Released: []string{"c1"}, Migrations: []string{`CREATE TABLE {s}.c1 (x int)`}}

	for _, tt := range []struct {
		name     string
		table    bool
		versions []int
		stmts    []string
	}{
		// a alone, at its versions 1 and 2.
		{"a alone", true, []int{1, 2}, []string{a.Migrations[0], a.Migrations[1]}},
		// b migrated first (version 1); a then took the schema for its
		// version 1, skipped its first migration and ran its second:
		// the bug of one version per schema (issue 14 item 10).
		{"b then a, a1 missing", true, []int{1, 2}, []string{b.Migrations[0], a.Migrations[1]}},
		// c kept no versions at all.
		{"c without versions", false, nil, []string{c.Migrations[0]}},
	} {
		for _, order := range [][]pgschema.Component{{a, b, c}, {c, b, a}} {
			t.Run(tt.name+" "+order[0].Name, func(t *testing.T) {
				schema := testenv.Schema(t, "pgschema_test_")
				legacy(t, ctx, pool, schema, tt.table, tt.versions, tt.stmts...)
				for _, comp := range order {
					require.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, comp), comp.Name)
				}
				for _, table := range []string{"a1", "a2", "a3", "b1", "c1"} {
					assert.True(t, exists(t, ctx, pool, schema, table), "table %s", table)
				}
				want := []string{"example.com/a/1", "example.com/a/2", "example.com/a/3", "example.com/b/1", "example.com/c/1"}
				for _, v := range tt.versions {
					want = append([]string{fmt.Sprintf("/%d", v)}, want...)
				}
				slices.Sort(want)
				assert.Equal(t, want, recorded(t, ctx, pool, schema))
				for _, comp := range order { // again: nothing to do
					require.NoError(t, pgschema.MigrateComponent(ctx, pool, schema, comp), comp.Name)
				}
			})
		}
	}
}
