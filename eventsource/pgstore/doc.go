// Package pgstore is an [eventsource.Store] and [eventsource.SnapshotStore]
// kept in PostgreSQL, through a pgx v5 pool.
//
// Events go to one table, in a schema of their own ("eventsource" by
// default, see [WithSchema]): each row holds the event's id, stream,
// version in the stream, global position, type, data (bytea), metadata
// (jsonb) and the time it was recorded: the database's clock when the row
// is inserted, under the stream's append lock described below, not when
// the append began to wait for it. Streams, versions and idempotent
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
// uploads, where large appends put their events before they insert
// them, and schema_migrations, which records the version of the
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
// The store orders events by the transactions that appended them. An
// event's position is the id of its append's transaction
// (pg_current_xact_id(), a 64-bit xid8) times 16384, plus the event's
// place in its append, from 1 (an append holds at most
// [eventsource.MaxBatch] events): so positions order events by (transaction
// id, place), and a checkpoint, one int64, is that pair. Readers
// ([Store.ReadAll], [Store.Subscribe], [Store.Head]) read only positions
// below that of the oldest transaction still running on the server, the
// xmin of their snapshot (pg_snapshot_xmin(pg_current_snapshot())). The
// argument:
//
//   - every transaction whose id is below a snapshot's xmin has ended, and
//     the snapshot sees those that committed: a reader sees every event
//     below its bound that will ever be stored;
//   - a transaction that has not ended, or that starts later, has an id
//     at or above the xmin, so its events' positions are at or above the
//     bound: a reader never reads them before they commit;
//   - the xmin of later snapshots is never lower, so nothing can appear
//     below a position a reader has passed.
//
// Appends to different streams therefore run and commit side by side,
// and PostgreSQL groups their commits' flushes to disk. Appends to one
// stream take turns under a transaction-level advisory lock of the stream
// (pg_advisory_xact_lock, the FNV-1a hash of the schema and the stream
// id), taken before the transaction's first write, so that they take
// their ids, and their events positions, in the order of their versions.
//
// An append of new events at the expected version takes one round trip:
// BEGIN, the lock, one INSERT of all its events (with the command's
// record, under [eventsource.WithCommandID]), which reads the stream's
// version itself, after the lock, and COMMIT, pipelined. In any other
// case the INSERT stores nothing: it inserts no row when the stream is at
// another version or the command is recorded, and fails when an event's
// ID is stored already or twice in the append. The append then runs
// again as a transaction that first reads what is stored (two round
// trips), to tell a conflict from a retry, an ID taken or a duplicate
// command.
//
// Positions are large (about 16384 times the number of transactions the
// server has run), increase in the order readers see events and have
// gaps, which are never filled; they are not counts of events. Positions
// taken by an append that rolls back are never used. (Keep
// synchronous_commit on, the default: with it off, a crash of the server
// can lose the last commits after readers have seen them.)
//
// The cost is that a reader is held back by the oldest transaction
// running on the server, any transaction in any database, not only
// appends: the events committed after it began wait until it ends. Keep
// transactions short; the gauge eventsource.subscription.held_back (see
// Telemetry) shows how long the oldest committed event held back has
// waited. A live subscription that finds events held back reads again
// after 10 ms rather than waiting for a notification, which the
// transaction holding them back does not send. A reader that must see
// events it has just appended (a test, a read-your-writes check) calls
// [Store.AwaitVisible] first. An append that stalls inside its
// transaction (a frozen process, a cut network) holds every reader back
// and its stream's appends up until the server ends its session after 5
// seconds of idling (idle_in_transaction_session_timeout is set for the
// append's transaction; [WithAppendIdleTimeout] changes it). An append
// whose events (data and metadata) exceed [StageAbove] bytes (64 KiB)
// uploads them into an unlogged table of its transaction in its first
// round trip, and moves them into the events table with the next
// statement, so that a slow upload is never idle time.
//
// Release 4 of the tables (migration 4) made this change: until then
// appends to a schema took turns under one lock, and positions were
// taken from a sequence (1, 2, 3, …), so appends committed one at a
// time (827 single-event appends a second from 8 goroutines, 0.24× raw
// pgx, on the machine of the README). [Store.Migrate] upgrades a table
// in place: the events stored keep their positions, which are all below
// the new ones, and the position column loses its default, so that a
// process of an earlier release still running fails to append rather
// than take a position below those readers have passed. Reads take no
// lock and do not wait for appends.
//
// A fresh events table grows faster than its statistics: pgx prepares the
// append's statements, and PostgreSQL may settle on a generic plan for the
// idempotency lookup (of the appends that check what is stored) while the
// table is small (a sequential scan), which slows them until autovacuum
// next analyses the table. After a bulk
// import into a new store, run ANALYZE on its events table.
//
// # Subscriptions
//
// After its commit, in the same round trip, an append sends a
// notification on the channel named after the schema
// ("eventsource_events"), outside its transaction, for a NOTIFY inside it
// would take PostgreSQL's global notification lock at every commit. A
// notification still takes that lock as its own transaction commits, so
// a store sends one at a time: an append that commits while another
// append's notification is in flight sends none, and the next append to
// send one covers it, or, if none does within a millisecond, the store
// sends it through the pool, as it does when the notification in flight
// has been so for 10ms (its append waits for its stream's lock, which
// another session may hold for long); no append waits for a
// notification but the one its round trip carries. A live
// [Store.Subscribe] LISTENs on a connection of its
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
// Every call that queries the database has a client span, but
// [Store.AwaitVisible], whose polls record nothing. Each covers one call
// of the store, not one statement (an append is a transaction
// of several), so db.operation.name is the store's name of the call, and
// the span's name is its db.query.summary: the operation and its target,
// the schema-qualified table or, for calls on no table, db.namespace.
//
//   - BATCH {schema}.events: one Append: its transaction, from BEGIN to
//     COMMIT (a lock, one INSERT of all its events; or, when that INSERT
//     stores nothing, a second transaction that checks what is stored
//     before it inserts), with db.operation.batch.size, the number of
//     statements sent (by both transactions), and
//     [AttrStreamID] (eventsource.stream_id). The conventions name a
//     batch of different statements BATCH. A conflict fails it with
//     error.type eventsource.concurrency_conflict, a duplicate command
//     with eventsource.duplicate_command, an event ID stored in another
//     stream with eventsource.event_id_taken.
//   - notify {database}|{schema}: the pg_notify that tells subscribers
//     of an append, after its commit; a child of the append's span (of
//     one of the appends it covers, when sent for appends that committed
//     while another was in flight). Its failure is recorded on it and
//     otherwise ignored.
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
//   - count {schema}.events: CountAfter, which those gauges call every
//     second too (positions have gaps: they count events with it); their
//     calls have no span either.
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
//     subscribe, listen, unlisten, head, count, command_recorded,
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
//     stream's append lock, so it shows the queue when appends to one
//     stream contend. An append
//     rejected for bad arguments records nothing.
//   - eventsource.conflicts (counter, {conflict}): appends rejected
//     because the stream was not at the expected version.
//   - eventsource.subscription.lag (gauge, {event}): recorded at every
//     read of a subscription: how many events were stored after the last
//     event the subscription handed on (0 when a read finds nothing new),
//     counted with the sequence that numbers events as they are inserted
//     (positions have gaps), so appends in progress or rolled back make
//     it an upper bound. With several subscriptions in one process it
//     holds the latest reading of any of them.
//   - eventsource.subscription.held_back (gauge, s): recorded at every
//     read of a subscription: the age (since it was recorded) of the
//     oldest committed event that readers may not read yet, because a
//     transaction that began before it is still running (see "The global
//     order"); 0 when none is held back. A value that keeps growing names
//     a long transaction on the server (pg_stat_activity, oldest
//     xact_start).
//
// The events appended carry, in their metadata, the trace context of the
// append's span (see
// [github.com/otelpatterns/patterns/eventsource/storekit.PrepareAppend]),
// so that the spans of the projections and relays that read them link to
// the append ([eventsource.TraceContext]).
package pgstore
