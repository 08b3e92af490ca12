package pglog

import (
	"context"
	"fmt"
	"strings"

	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/pgschema"
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
	// 2: the transitions' foreign key, whose check (a query and a row
	// lock of the saga, per transition inserted) took a third of an
	// append's time in the server, replaced by triggers that delete a
	// deleted saga's transitions, as ON DELETE CASCADE did. Append needs
	// no check: it inserts only with the saga's row locked, which a
	// DELETE of the row waits for (and a DELETE that came first leaves
	// Append nothing to lock). IF EXISTS: tables that an earlier release
	// made may have named the key otherwise, or not have it; OR REPLACE
	// and IF EXISTS: it may run on tables that have the triggers already
	// (adopted from a schema_migrations table that lost its rows). The
	// body names the schema by TG_TABLE_SCHEMA, as a quoted name may hold
	// "$$". A DELETE in a transaction of repeatable read or serializable
	// sees no transitions appended since its snapshot by an Append that
	// set no status (which locks the saga's row but writes no new version
	// of it, so the DELETE does not fail to serialize): it would leave
	// them to the next saga of the same id, where the key's cascade, run
	// on a fresh snapshot, failed to serialize. Such a DELETE of a leased
	// saga (owner set), the only kind an Append may reach, is refused; a
	// saga with no owner in the snapshot had no Append since, for
	// leasing it writes a new version, which fails the DELETE. SECURITY
	// DEFINER: the key's cascade ran with the rights of the transitions'
	// owner, so a role with DELETE (or TRUNCATE) on the sagas alone could
	// delete them; EXECUTE is revoked from PUBLIC, so that no one else
	// can make the function a trigger of a table of their own (firing a
	// trigger checks no privilege on its function).
	`ALTER TABLE {s}.transitions DROP CONSTRAINT IF EXISTS transitions_saga_id_fkey;
CREATE OR REPLACE FUNCTION {s}.delete_transitions() RETURNS trigger LANGUAGE plpgsql
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		EXECUTE format('TRUNCATE %I.transitions', TG_TABLE_SCHEMA);
	ELSE
		IF current_setting('transaction_isolation') <> 'read committed' AND EXISTS (SELECT FROM deleted WHERE owner IS NOT NULL) THEN
			RAISE EXCEPTION 'deleting a leased saga needs read committed isolation, not %', current_setting('transaction_isolation')
				USING ERRCODE = 'object_not_in_prerequisite_state',
					HINT = 'its transitions appended since the transaction''s snapshot would be left behind';
		END IF;
		EXECUTE format('DELETE FROM %I.transitions t USING deleted d WHERE t.saga_id = d.id', TG_TABLE_SCHEMA);
	END IF;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION {s}.delete_transitions() FROM PUBLIC;
DROP TRIGGER IF EXISTS delete_transitions ON {s}.sagas;
CREATE TRIGGER delete_transitions AFTER DELETE ON {s}.sagas
	REFERENCING OLD TABLE AS deleted
	FOR EACH STATEMENT EXECUTE FUNCTION {s}.delete_transitions();
DROP TRIGGER IF EXISTS truncate_transitions ON {s}.sagas;
CREATE TRIGGER truncate_transitions AFTER TRUNCATE ON {s}.sagas
	FOR EACH STATEMENT EXECUTE FUNCTION {s}.delete_transitions();`,
}

// released names the table that each migration released before versions
// were kept per package creates, by which [Log.Migrate] adopts the tables
// of an earlier release.
var released = []string{"sagas"}

// SchemaVersion is the version of the tables that [Log.Migrate] brings a
// schema to.
const SchemaVersion = len(migrations)

// Migrate creates the log's schema and tables, or upgrades them to
// [SchemaVersion], recording the version in the schema's
// schema_migrations table. The migrations that are due run in one
// transaction with their records, so a failed Migrate changes nothing.
//
// The schema may be shared with the tables of eventsource/pgstore and
// cqrs/pgcheckpoint: schema_migrations keeps each package's versions
// apart (under the package's import path), and Migrate takes the same
// transaction advisory lock, derived from the schema name, as theirs. So
// Migrate is idempotent and safe to run from several processes at once
// (each instance of a service at start-up, say), and alongside the other
// packages' migrations: one runs at a time and the others then find
// nothing to do. It fails if the log's tables are at a version newer than
// this package knows, rather than touch them. A schema that an earlier
// release migrated (one version for the whole schema) is upgraded in
// place: its tables are adopted, and only the migrations whose tables are
// missing run.
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
		return fmt.Errorf("pglog: migrating schema %s: %w", brief.Quote(l.schema), pgschema.Err(ctx, err))
	}
	return nil
}

func (l *Log) migrate(ctx context.Context) error { return l.migrateTo(ctx, SchemaVersion) }

// migrateTo brings the log's tables to version, as the release of the
// package whose tables were at that version did.
func (l *Log) migrateTo(ctx context.Context, version int) error {
	unfinished := "'" + string(saga.Running) + "', '" + string(saga.Compensating) + "'"
	ms := make([]string, version)
	for i, m := range migrations[:version] {
		ms[i] = strings.ReplaceAll(m, "{unfinished}", unfinished)
	}
	return pgschema.MigrateComponent(ctx, l.pool, l.schema, pgschema.Component{Name: ScopeName, Released: released, Migrations: ms})
}
