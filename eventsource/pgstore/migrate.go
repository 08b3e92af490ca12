package pgstore

import (
	"context"
	"fmt"

	"github.com/otelpatterns/patterns/internal/pgschema"
)

// migrations are the versions of the store's tables: migrations[i]
// upgrades the schema from version i to i+1. "{s}" stands for the quoted
// schema name. Released migrations are never changed; a change of the
// tables is a new migration.
var migrations = [...]string{
	// 1: events and snapshots.
	`CREATE TABLE {s}.events (
	position    bigserial PRIMARY KEY,
	id          uuid NOT NULL,
	stream_id   text NOT NULL,
	version     bigint NOT NULL,
	type        text NOT NULL,
	data        bytea NOT NULL,
	metadata    jsonb,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT events_id_key UNIQUE (id),
	CONSTRAINT ` + streamVersionKey + ` UNIQUE (stream_id, version)
);
CREATE TABLE {s}.snapshots (
	stream_id text PRIMARY KEY,
	version   bigint NOT NULL,
	data      bytea NOT NULL,
	saved_at  timestamptz DEFAULT now()
);`,
	// 2: the (command, stream) pairs of appends made under a command ID.
	`CREATE TABLE {s}.commands (
	command_id  text NOT NULL,
	stream_id   text NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (command_id, stream_id)
);`,
}

// SchemaVersion is the version of the tables that [Store.Migrate] brings
// a schema to.
const SchemaVersion = len(migrations)

// Migrate creates the store's schema and tables, or upgrades them to
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
// and to create tables in it: run it as the role that owns the tables.
// Calls of the store before the first Migrate fail, saying that the
// tables do not exist.
func (s *Store) Migrate(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, span, start := s.tel.Start(ctx, opMigrate)
	err := s.migrate(ctx)
	s.tel.End(ctx, span, opMigrate, start, err)
	if err != nil {
		return fmt.Errorf("pgstore: migrating schema %q: %w", s.schema, pgschema.Err(ctx, err))
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	return pgschema.Migrate(ctx, s.pool, s.schema, s.migrateKey, migrations[:])
}
