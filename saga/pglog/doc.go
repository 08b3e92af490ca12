// Package pglog is a [saga.Log] kept in PostgreSQL, through a pgx v5 pool:
// the durable record of sagas and their transitions that a saga
// orchestrator writes as it runs, and the leases that let several
// instances of a service share the work without two running one saga.
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	if err != nil {
//		return err
//	}
//	defer pool.Close()
//	sagaLog, err := pglog.New(pool)
//	if err != nil {
//		return err
//	}
//	if err := sagaLog.Migrate(ctx); err != nil { // at start-up
//		return err
//	}
//	// hand sagaLog to the saga orchestrator
//
// [Log.Migrate] creates the schema ("saga" by default, see [WithSchema])
// and its tables, and upgrades them when a later version of this package
// changes them. It is idempotent and safe to call from every instance of
// a service at once. The log does not own the pool: close the pool after
// the log's last call. The log is a [saga.Reopener], so that operators can
// retry or resolve a saga that needs attention ([saga.Orchestrator.Retry],
// [saga.Orchestrator.Resolve]), and passes the conformance suite of
// [github.com/otelpatterns/patterns/saga/logtest].
//
// # Tables
//
// Version 2 of the schema ({s} is the quoted schema name):
//
//	CREATE TABLE {s}.sagas (
//		id          text PRIMARY KEY,
//		name        text NOT NULL,
//		version     integer NOT NULL,
//		status      text NOT NULL,
//		data        bytea,
//		trace       jsonb,
//		owner       text,          -- NULL: released, finished or never leased
//		lease_until timestamptz,
//		created_at  timestamptz NOT NULL DEFAULT now(),
//		updated_at  timestamptz NOT NULL DEFAULT now()
//	);
//	CREATE INDEX sagas_claimable ON {s}.sagas (created_at, id)
//		WHERE status IN ('running', 'compensating');
//	CREATE TABLE {s}.transitions (
//		saga_id text NOT NULL,     -- the saga's id in {s}.sagas
//		seq     bigint NOT NULL,
//		status  text NOT NULL,     -- '' when the transition sets none
//		step    text NOT NULL,
//		phase   text NOT NULL,
//		kind    text NOT NULL,
//		attempt integer NOT NULL,
//		data    bytea,             -- NULL when the data did not change
//		error   text NOT NULL,
//		at      timestamptz NOT NULL DEFAULT now(),
//		CONSTRAINT transitions_pkey PRIMARY KEY (saga_id, seq)
//	);
//	-- Deleting (or truncating) sagas deletes their transitions, with
//	-- the rights of the function's owner (SECURITY DEFINER), as the
//	-- cascade of version 1 had those of the transitions' owner.
//	CREATE TRIGGER delete_transitions AFTER DELETE ON {s}.sagas
//		REFERENCING OLD TABLE AS deleted
//		FOR EACH STATEMENT EXECUTE FUNCTION {s}.delete_transitions();
//	CREATE TRIGGER truncate_transitions AFTER TRUNCATE ON {s}.sagas
//		FOR EACH STATEMENT EXECUTE FUNCTION {s}.delete_transitions();
//
// plus schema_migrations, which records the version (the schema may be
// shared with eventsource/pgstore and cqrs/pgcheckpoint, which keep
// their own versions in it). The log never deletes: to keep the tables
// small, delete finished sagas (status completed, compensated, resolved,
// or needs_attention if no one will resolve them) whose updated_at (the
// last change of the row: its status, owner or lease) is old enough; their
// transitions go with them. The status resolved and the
// kind retried, which Retry and Resolve write, need no change of the
// tables.
//
// Version 1 had a foreign key from the transitions to the sagas, with
// ON DELETE CASCADE, in place of the triggers; Migrate drops it. Its check
// cost a query and a lock in the server for each transition inserted,
// and guarded nothing that Append does not: Append inserts transitions
// only while it holds the lock of the saga's row, which a DELETE of the
// row must wait for. A DELETE in a transaction of repeatable read or
// serializable would not see the transitions appended since its
// snapshot, so the trigger refuses to delete a leased saga (owner set)
// in one: delete those in read committed.
//
// Saga data and transition data are bytea, stored as they are. Text that
// comes from the steps (a transition's error message) or the propagator
// (the trace context's keys and values) is stored with each NUL byte and
// each run of bytes that is not UTF-8 replaced by U+FFFD: PostgreSQL's
// text and jsonb refuse both, and a write that failed on them would fail
// again at every recovery, so that the saga could never finish.
//
// # Leases and fencing
//
// Every method is one statement, so one round trip on a connection that
// has prepared it (pgx prepares and caches each statement per connection),
// and leases run from the database's clock (now() plus the lease), so the
// clocks of the instances need not agree. Under load, the statements of
// Create and Append that come in together go in one batch (see Group
// commit below), each with the meaning it has alone.
//
// [Log.Append] is one statement: a WITH that locks the saga's row only if the
// row's owner is the caller, and an INSERT of the batch's transitions (scalar
// parameters for batches of one or two, arrays for more) that selects from
// it, so it inserts nothing if the row did not match. A batch that sets a
// status locks the row with an UPDATE that sets it (and clears the owner on
// a final status); the others, most of them (a step's outcome with the
// Started transition of the next), with
// SELECT ... FOR NO KEY UPDATE, the lock that UPDATE takes, which leaves no new
// row version behind. Either way the append holds the row lock of the saga, as
// a claim does, so appends and claims of one saga take turns: an append that
// waits for a claim rechecks the owner once the claim commits (PostgreSQL
// re-evaluates the WHERE clause on the newest row) and is turned away, and a
// claim skips a saga whose row an append holds. A stale owner thus never writes
// after another has claimed the saga. A Seq that a transition holds already
// (taken long ago, or by an append that committed while this one waited) is
// turned away by the transitions' primary key, with no probe of the Seqs
// beforehand: its error rolls back the whole statement, UPDATE included, so a
// rejected batch records nothing, not even its status, and Append returns
// ErrLeaseLost. (PostgreSQL logs the violation, as it logs every error; a
// healthy run never repeats a Seq.) Only when nothing was written does a second
// query tell a missing saga (ErrNotFound) from a lost lease (ErrLeaseLost).
//
// [Log.Claim] is an UPDATE of the rows picked by a subquery that takes the
// oldest claimable sagas of the given names (unfinished, and released or
// past their lease) with FOR UPDATE SKIP LOCKED: concurrent claims take
// different sagas and never wait for one another. A claim may return fewer
// than its limit while sagas are claimable whose rows another transaction
// held at that moment; the next claim gets them. [Log.Renew] extends the
// leases the owner holds in one UPDATE, locking the rows in the byte
// order of their ids (whatever the column's collation) so that two
// renewals, or a renewal and a batch of writes, cannot deadlock, and
// returns the others. [Log.Load] reads
// the saga and its transitions with one query, so both come from one
// snapshot.
//
// # Group commit
//
// A write ([Log.Create], [Log.Append]) goes at once while fewer writes or
// batches than the log's slots ([WithGroupCommit]; by default an eighth
// of the pool's connections, at least one) are under way. The writes that
// come in meanwhile wait, and when one under way ends they go together, up
// to 64, as one batch: one round trip and one transaction, whose commit
// (the WAL flush, the round trips' system calls) is most of what a write
// costs both sides. Sagas run by many goroutines then cost PostgreSQL less
// than half of what they did; a saga alone waits for nothing and goes as
// before.
//
// Each write keeps the meaning it has alone. A batch commits all its
// writes or none: if one fails (a taken Seq, a saga created twice, a
// deadlock), PostgreSQL rolls the batch back, and each of its writes runs
// again on its own, so that its caller gets its own outcome. A batch's
// statement waits at most 100ms for a row lock (lock_timeout) before the
// batch gives up the same way, so that a saga whose row someone holds (an
// operator's open transaction) holds up the others in its batch only that
// long; a write that went at once and takes longer than 100ms gives its
// slot back, so that it holds up the writes after it only once; and
// writes that wait 100ms for a slot (the database slow to answer the
// batches under way) get a flush beyond the slots. A batch locks its
// sagas' rows in the byte order of their ids, as Renew does, so the two
// cannot deadlock (an older version's Renew, in the column's collation,
// may: the lock timeout ends it). A caller whose context ends while its
// write waits for a batch gets the context's error, and the write never
// runs; once the batch is sent, the batch goes on for its other callers
// (and is cancelled if none is left), and the write may commit, as a
// write on its own may commit after its context ended.
//
// # Telemetry
//
// Spans come from the tracer named [ScopeName] of the [WithTracerProvider]
// provider, metrics from the meter named [ScopeName] of the
// [WithMeterProvider] provider (the global ones by default). They follow
// the OpenTelemetry semantic conventions (v1.40) for PostgreSQL clients.
//
// Each call of the log that queries the database has a client span
// covering the call, so db.operation.name is the log's name of the call,
// and the span's name is its db.query.summary: the operation and its
// target, the schema-qualified table it writes (load: reads first) or,
// for Migrate, db.namespace.
//
//   - create {schema}.sagas: Create, with [saga.AttrID] (saga.id).
//   - append {schema}.transitions: Append, with its second query on
//     failure, and saga.id.
//   - renew {schema}.sagas: Renew of one id or more.
//   - claim {schema}.sagas: Claim with a limit of 1 or more and a name.
//   - release {schema}.sagas: Release, with saga.id.
//   - load {schema}.sagas: Load, with saga.id.
//   - reopen {schema}.sagas: Reopen, with its second query on failure,
//     and saga.id.
//   - migrate {database}|{schema}: Migrate.
//
// A log whose tracer can only make non-recording spans (a no-op provider,
// or the global one before a provider is set) starts none under a
// caller's span that is not recording either: the metrics are recorded
// all the same.
//
// A saga id (or owner) longer than 128 bytes is cut to its first 128
// bytes and its length ("…(N bytes)") in saga.id and in the log's error
// messages.
//
// An orchestrator claims sagas at every recovery tick and renews its
// leases every third of a lease, on no request's behalf: so that these
// calls do not make a root span each, claim and renew have a span only
// when the context carries a span already, when they failed, or when
// they did something (claimed a saga, found a lease lost). The others
// are in db.client.operation.duration all the same. Under a context that
// the orchestrator marks as untraced (its background renewals and
// recovery ticks), no call of the log has a span, whatever it did; the
// durations are recorded.
//
// Their attributes, set when the span starts:
//
//   - db.system.name: postgresql.
//   - db.operation.name: create, append, renew, claim, release, load,
//     reopen or migrate.
//   - db.collection.name: {schema}.sagas or {schema}.transitions; none
//     for migrate.
//   - db.namespace: {database}|{schema}, the database of the pool's
//     configuration and the log's schema ([WithSchema]).
//   - db.query.summary: the span's name.
//   - server.address: the host of the pool's configuration.
//   - server.port: its port, unless it is PostgreSQL's 5432 (then only
//     with [WithOptInAttributes]).
//
// On failure a span has status Error, error.type and
// db.response.status_code: error.type is the SQLSTATE of a PostgreSQL
// error, as is db.response.status_code, otherwise the saga package's
// error type (a lost lease, a taken Seq, a missing or existing saga are
// saga.lease_lost, saga.not_found or saga.exists),
// context.DeadlineExceeded, context.Canceled, the error's exported type
// name or _OTHER. With [WithOptInAttributes], db.response.returned_rows
// is set on claim (sagas claimed), renew (leases lost) and load
// (transitions). Calls that need no query (a Renew of no ids, a Claim of
// no names or with a limit below 1) and calls with a context already
// done record nothing. If the pool is instrumented too (otelpgx), its
// statement spans are children of these.
//
// A create or append that went in a batch of two writes or more (see
// Group commit) has [AttrBatchSize] (pglog.batch_size), the number of
// the log's writes in the batch, not counting the statement that sets
// its lock timeout; this includes a write whose caller gave up once the
// batch was sent. Its span covers its wait for the batch too. The
// batch's own statements, in an instrumented pool, are children of the
// span of the write queued first. A write that ran on its own, or again
// on its own after its batch failed, has none. The attribute is the
// log's own: the semantic conventions' batch size is for the span of a
// batch operation, and a write's span is of one statement.
//
// Metrics:
//
//   - db.client.operation.duration (histogram, s): the duration of every
//     call that queries the database, with the span's attributes but
//     saga.id, pglog.batch_size and db.response.returned_rows:
//     error.type and db.response.status_code on failure.
//
// Counts of sagas, steps and takeovers are the orchestrator's (package
// saga).
package pglog
