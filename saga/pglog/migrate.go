package pglog

import (
	"context"
	"fmt"
	"strings"

	"github.com/otelpatterns/patterns/saga"
)

// migrations are the versions of the log's tables: migrations[i] upgrades
// the schema from version i to i+1. "{s}" stands for the quoted schema
// name, "{unfinished}" for the statuses of unfinished sagas. Released
// migrations are never changed; a change of the tables is a new migration.
var migrations = [...]string{
	// 1: sagas and transitions.
	`CREATE TABLE {s}.sagas (
	id          text PRIMARY KEY,
	name        text NOT NULL,
	version     integer NOT NULL,
	status      text NOT NULL,
	data        bytea,
	trace       jsonb,
	owner       text,
	lease_until timestamptz,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_claimable ON {s}.sagas (created_at, id) WHERE status IN ({unfinished});
CREATE TABLE {s}.transitions (
	saga_id text NOT NULL REFERENCES {s}.sagas (id) ON DELETE CASCADE,
	seq     bigint NOT NULL,
	status  text NOT NULL,
	step    text NOT NULL,
	phase   text NOT NULL,
	kind    text NOT NULL,
	attempt integer NOT NULL,
	data    bytea,
	error   text NOT NULL,
	at      timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT ` + transitionsKey + ` PRIMARY KEY (saga_id, seq)
);`,
}

// SchemaVersion is the version of the tables that [Log.Migrate] brings a
// schema to.
const SchemaVersion = len(migrations)

// Migrate creates the log's schema and tables, or upgrades them to
// [SchemaVersion], recording the version in the schema's
// schema_migrations table. The migrations that are due run in one
// transaction with their records, so a failed Migrate changes nothing.
//
// Migrate is idempotent and safe to run from several processes at once
// (each instance of a service at start-up, say): it takes a transaction
// advisory lock derived from the schema name, so one runs at a time and
// the others then find nothing to do. It fails if the schema is at a
// version newer than this package knows, rather than touch it.
//
// It needs the privilege to create the schema, unless the schema exists,
// and to create tables in it. Calls of the log before the first Migrate
// fail, saying that the tables do not exist.
func (l *Log) Migrate(ctx context.Context) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, span, start := l.tel.start(ctx, opMigrate, "")
	defer func() { l.tel.End(ctx, span, opMigrate, start, err) }()
	if err := l.migrate(ctx); err != nil {
		return fmt.Errorf("pglog: migrating schema %q: %w", l.schema, ctxErr(ctx, err))
	}
	return nil
}

func (l *Log) migrate(ctx context.Context) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", l.migrateKey); err != nil {
		return err
	}
	// CREATE SCHEMA IF NOT EXISTS needs the privilege to create schemas
	// even when the schema exists: ask first.
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", l.schema).Scan(&exists); err != nil {
		return err
	}
	q := l.sql.schema
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+q); err != nil {
			return err
		}
	}
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
	if current > SchemaVersion {
		return fmt.Errorf("the schema is at version %d, newer than this package's %d: upgrade the package", current, SchemaVersion)
	}
	r := strings.NewReplacer("{s}", q, "{unfinished}", "'"+string(saga.Running)+"', '"+string(saga.Compensating)+"'")
	for v := current + 1; v <= SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, r.Replace(migrations[v-1])); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+q+".schema_migrations (version) VALUES ($1)", v); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return tx.Commit(ctx)
}
