// Package pgcheckpoint keeps projection checkpoints in PostgreSQL, and runs
// projections whose read models live in the same database with an
// exactly-once effect.
//
// A [Store] is a [cqrs.CheckpointStore]: give it to [cqrs.NewRunner] or
// [cqrs.NewRelay] and their checkpoints survive restarts. With those, as
// with any checkpoint kept apart from the read model, delivery is at least
// once: a process that stops between handling an event and saving the
// checkpoint handles the event again, so handlers must be idempotent.
//
// # Exactly once into PostgreSQL read models
//
// When the read model is in the database of the checkpoints, [Store.Project]
// does better. For each event it runs one transaction: the handler writes
// the read model through the transaction, the checkpoint moves to the
// event's position in the same transaction, and the transaction commits. A
// crash (or a failed handler, or a cancelled context) before the commit
// loses both the write and the checkpoint, and the next run handles the
// event again; after the commit both are kept. So each event has its
// effect on the read model exactly once, and the handler can do plain
// increments and inserts instead of idempotent upserts.
//
//	cps, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema("read"))
//	if err != nil {
//		return err
//	}
//	if err := cps.Migrate(ctx); err != nil { // at start-up
//		return err
//	}
//	err = cps.Project(ctx, "order-totals", events,
//		func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
//			_, err := tx.Exec(ctx,
//				`UPDATE read.totals SET n = n + 1 WHERE id = $1`,
//				e.StreamID)
//			return err
//		})
//
// Effects outside the transaction (a message sent, an HTTP call) are still
// at least once. The events may come from any [eventsource.Store]: the
// PostgreSQL one of [github.com/otelpatterns/patterns/eventsource/pgstore],
// in the same database or another,
// or an in-memory one.
//
// Each transaction first locks the projection's checkpoint row, so two
// runs of one projection (two instances of a service, say) never apply an
// event twice: they take turns, and the one that finds the checkpoint
// moved past its event skips it and reads on from the stored position.
// [Store.Rebuild] empties a read model and resets its checkpoint in one
// transaction, and a running Project then replays from the first event:
// at once through the same Store, and within [WithCheckInterval] (2 s by
// default) in another process, even when no new event comes.
//
// [Store.Migrate] creates the schema ("cqrs" by default, see [WithSchema])
// unless it exists, and the table
//
//	checkpoints(name text PRIMARY KEY, position bigint NOT NULL,
//	            updated_at timestamptz DEFAULT now())
//
// and schema_migrations, which records the table's version. It is
// idempotent and safe to run from every instance at once. The schema may
// be that of the read models, and may be shared with
// [github.com/otelpatterns/patterns/eventsource/pgstore] and
// [github.com/otelpatterns/patterns/saga/pglog]: each package keeps its
// own versions in schema_migrations, and their migrations take turns. The
// store does not own the pool.
//
// # Telemetry
//
// Spans come from the tracer named [ScopeName] of the [WithTracerProvider]
// provider, metrics from the meter named [ScopeName] of the
// [WithMeterProvider] provider (the global ones by default).
//
// Each event [Store.Project] handles has a span "project <name>", linked
// to the span of the append that stored the event (through the trace
// context in the event's metadata), with the attributes [AttrProjection]
// (cqrs.projection) and [AttrPosition] (eventsource.position). It is the
// parent of the event's transaction: of the handler's work (handle's ctx
// carries it) and of the queries below. When the handler or a query
// fails, it has status Error and error.type. When the projection's
// checkpoint was moved under it (by another run of the projection, or a
// Rebuild), it has the event pgcheckpoint.checkpoint_moved, with the
// stored position as eventsource.position, and the event is skipped.
// A projection name longer than 128 bytes is cut to its first 128 bytes
// and its length ("…(N bytes)") in the span's name, cqrs.projection and
// the store's error messages.
//
// Every query has a client span following the OpenTelemetry semantic
// conventions (v1.40) for PostgreSQL clients; db.operation.name is the
// store's name of the operation, and the span's name is its
// db.query.summary, the operation and its target: the schema-qualified
// table or, for calls on no table, db.namespace.
//
//   - lock_checkpoint {schema}.checkpoints: the BEGIN of an event's
//     transaction and the lock of the checkpoint's row; in a project
//     span.
//   - save_checkpoint {schema}.checkpoints: SaveCheckpoint, and the move
//     of the checkpoint in an event's transaction.
//   - commit {database}|{schema}: the COMMIT of an event's transaction;
//     in a project span.
//   - load_checkpoint {schema}.checkpoints: LoadCheckpoint, and Project
//     loading its checkpoint. A waiting Project's checks for a reset
//     ([WithCheckInterval]) record their duration but make no span.
//   - ensure_checkpoint {schema}.checkpoints: Project creating the
//     checkpoint if there is none, as it starts.
//   - rebuild {schema}.checkpoints: Rebuild's transaction, reset
//     included.
//   - migrate {database}|{schema}: Migrate.
//
// Their attributes, set when the span starts:
//
//   - db.system.name: postgresql.
//   - db.operation.name: lock_checkpoint, save_checkpoint, commit,
//     load_checkpoint, ensure_checkpoint, rebuild or migrate.
//   - db.collection.name: {schema}.checkpoints; none for commit and
//     migrate.
//   - db.namespace: {database}|{schema}, the database of the pool's
//     configuration and the store's schema ([WithSchema]).
//   - db.query.summary: the span's name.
//   - server.address: the host of the pool's configuration.
//   - server.port: its port, unless it is PostgreSQL's 5432 (then only
//     with [WithOptInAttributes]).
//
// On failure a client span has status Error, error.type and
// db.response.status_code: error.type is the SQLSTATE of a PostgreSQL
// error, as is db.response.status_code, otherwise context.Canceled,
// context.DeadlineExceeded, the error's exported type name or _OTHER. The
// rollback of a failed event's transaction has no span.
//
// Metrics:
//
//   - db.client.operation.duration (histogram, s): the duration of every
//     query, with the client span's attributes; error.type and
//     db.response.status_code on failure.
//   - cqrs.projection.lag (gauge, {event}): for each projection Project
//     runs, by cqrs.projection, the events committed to the event store
//     that it has not handled yet. It needs an event store that is an
//     [eventsource.HeadReader] (pgstore and the memory store are). The
//     gauge's callback runs no query: Project reads the store's head as
//     it starts, then every second while it runs, once a reader has
//     collected the gauge (pgstore records those reads without spans).
//     With a store whose positions are 1, 2, 3, … (the memory store) the
//     lag is the head less the projection's checkpoint; pgstore's
//     positions have gaps (they are made of transaction ids), so with it,
//     an [eventsource.EventCounter], each of those reads also counts the
//     events after the checkpoint, 100,000 at most, and the gauge reports
//     that count, as of the last read (0 once the projection reaches the
//     head then read).
package pgcheckpoint
