// Package pgschema holds what the module's PostgreSQL packages
// (eventsource/pgstore, saga/pglog, cqrs/pgcheckpoint) do alike with the
// schema that holds their tables: check its name ([CheckName]), derive
// advisory lock keys from it ([LockKey]), create it ([Create]) and bring
// each package's tables to their version ([MigrateComponent]), and explain the errors of a
// statement run before the tables exist ([Err], [Hint]).
package pgschema

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CheckName returns an error if name cannot be a schema of the package:
// empty, longer than maxLen bytes, not UTF-8, with a NUL, or starting with
// "pg_", which PostgreSQL reserves.
func CheckName(name string, maxLen int) error {
	switch {
	case name == "":
		return fmt.Errorf("empty schema name")
	case len(name) > maxLen:
		return fmt.Errorf("schema name of %d bytes; at most %d", len(name), maxLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("schema name is not valid UTF-8")
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("schema name contains NUL")
	case strings.HasPrefix(name, "pg_"):
		return fmt.Errorf(`schema names starting with "pg_" are reserved by PostgreSQL`)
	}
	return nil
}

// LockKey returns the key of an advisory lock for purpose in schema, taken
// by the package scope (its import path): the FNV-1a hash of the three.
func LockKey(scope, purpose, schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte(scope + "\x00" + purpose + "\x00" + schema))
	return int64(h.Sum64())
}

// Create takes the transaction advisory lock lockKey in tx, so that
// concurrent migrations of schema run one at a time, and creates schema
// unless it exists. It asks first, for CREATE SCHEMA IF NOT EXISTS needs
// the privilege to create schemas even when the schema exists.
func Create(ctx context.Context, tx pgx.Tx, schema string, lockKey int64) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
		return err
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return err
		}
	}
	return nil
}

// Component is one package's tables in a schema, as [MigrateComponent]
// brings them to their latest version.
type Component struct {
	// Name identifies the package's migrations in schema_migrations: its
	// import path.
	Name string
	// Released names, for each migration released before versions were
	// kept per package, the table it creates: Released[i] for
	// Migrations[i]. A package with no version recorded in the schema,
	// whose tables an earlier release made (one that kept one version
	// for the whole schema, or none), has each of those migrations whose
	// table exists recorded as applied instead of run.
	Released []string
	// Migrations upgrade the package's tables: Migrations[i] from version
	// i to i+1, with "{s}" standing for the quoted schema name.
	Migrations []string
}

// migrateLockScope names the advisory lock that every package's
// MigrateComponent takes for a schema: one lock, so that packages sharing
// a schema migrate it one at a time.
const migrateLockScope = "github.com/otelpatterns/patterns/internal/pgschema"

// MigrateLockKey returns the key of the transaction advisory lock that
// [MigrateComponent] takes for schema, whatever the package.
func MigrateLockKey(schema string) int64 { return LockKey(migrateLockScope, "migrate", schema) }

// MigrateComponent brings c's tables in schema to version
// len(c.Migrations), in one transaction of pool: it [Create]s the schema
// under an advisory lock that every package shares ([MigrateLockKey]),
// reads c's version from the schema's schema_migrations table (created
// if need be; one row per package and version), and runs each migration
// that is due, recording it. Several packages can so share a schema, each
// with its own versions.
//
// A schema_migrations table of an earlier release, keyed by version alone
// and so shared by every package of the schema, is given a component
// column; its rows, which cannot be told apart (two packages sharing a
// schema overwrote each other's versions), are kept with the component
// "" and otherwise ignored. A package with no rows of its own adopts its
// tables instead, by the tables of c.Released that exist.
//
// It fails, changing nothing, if c's tables are at a version newer than
// len(c.Migrations), or if a migration fails.
func MigrateComponent(ctx context.Context, pool *pgxpool.Pool, schema string, c Component) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := Create(ctx, tx, schema, MigrateLockKey(schema)); err != nil {
		return err
	}
	q := pgx.Identifier{schema}.Sanitize()
	table := q + ".schema_migrations"
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+table+` (
	component  text NOT NULL,
	version    integer NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (component, version)
)`); err != nil {
		return err
	}
	if err := upgradeLegacy(ctx, tx, table); err != nil {
		return fmt.Errorf("upgrading %s: %w", table, err)
	}
	var current, recorded int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0), count(*) FROM "+table+" WHERE component = $1", c.Name).Scan(&current, &recorded); err != nil {
		return err
	}
	latest := len(c.Migrations)
	if current > latest {
		return fmt.Errorf("the tables of %s are at version %d, newer than this package's %d: upgrade the package", c.Name, current, latest)
	}
	adopt := map[int]bool{}
	if recorded == 0 {
		for i, name := range c.Released {
			var ok bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", q+"."+pgx.Identifier{name}.Sanitize()).Scan(&ok); err != nil {
				return err
			}
			adopt[i+1] = ok
		}
	}
	for v := current + 1; v <= latest; v++ {
		if !adopt[v] {
			if _, err := tx.Exec(ctx, strings.ReplaceAll(c.Migrations[v-1], "{s}", q)); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (component, version) VALUES ($1, $2)", c.Name, v); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return tx.Commit(ctx)
}

// upgradeLegacy gives a schema_migrations table of one version per schema
// (an earlier release's) the component column, keeping its rows as those
// of the component "".
func upgradeLegacy(ctx context.Context, tx pgx.Tx, table string) error {
	var pkey string
	var keyColumns int
	if err := tx.QueryRow(ctx, `SELECT conname, coalesce(array_length(conkey, 1), 0) FROM pg_constraint
WHERE conrelid = $1::regclass AND contype = 'p'`, table).Scan(&pkey, &keyColumns); err != nil {
		return err
	}
	if keyColumns != 1 {
		return nil
	}
	if _, err := tx.Exec(ctx, "ALTER TABLE "+table+" ADD COLUMN component text NOT NULL DEFAULT '', DROP CONSTRAINT "+
		pgx.Identifier{pkey}.Sanitize()+", ADD PRIMARY KEY (component, version)"); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "ALTER TABLE "+table+" ALTER COLUMN component DROP DEFAULT")
	return err
}

// Err returns ctx's error with err if ctx is done, for it is the cause of
// err (a statement interrupted by the context fails with a driver error
// that does not always say so), and [Hint] of err otherwise.
func Err(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return Hint(err)
}

// Hint adds "(has Migrate been called?)" to err when its cause is a table
// or schema that does not exist, and returns other errors as they are.
func Hint(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") { // undefined_table, invalid_schema_name
		return fmt.Errorf("%w (has Migrate been called?)", err)
	}
	return err
}
