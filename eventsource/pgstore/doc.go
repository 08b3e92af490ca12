// Package pgstore is an [eventsource.Store] and [eventsource.SnapshotStore]
// kept in PostgreSQL, through a pgx v5 pool.
//
// Events go to one table, in a schema of their own ("eventsource" by
// default, see [WithSchema]): each row holds the event's id, stream,
// version in the stream, global position, type, data (bytea), metadata
// (jsonb) and the time it was recorded: the database's clock when the row
// is inserted, under the append lock described below, not when the append
// began to wait for it. Streams, versions and idempotent
// appends work as [eventsource.Store] says; readers follow the global
// order with [Store.ReadAll] and [Store.Subscribe] and never miss an
// event, as explained below.
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	if err != nil {
//		return err
//	}
//	defer pool.Close()
//	store, err := pgstore.New(pool)
//	if err != nil {
//		return err
//	}
//	if err := store.Migrate(ctx); err != nil { // at start-up
//		return err
//	}
//	repo, err := eventsource.NewRepository(store, reg, newAccount,
//		eventsource.WithSnapshots(store, 100))
//
// [Store.Migrate] creates the schema and its tables (events, snapshots,
// commands — the (command ID, stream) pairs of appends made under
// [eventsource.WithCommandID], recorded in the append's transaction —
// uploads, where large appends put their events before they take the
// append lock, and schema_migrations, which records the version of the
// tables), and
// upgrades them when a later version of this package changes them. It is
// idempotent and safe to call from every instance of a service at once.
// The schema may be shared with
// [github.com/otelpatterns/patterns/saga/pglog] and
// [github.com/otelpatterns/patterns/cqrs/pgcheckpoint]: each package keeps
// its own versions in schema_migrations, and their migrations take turns
// under one lock.
// The store does not own the pool: close the pool after the store's last
// call.
//
// The store is also an [eventsource.SnapshotStore] and
// [eventsource.SnapshotDeleter]: the snapshots table keeps the latest
// snapshot of each stream, with its version and format. A save replaces
// the stored snapshot when it is of a newer version or of another format
// (whatever its version), so that a repository whose snapshot format
// changed ([eventsource.WithSnapshotFormat]) replaces the snapshots it
// ignores; [Store.DeleteSnapshot] (through [eventsource.Repository]'s
// DropSnapshot) deletes one.
//
// # The global order
//
// Each event's position comes from a bigserial column, which PostgreSQL
// assigns when the row is inserted, not when its transaction commits. With
// appends running side by side, a transaction can take position 10, and
// another take 11 and commit first; a reader that reads "everything after
// 9" then sees 11, moves its checkpoint past 10, and never sees 10 when it
// commits. Projections, subscriptions and outbox relays built on a
// checkpoint lose events this way under ordinary load.
//
// The store lets one append run at a time in each schema. Every append is
// one transaction that first takes a transaction-level advisory lock,
// pg_advisory_xact_lock, whose key is derived from the schema name (an
// FNV-1a hash), and only then reads the stream's version and inserts its
// events; the lock is held until the commit or rollback. The argument:
//
//   - positions are taken only under the lock, so the positions of an
//     append are all greater than those of every append that held the lock
//     before it;
//   - PostgreSQL makes a committed transaction visible to new snapshots
//     before it releases the transaction's locks (in CommitTransaction,
//     ProcArrayEndTransaction comes before the locks are released), so an
//     append's events are visible before the next append can take the lock
//     and so before it can take a position;
//   - so if a reader's snapshot shows position N, the transaction of N had
//     committed, every append before it had committed or rolled back
//     before N was taken, and all of them are in that snapshot: no event
//     below N can become visible later.
//
// Reads are then plain "position > checkpoint ORDER BY position" queries,
// a range scan of the primary key, and a reader may store any position it
// has handled as its checkpoint.
//
// Positions taken by an append that rolls back (an error, a lost
// connection, a stalled client) are never used: the global order has
// gaps. They are permanent and harmless: the sequence never hands a
// position out twice, so nothing can fill a gap, and readers skip it.
// (Keep synchronous_commit on, the default: with it off, a crash of the
// server can lose the last commits after readers have seen them.)
//
// The cost is throughput. Appends to a schema, whatever their streams,
// queue for the lock, and each holds it until its commit has returned,
// which includes the flush of the write-ahead log to disk: appends to a
// schema commit one at a time, so PostgreSQL cannot group their commits,
// and their rate is bounded by the round trips and the flush of one
// commit, from a few hundred to a few thousand appends a second depending
// on the disk and the network (on a small test machine with a local
// server, about a thousand a second, no more with 8 writers than with 1).
// Each append holds the lock for two round trips (the insert and the
// commit; the lock, the idempotency check and the version check share one
// round trip with the begin). Batch events: one append inserts all its
// events in one statement, so events per second grow with the batch. Give
// independent parts of a system schemas of their own, each with its own
// lock and order. The lock is only ever held by a running append: a client
// that stalls inside one (a frozen process, a cut network) has its session
// ended by the server after 5 seconds of idling
// (idle_in_transaction_session_timeout is set for the append's
// transaction; [WithAppendIdleTimeout] changes it), so that it cannot
// stop every other append for longer than that. An append whose events
// (data and metadata) exceed [StageAbove] bytes (64 KiB) uploads them
// before it takes the lock, into an unlogged table of its transaction,
// and moves them under the lock: so a slow upload holds no other append
// up and is not cut short by that timeout, at the cost of writing the
// events twice (about a tenth fewer events a second in a benchmark that
// stages batches of small events). A smaller append sends its events
// under the lock, and fails if sending them takes longer than the
// timeout; the timeout is the trade-off between how long a stalled client
// can hold every other append up and how slow a link appends can use.
// A store that needs concurrent commits would order by transaction
// id instead (pg_current_xact_id and the snapshot's xmin), at the price of
// readers lagging behind the longest open transaction. Reads take no lock
// and do not wait for appends.
//
// A fresh events table grows faster than its statistics: pgx prepares the
// append's statements, and PostgreSQL may settle on a generic plan for the
// idempotency lookup while the table is small (a sequential scan), which
// slows appends until autovacuum next analyses the table. After a bulk
// import into a new store, run ANALYZE on its events table.
//
// # Subscriptions
//
// After each commit, an append sends a notification on the channel named
// after the schema ("eventsource_events"), outside its transaction, for a
// NOTIFY inside it would take PostgreSQL's global notification lock at
// every commit. A live [Store.Subscribe] LISTENs on a connection of its
// own from the pool and reads on when notified, or every poll interval
// ([WithPollInterval], a second by default) when no notification comes:
// notifications are hints, and one lost (the appending process died after
// its commit, the subscriber's connection dropped) only delays delivery.
// Each live subscription holds one pool connection; size the pool for
// them. Behind PgBouncer in transaction mode LISTEN does not work, and
// subscriptions fall back on polling.
//
// The read at every poll interval is also the subscription's health
// check: each of its queries must be answered within the subscription
// timeout ([WithSubscriptionTimeout], 10 seconds by default), so a
// connection that stops answering without closing (a frozen server, a
// network path that drops packets) is reported within the poll interval
// plus the timeout, as an error yielded by the sequence, and the
// subscription goes on with a new connection from the pool.
//
// # Telemetry
//
// Spans come from the tracer named [ScopeName] of the [WithTracerProvider]
// provider, metrics from the meter named [ScopeName] of the
// [WithMeterProvider] provider (the global ones by default). They follow
// the OpenTelemetry semantic conventions (v1.40) for PostgreSQL clients.
//
// Every call that queries the database has a client span. Each covers
// one call of the store, not one statement (an append is a transaction
// of several), so db.operation.name is the store's name of the call, and
// the span's name is its db.query.summary: the operation and its target,
// the schema-qualified table or, for calls on no table, db.namespace.
//
//   - BATCH {schema}.events: one Append: its transaction, from BEGIN to
//     COMMIT (a lock, the checks, one INSERT of all its events), with
//     db.operation.batch.size, the number of statements sent, and
//     [AttrStreamID] (eventsource.stream_id). The conventions name a
//     batch of different statements BATCH. A conflict fails it with
//     error.type eventsource.concurrency_conflict, a duplicate command
//     with eventsource.duplicate_command, an event ID stored in another
//     stream with eventsource.event_id_taken.
//   - notify {database}|{schema}: the pg_notify that tells subscribers
//     of an append, after its commit; a child of the append's span. Its
//     failure is recorded on it and otherwise ignored.
//   - read_stream {schema}.events: one page (500 rows) of a ReadStream,
//     with eventsource.stream_id.
//   - read_all {schema}.events: one page of a ReadAll.
//   - subscribe {schema}.events: one read of a Subscribe that found
//     events or failed. Reads that find nothing have no span, or an idle
//     subscription would report one every poll interval; they are in
//     db.client.operation.duration.
//   - listen {database}|{schema} and unlisten {database}|{schema}: a
//     subscription's LISTEN on its connection (with the wait for the
//     connection) and its UNLISTEN when it ends.
//   - head {schema}.events: Head. The projection lag gauges of packages
//     cqrs and cqrs/pgcheckpoint read the head every second; those reads
//     have no span, only their duration.
//   - command_recorded {schema}.commands: CommandRecorded and
//     CommandRecordedIn.
//   - load_snapshot {schema}.snapshots, save_snapshot
//     {schema}.snapshots and delete_snapshot {schema}.snapshots, with
//     eventsource.stream_id.
//   - migrate {database}|{schema}: Migrate.
//
// A stream id longer than 128 bytes is cut to its first 128 bytes and
// its length ("…(N bytes)") in eventsource.stream_id and in the store's
// error messages, which would otherwise carry ids of any length to logs
// and trace backends.
//
// Their attributes, set when the span starts:
//
//   - db.system.name: postgresql.
//   - db.operation.name: BATCH, notify, read_stream, read_all,
//     subscribe, listen, unlisten, head, command_recorded,
//     load_snapshot, save_snapshot, delete_snapshot or migrate.
//   - db.collection.name: {schema}.events, {schema}.snapshots or
//     {schema}.commands; none for notify, listen, unlisten and migrate.
//   - db.namespace: {database}|{schema}, the database of the pool's
//     configuration and the store's schema ([WithSchema]).
//   - db.query.summary: the span's name.
//   - server.address: the host of the pool's configuration.
//   - server.port: its port, unless it is PostgreSQL's 5432 (then only
//     with [WithOptInAttributes]).
//
// On failure a span has status Error, error.type and
// db.response.status_code: error.type is the SQLSTATE of a PostgreSQL
// error, as is db.response.status_code, otherwise the store's error type
// (eventsource.concurrency_conflict, …), context.DeadlineExceeded,
// context.Canceled, the error's exported type name or _OTHER. With
// [WithOptInAttributes], the spans of reads (read_stream, read_all,
// subscribe) carry db.response.returned_rows. If the pool is
// instrumented too (otelpgx), its statement spans are children of these.
//
// Metrics:
//
//   - db.client.operation.duration (histogram, s): the duration of every
//     call that has a span (and of the reads that have none), with the
//     span's attributes but eventsource.stream_id,
//     db.operation.batch.size and db.response.returned_rows: error.type
//     and db.response.status_code on failure.
//   - eventsource.events.appended (counter, {event}): events appended; a
//     retried append that stores nothing counts none.
//   - eventsource.append.duration (histogram, s): the duration of
//     appends, with error.type on failure. It includes the wait for the
//     append lock, so it shows the queue when appends contend. An append
//     rejected for bad arguments records nothing.
//   - eventsource.conflicts (counter, {conflict}): appends rejected
//     because the stream was not at the expected version.
//   - eventsource.subscription.lag (gauge, {event}): recorded at every
//     read of a subscription: the newest position in the store less the
//     position of the last event the subscription handed on (0 when a
//     read finds nothing new). It counts positions, so gaps make it an
//     upper bound of the events behind. With several subscriptions in
//     one process it holds the latest reading of any of them.
//
// The events appended carry, in their metadata, the trace context of the
// append's span (see
// [github.com/otelpatterns/patterns/eventsource/storekit.PrepareAppend]),
// so that the spans of the projections and relays that read them link to
// the append ([eventsource.TraceContext]).
package pgstore
