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
//			_, err := tx.Exec(ctx, `UPDATE read.totals SET n = n + 1 WHERE id = $1`, e.StreamID)
//			return err
//		})
//
// Effects outside the transaction (a message sent, an HTTP call) are still
// at least once. The events may come from any [eventsource.Store]: the
// PostgreSQL one of eventsource/pgstore, in the same database or another,
// or an in-memory one.
//
// Each transaction first locks the projection's checkpoint row, so two
// runs of one projection (two instances of a service, say) never apply an
// event twice: they take turns, and the one that finds the checkpoint
// moved past its event skips it and reads on from the stored position.
// [Store.Rebuild] empties a read model and resets its checkpoint in one
// transaction, and a running Project then replays from the first event.
//
// [Store.Migrate] creates the schema ("cqrs" by default, see [WithSchema])
// unless it exists, and the table
//
//	checkpoints(name text PRIMARY KEY, position bigint NOT NULL,
//	            updated_at timestamptz DEFAULT now())
//
// It is idempotent and safe to run from every instance at once. The store
// does not own the pool.
//
// # Telemetry
//
// Spans, from the tracer named [ScopeName] of the [WithTracerProvider]
// option (the global provider by default):
//
//	| Span                | When                        | Attributes                                  |
//	|---------------------|-----------------------------|---------------------------------------------|
//	| project <name>      | each event Project handles  | cqrs.projection, eventsource.position,      |
//	|                     |                             | error.type (status Error when it fails)     |
//
// The span is linked to the span of the append that recorded the event and
// is the parent of the handler's work (its ctx carries it).
// LoadCheckpoint, SaveCheckpoint, Migrate and Rebuild start no span:
// instrument the pool (with otelpgx, say) for database spans.
//
// Metrics, from the meter named [ScopeName] of the [WithMeterProvider]
// option: the gauge cqrs.projection.lag ({event}, attribute
// cqrs.projection), observed while Project runs as the event store's last
// position minus the projection's checkpoint, when the event store is an
// [eventsource.HeadReader] (pgstore and the memory store are).
package pgcheckpoint
