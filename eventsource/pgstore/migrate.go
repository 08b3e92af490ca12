package pgstore

import (
	"context"
	"fmt"

	"github.com/otelpatterns/patterns/internal/brief"
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
	// 3: the format of snapshots (eventsource.Snapshot.Format); events
	// recorded at their insert rather than at the start of their
	// transaction, which precedes the wait for the append lock; and the
	// table to which large appends upload their events before they take
	// the lock. Its rows never commit (an append deletes them in its
	// transaction), so it need not survive a crash: unlogged.
	`ALTER TABLE {s}.snapshots ADD COLUMN format bigint NOT NULL DEFAULT 0;
ALTER TABLE {s}.events ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();
CREATE UNLOGGED TABLE {s}.uploads (
	upload   uuid NOT NULL,
	ord      bigint NOT NULL,
	id       uuid NOT NULL,
	type     text NOT NULL,
	data     bytea NOT NULL,
	metadata jsonb,
	PRIMARY KEY (upload, ord)
);`,
	// 4: concurrent appends (see "The global order" in the package
	// documentation). A position is no longer taken from the sequence
	// but made of the appending transaction's id and the event's place
	// in the append: pg_current_xact_id() * 16384 + ord, written by the
	// append itself. The column loses its default, so that a process of
	// an earlier release, which would take a position from the sequence
	// (below those readers have passed), fails to append rather than
	// lose events. The sequence goes on numbering events, in seq, which
	// only the lag gauge reads. The positions of the events stored so far
	// were taken from the sequence, so all are below the first new one,
	// unless the table holds more events than 16384 per transaction ever
	// run by the server, which the check refuses.
	`SET LOCAL search_path TO {s};
DO $$
BEGIN
	IF (SELECT coalesce(max(position), 0) FROM events) >= pg_current_xact_id()::text::bigint * 16384 THEN
		RAISE EXCEPTION 'pgstore: the events table holds positions above the first that migration 4 would give; renumber them below pg_current_xact_id() * 16384 first';
	END IF;
END $$;
ALTER TABLE events ALTER COLUMN position DROP DEFAULT;
ALTER TABLE events ADD COLUMN seq bigint;
ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('events_position_seq');
ALTER SEQUENCE events_position_seq OWNED BY events.seq;
SET LOCAL search_path TO DEFAULT;`,
}

// released names the table that each migration released before versions
// were kept per package creates, by which [Store.Migrate] adopts the
// tables of an earlier release (see [pgschema.Component]).
var released = []string{"events", "commands"}

// SchemaVersion is the version of the tables that [Store.Migrate] brings
// a schema to.
const SchemaVersion = len(migrations)

// Migrate creates the store's schema and tables, or upgrades them to
// [SchemaVersion], recording the version in the schema's
// schema_migrations table. The migrations that are due run in one
// transaction with their records, so a failed Migrate changes nothing.
//
// The schema may be shared with the tables of
// [github.com/otelpatterns/patterns/saga/pglog] and
// [github.com/otelpatterns/patterns/cqrs/pgcheckpoint]: schema_migrations keeps each package's versions
// apart (under the package's import path), and Migrate takes the same
// transaction advisory lock, derived from the schema name, as theirs. So
// Migrate is idempotent and safe to run from several processes at once
// (each instance of a service at start-up, say), and alongside the other
// packages' migrations: one runs at a time and the others then find
// nothing to do. It fails if the store's tables are at a version newer
// than this package knows, rather than touch them.
//
// A schema that an earlier release of this package migrated (one version
// for the whole schema) is upgraded in place: its tables are adopted, and
// only the migrations whose tables are missing run.
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
	err := pgschema.MigrateComponent(ctx, s.pool, s.schema, pgschema.Component{
		Name: ScopeName, Released: released, Migrations: migrations[:],
	})
	s.tel.End(ctx, span, opMigrate, start, err)
	if err != nil {
		return fmt.Errorf("pgstore: migrating schema %s: %w", brief.Quote(s.schema), pgschema.Err(ctx, err))
	}
	return nil
}
