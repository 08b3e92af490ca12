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
