// Package pgcdc is change data capture from PostgreSQL: it streams the
// row changes of chosen tables, by logical replication, to a handler,
// one committed transaction at a time, in commit order, with nothing lost
// when the consumer crashes.
//
// In a strangler-fig migration it keeps the new system's data in step
// with the legacy database while the legacy system still writes it: the
// handler appends each change to the new system's event store
// ([github.com/otelpatterns/patterns/eventsource]) or publishes it on a
// bus ([github.com/otelpatterns/patterns/cqrs]), and the legacy code is
// left as it is, with no dual writes to add to it.
//
//	c, err := pgcdc.New(os.Getenv("LEGACY_DATABASE_URL"), "orders_to_new",
//		[]string{"public.orders", "public.order_lines"},
//		func(ctx context.Context, tx pgcdc.Transaction) error {
//			return publish(ctx, tx) // idempotent, see below
//		})
//	if err != nil {
//		return err
//	}
//	if err := c.Setup(ctx); err != nil { // at deploy time, see below
//		return err
//	}
//	return c.Run(ctx) // until ctx ends
//
// # Setting PostgreSQL up
//
// Logical replication needs, on the server:
//
//   - wal_level=logical. It takes a restart of the server:
//     ALTER SYSTEM SET wal_level = logical, then restart. The default,
//     replica, makes [Consumer.Setup] and [Consumer.Run] fail with an
//     error that says so.
//   - max_replication_slots and max_wal_senders above 0 (10 by default),
//     with one of each free for each consumer.
//   - a role with the REPLICATION attribute (or a superuser), and, to
//     let the consumer create its publication, the owner of the tables.
//
// A publication says which tables' changes the server sends. The
// consumer's is named after its slot ([WithPublication] names another);
// the consumer creates it, FOR TABLE its tables, when it does not exist,
// or requires it to exist under [WithCreatePublication](false). Either
// way the consumer never alters it, and checks that it publishes every
// one of its tables, whole: all of insert, update, delete and truncate
// (the default of CREATE PUBLICATION), and, from PostgreSQL 15, no row
// filter (WHERE) and no column list for them. Changes a publication
// leaves out would be lost without a word, so Setup and Run refuse one
// that does, with an error that says what it lacks. Changes of other
// tables the publication has are not delivered.
//
// A partitioned table's changes come under its own name only from a
// publication WITH (publish_via_partition_root = true), as the consumer
// creates it; from another, the table does not count as published. The
// inserts, updates and deletes of its rows come, whichever partition
// holds them, and a TRUNCATE of the partitioned table comes as a
// truncate of it. But PostgreSQL does not publish, through the root, a
// TRUNCATE run on one of its partitions: the partition's rows are gone
// from the partitioned table, and the handler is not told. Where the
// legacy system empties partitions so, have it delete their rows
// instead (DELETE FROM the partition, delivered row by row), or have
// the new system reconcile after such maintenance.
//
// A replication slot keeps the consumer's position in the server's
// write-ahead log (WAL) across restarts of the consumer and of the
// server. The consumer creates it when it does not exist and never
// drops it; [Consumer.DropSlot] does, when asked. A slot streams the
// changes committed after its creation: call [Consumer.Setup] before
// the writes that must not be missed (and copy the rows that exist
// then, if the new system needs them). A slot that no consumer reads
// keeps the server from recycling WAL until its disk is full: drop the
// slot of a consumer retired for good, and watch [MetricLag].
//
// # Failover and lost slots
//
// A slot lives on one server. A standby promoted in place of its
// primary carries no logical slot over before PostgreSQL 17; from 17 it
// carries those created with failover = true, when the standby
// synchronises them (sync_replication_slots = on): create the slot so
// yourself, before Setup, with pg_create_logical_replication_slot(slot,
// 'pgoutput', false, false, true), and the consumer uses it. A slot can
// also be dropped by an administrator, as it held back WAL.
//
// Either way the changes committed between the slot's last position and
// a new slot's creation are not delivered. A consumer that had a
// position in its slot ([Consumer.Confirmed] is not 0) and finds it gone
// does not create it anew: Setup and Run return [ErrSlotLost]. A
// consumer that starts afresh (a new process, after a failover) cannot
// tell, and creates the slot: so after a failover, or when Run returned
// ErrSlotLost, treat the changes since the last handled transaction as
// lost. Call [Consumer.DropSlot] (which also makes the consumer forget
// its position), Setup, and then copy the tables' rows anew, or
// reconcile the new system with them, before relying on the stream
// again. The same goes for a slot the server invalidated because it held
// back more WAL than max_slot_wal_keep_size, which Run reports with an
// error of its own.
//
// # REPLICA IDENTITY
//
// What an update or a delete tells of the old row depends on the
// table's REPLICA IDENTITY. Under the default (the primary key), a
// delete carries the old row's key columns alone, and an update carries
// the old key only when it changed it, or when a key column holds a
// value stored out of line (TOASTed), which the server then sends:
// [Change.Old] holds the key, and [Change.Key] is the key of the row,
// from Old or New. Under ALTER TABLE ... REPLICA IDENTITY FULL, updates
// and deletes carry the whole old row, at the cost of more WAL; a table
// with neither a primary key nor REPLICA IDENTITY FULL (or USING INDEX)
// cannot publish updates and deletes at all: once it is in a
// publication, PostgreSQL refuses its UPDATE and DELETE statements, the
// legacy system's included, so the consumer refuses to create a
// publication of such a table. An update that leaves a large (TOASTed)
// value unchanged does not send it again: the column is left out of
// [Change.New] and named in [Change.Unchanged].
//
// # Delivery: at least once, in commit order
//
// The consumer hands the [Handler] one transaction at a time, in commit
// order, with the changes the transaction made to the consumer's tables,
// in the order it made them; transactions that changed none of them are
// not delivered. Only when the handler returned nil does the consumer
// confirm the transaction's end to the server, which then moves the
// slot past it. A handler that fails gets the same transaction again
// after a backoff ([WithBackoff]), without end or up to
// [WithMaxAttempts]; a panic is an error like any other.
//
// So nothing is lost, but a transaction may be delivered more than
// once: after a crash of the consumer, a lost connection or a cancelled
// Run, the next Run starts from the slot's position, and gets again the
// transactions handled but not confirmed yet. Handlers must be
// idempotent: key what they write by [Transaction.CommitLSN] and the
// change's index in the transaction (an event id, a message id for
// deduplication), or make each write an upsert of the row's state.
//
// A transaction is held in memory whole before it is handed over:
// a transaction of millions of rows takes memory in proportion.
//
// # Copying both ways
//
// While a migration copies changes both ways (legacy to new by this
// package, new to legacy by a subscription to the new system's events),
// the writes of the new-to-legacy copier come back through the slot. To
// tell them apart, let the copier mark its sessions with a replication
// origin (pg_replication_origin_create once, then
// pg_replication_origin_session_setup on each connection): its
// transactions carry the origin's name in [Transaction.Origin], and the
// handler skips them.
//
// # Connections
//
// [Consumer.Run] holds one replication connection (replication=database,
// added to the connection string) while it streams, reads and replies
// to the server's keep-alive messages, and reports its confirmed
// position at least every [WithStatusInterval], also while a handler
// runs, so that a slow handler does not look like a dead connection.
// Each of these reports asks the server for a reply: a connection on
// which nothing came for 3 intervals (or the server's
// wal_sender_timeout, if longer) is dead, though still open (a server
// gone behind a proxy, a NAT that forgot the connection), and Run
// closes it. When the connection is lost, or the slot is in use by
// another consumer, Run connects again after a backoff, so a second
// process with the same slot is a standby that takes over when the
// first stops.
//
// # Telemetry
//
// Spans come from the tracer named [ScopeName] of the
// [WithTracerProvider] provider, metrics from the meter named
// [ScopeName] of the [WithMeterProvider] provider (the global ones by
// default).
//
// Each transaction handed to the handler has a span of kind consumer,
// "process {slot}", covering every attempt (the handler's own spans are
// its children; it starts a trace of its own: the change carries no
// trace context), with:
//
//   - db.system.name: postgresql; db.namespace: the database;
//     server.address, and server.port unless it is 5432.
//   - messaging.operation.type and messaging.operation.name: process.
//   - messaging.consumer.group.name: the slot;
//     messaging.destination.name: the publication.
//   - messaging.batch.message_count: the transaction's changes.
//   - pgcdc.xid, pgcdc.commit_lsn ("16/B374D848") and pgcdc.attempts:
//     how many times the handler was called with it.
//   - on failure (Run gave up or was cancelled): status Error and
//     error.type (pgcdc.handler after [WithMaxAttempts] failures,
//     context.Canceled...).
//
// Each failed attempt that is tried again is an event pgcdc.retry, with
// error.type (pgcdc.panic for a panic) and pgcdc.attempts.
//
// Metrics:
//
//   - pgcdc.changes (counter, {change}): the changes handled, with
//     db.collection.name (the schema-qualified table), pgcdc.operation
//     (insert, update, delete or truncate) and
//     messaging.consumer.group.name (the slot). Changes delivered again
//     are counted again.
//   - pgcdc.lag (gauge, By): while Run streams, the bytes of WAL between
//     the server's end, as it last reported it, and the position the
//     consumer confirmed, with messaging.consumer.group.name. It grows
//     while a handler is slow or failing; between transactions the
//     consumer confirms the server's end, so writes to other tables do
//     not make it grow.
package pgcdc
