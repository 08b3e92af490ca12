// Package pgschema holds what the module's PostgreSQL packages
// (eventsource/pgstore, saga/pglog, cqrs/pgcheckpoint) do alike with the
// schema that holds their tables: check its name ([CheckName]), derive
// advisory lock keys from it ([LockKey]), create it ([Create]) and bring
// its tables to a version ([Migrate]), and explain the errors of a
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

// Migrate brings the tables of schema to version len(migrations), in one
// transaction of pool: it [Create]s the schema under lockKey, reads the
// version from the schema's schema_migrations table (created if need be),
// and runs each migration that is due, recording its version. migrations[i]
// upgrades the schema from version i to i+1; "{s}" in it stands for the
// quoted schema name. It fails, changing nothing, if the schema is at a
// version newer than len(migrations), or if a migration fails.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, lockKey int64, migrations []string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := Create(ctx, tx, schema, lockKey); err != nil {
		return err
	}
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+q+`.schema_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return err
	}
	var current int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+q+".schema_migrations").Scan(&current); err != nil {
		return err
	}
	latest := len(migrations)
	if current > latest {
		return fmt.Errorf("the schema is at version %d, newer than this package's %d: upgrade the package", current, latest)
	}
	for v := current + 1; v <= latest; v++ {
		if _, err := tx.Exec(ctx, strings.ReplaceAll(migrations[v-1], "{s}", q)); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+q+".schema_migrations (version) VALUES ($1)", v); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return tx.Commit(ctx)
}

// Component is one package's tables in a schema, as [MigrateComponent]
// brings them to their latest version.
type Component struct {
	// Name identifies the package's migrations in schema_migrations: its
	// import path.
	Name string
	// Probe is a table that the package's first migration creates. A
	// schema migrated by an earlier release, which kept one version for
	// the whole schema, is taken for this package's only if Probe exists.
	Probe string
	// Migrations upgrade the package's tables: Migrations[i] from version
	// i to i+1, with "{s}" standing for the quoted schema name.
	Migrations []string
}

// migrateLockScope names the advisory lock that every package's
// MigrateComponent takes for a schema: one lock, so that packages sharing
// a schema migrate it one at a time.
const migrateLockScope = "github.com/otelpatterns/patterns/internal/pgschema"

// MigrateComponent brings c's tables in schema to version
// len(c.Migrations), in one transaction of pool: it [Create]s the schema
// under an advisory lock that every package shares, reads c's version
// from the schema's schema_migrations table (created if need be; one row
// per package and version), and runs each migration that is due,
// recording it. Several packages can so share a schema, each with its own
// versions. A schema_migrations table of an earlier release, without the
// package column, is upgraded: its rows are taken for c's if c.Probe
// exists (they can only be of the package that created it), and left for
// another package otherwise. It fails, changing nothing, if c's tables are
// at a version newer than len(c.Migrations), or if a migration fails.
func MigrateComponent(ctx context.Context, pool *pgxpool.Pool, schema string, c Component) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := Create(ctx, tx, schema, LockKey(migrateLockScope, "migrate", schema)); err != nil {
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
	if err := upgradeLegacy(ctx, tx, q, c); err != nil {
		return fmt.Errorf("upgrading %s: %w", table, err)
	}
	var current int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+table+" WHERE component = $1", c.Name).Scan(&current); err != nil {
		return err
	}
	latest := len(c.Migrations)
	if current > latest {
		return fmt.Errorf("the tables of %s are at version %d, newer than this package's %d: upgrade the package", c.Name, current, latest)
	}
	for v := current + 1; v <= latest; v++ {
		if _, err := tx.Exec(ctx, strings.ReplaceAll(c.Migrations[v-1], "{s}", q)); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (component, version) VALUES ($1, $2)", c.Name, v); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return tx.Commit(ctx)
}

// upgradeLegacy turns a schema_migrations table of one version per schema
// (an earlier release's) into one of versions per package, and takes its
// rows for c's when c's probe table exists.
func upgradeLegacy(ctx context.Context, tx pgx.Tx, q string, c Component) error {
	table := q + ".schema_migrations"
	var keyColumns int
	if err := tx.QueryRow(ctx, `SELECT coalesce(array_length(conkey, 1), 0) FROM pg_constraint
WHERE conrelid = $1::regclass AND contype = 'p'`, table).Scan(&keyColumns); err != nil {
		return err
	}
	if keyColumns == 1 {
		var pkey string
		if err := tx.QueryRow(ctx, "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'", table).Scan(&pkey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+table+" ADD COLUMN component text NOT NULL DEFAULT '', DROP CONSTRAINT "+
			pgx.Identifier{pkey}.Sanitize()+", ADD PRIMARY KEY (component, version)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+table+" ALTER COLUMN component DROP DEFAULT"); err != nil {
			return err
		}
	}
	if c.Probe == "" {
		return nil
	}
	_, err := tx.Exec(ctx, "UPDATE "+table+" SET component = $1 WHERE component = '' AND to_regclass($2) IS NOT NULL",
		c.Name, q+"."+pgx.Identifier{c.Probe}.Sanitize())
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
