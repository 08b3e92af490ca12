package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/storekit"
	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/pgschema"
	"github.com/otelpatterns/patterns/internal/pgtel"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// pageSize is how many rows a read fetches per query.
const pageSize = 500

// streamVersionKey is the name of the unique constraint on (stream_id,
// version), the last guard against two events taking one version.
const streamVersionKey = "events_stream_version_key"

// eventIDKey is the name of the unique constraint on events' ids.
const eventIDKey = "events_id_key"

// positionsPerXact is how many positions each transaction id spans: an
// event's position is the id of the transaction that appended it
// (pg_current_xact_id()) times positionsPerXact, plus the event's place
// in its append, from 1. Migration 4 and the statements spell it out as
// 16384.
const positionsPerXact = 1 << 14

// An append of eventsource.MaxBatch events must fit in one transaction's
// positions: this fails to compile if it does not.
const _ = uint(positionsPerXact - 1 - eventsource.MaxBatch)

// visibleBound is the SQL of the first position that a reader may not
// read yet: that of the oldest transaction still running (the xmin of
// the statement's snapshot). Every transaction with a lower id has
// ended, so the events below it that will ever be visible are visible
// now; an event at or above it may belong to a transaction that has yet
// to commit.
const visibleBound = `(pg_snapshot_xmin(pg_current_snapshot())::text::bigint * 16384)`

// Store is an [eventsource.Store] and an [eventsource.SnapshotStore] kept
// in PostgreSQL. Create it with [New] and create its tables with
// [Store.Migrate].
//
// A Store is safe for concurrent use, also by several processes sharing
// the database: appends to different streams commit concurrently, appends
// to one stream take turns under an advisory lock of the stream, and
// readers never see an event appear behind one they have read (see the
// package documentation). The Store does not own the pool: close the pool
// after the last call.
type Store struct {
	pool         *pgxpool.Pool
	schema       string
	channel      string
	lockBase     uint64 // hashed with a stream id: the key of its append lock
	pollInterval time.Duration
	subTimeout   time.Duration // of each query of a subscription
	pageSize     int
	// idleLimit is the idle_in_transaction_session_timeout of an append's
	// transaction (WithAppendIdleTimeout): a client that stops between
	// the statements of an append (its process frozen, its network cut)
	// has its session ended by the server after this long, so that its
	// open transaction does not hold every reader back, nor its stream's
	// lock stop the stream's appends, until TCP gives up on the connection.
	idleLimit string
	// stageAbove is the size of events (data and metadata) above which an
	// append uploads them before it takes the lock (StageAbove); -1
	// never.
	stageAbove int
	tel        *instruments
	sql        statements

	// notifying is set while a notification is in flight; pending, when
	// an append committed that no notification sent so far may cover;
	// flushArmed, while a timer is set to send the one pending (see
	// commit); carried, while the append in flight carries a notification
	// it took over from pending; overtakeArmed, while a timer is set to
	// send what is owed if that append takes too long (overtake).
	notifying, pending, flushArmed, carried, overtakeArmed atomic.Bool
	// leadSince is when the append whose notification is in flight sent
	// its batch, in Unix nanoseconds.
	leadSince atomic.Int64

	// Test hooks, set only by tests (export_test.go) before the store is
	// used. beforeCommit runs in an append's transaction after the insert
	// and before the commit, holding the append lock; listening is called
	// with the backend pid of each connection a subscription listens on;
	// skipNotify makes appends send no notification.
	beforeCommit func(ctx context.Context, streamID string)
	listening    func(pid uint32)
	skipNotify   bool
}

// statements are the store's SQL, with its schema's quoted name built in.
type statements struct {
	existing, version, insert  string
	direct                     [4]string // appendDirect's inserts (directIndex)
	versionXact                string
	stage, insertStaged        string
	unstage                    string
	readStream, readAll        string
	readSub, subMeta, head     string
	countAfter                 string
	loadSnapshot, saveSnapshot string
	deleteSnapshot             string
	recordCommand, hasCommand  string
	hasCommandIn               string
	schema                     string // the quoted schema name
}

// eventColumns are the columns scanned by scanEvent, in order.
const eventColumns = "id, stream_id, version, position, type, data, metadata, recorded_at"

func newStatements(schema string) statements {
	q := pgx.Identifier{schema}.Sanitize()
	r := strings.NewReplacer("{s}", q, "{cols}", eventColumns, "{bound}", visibleBound)
	return statements{
		schema:   q,
		existing: r.Replace(`SELECT {cols} FROM {s}.events WHERE id = ANY($1::uuid[])`),
		version:  r.Replace(`SELECT coalesce(max(version), 0) FROM {s}.events WHERE stream_id = $1`),
		// The stream's version, and the transaction's id, taken here,
		// under the stream's lock, if no upload or command took it.
		versionXact: r.Replace(`SELECT coalesce(max(version), 0), pg_current_xact_id() FROM {s}.events WHERE stream_id = $1`),
		// recorded_at is the time of the insert, under the stream's lock,
		// not the transaction's start (now()), which precedes the wait for
		// it. The position is the transaction's id and the event's place
		// (positionsPerXact).
		insert: r.Replace(`INSERT INTO {s}.events (position, id, stream_id, version, type, data, metadata, recorded_at)
SELECT pg_current_xact_id()::text::bigint * 16384 + u.ord, u.id, $1, u.version, u.type, u.data, u.metadata, clock_timestamp()
FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::bytea[], $6::jsonb[])
	WITH ORDINALITY AS u(id, version, type, data, metadata, ord)
ORDER BY u.ord
RETURNING position, version, recorded_at`),
		direct: [4]string{
			r.Replace(directInsert(false, false)), r.Replace(directInsert(false, true)),
			r.Replace(directInsert(true, false)), r.Replace(directInsert(true, true)),
		},
		// Events larger than StageAbove are uploaded to the uploads table
		// before the append takes its lock, in the append's transaction
		// (so no one else sees them, and a rollback takes them away), and
		// moved to the events table under the lock.
		stage: r.Replace(`INSERT INTO {s}.uploads (upload, ord, id, type, data, metadata)
SELECT $1, u.ord, u.id, u.type, u.data, u.metadata
FROM unnest($2::uuid[], $3::text[], $4::bytea[], $5::jsonb[]) WITH ORDINALITY AS u(id, type, data, metadata, ord)`),
		insertStaged: r.Replace(`WITH u AS (DELETE FROM {s}.uploads WHERE upload = $1 RETURNING ord, id, type, data, metadata)
INSERT INTO {s}.events (position, id, stream_id, version, type, data, metadata, recorded_at)
SELECT pg_current_xact_id()::text::bigint * 16384 + v.ord, u.id, $2, v.version, u.type, u.data, u.metadata, clock_timestamp()
FROM unnest($3::bigint[], $4::bigint[]) AS v(ord, version) JOIN u USING (ord)
ORDER BY v.version
RETURNING position, version, recorded_at`),
		unstage:    r.Replace(`DELETE FROM {s}.uploads WHERE upload = $1`),
		readStream: r.Replace(`SELECT {cols} FROM {s}.events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`),
		readAll:    r.Replace(`SELECT {cols} FROM {s}.events WHERE position > $1 AND position < {bound} ORDER BY position LIMIT $2`),
		// A subscription's read also returns each event's number in the
		// sequence (seq; the position of events stored before migration
		// 4), and then reads the sequence's last number and the age of the
		// oldest committed event held back, for its gauges, and how many
		// events after the same position (up to $2) its own snapshot sees:
		// a statement of its own, it has a later snapshot than the read's,
		// whose bound may be lower (see subscription.read).
		readSub: r.Replace(`SELECT {cols}, coalesce(seq, position)
FROM {s}.events WHERE position > $1 AND position < {bound} ORDER BY position LIMIT $2`),
		subMeta: r.Replace(`SELECT (SELECT last_value FROM {s}.events_position_seq),
	coalesce((SELECT extract(epoch FROM clock_timestamp() - recorded_at)::float8
		FROM {s}.events WHERE position >= {bound} ORDER BY position LIMIT 1), 0),
	(SELECT count(*) FROM (SELECT FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2) AS e)`),
		head: r.Replace(`SELECT coalesce(max(position), 0) FROM {s}.events WHERE position < {bound}`),
		// A range scan of the primary key, stopped after $2 rows.
		countAfter:    r.Replace(`SELECT count(*) FROM (SELECT FROM {s}.events WHERE position > $1 AND position < {bound} ORDER BY position LIMIT $2) AS e`),
		recordCommand: r.Replace(`INSERT INTO {s}.commands (command_id, stream_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`),
		hasCommand:    r.Replace(`SELECT EXISTS (SELECT FROM {s}.commands WHERE command_id = $1)`),
		hasCommandIn:  r.Replace(`SELECT EXISTS (SELECT FROM {s}.commands WHERE command_id = $1 AND stream_id = $2)`),
		loadSnapshot:  r.Replace(`SELECT version, format, data FROM {s}.snapshots WHERE stream_id = $1`),
		saveSnapshot: r.Replace(`INSERT INTO {s}.snapshots AS old (stream_id, version, format, data) VALUES ($1, $2, $3, $4)
ON CONFLICT (stream_id) DO UPDATE
SET version = excluded.version, format = excluded.format, data = excluded.data, saved_at = now()
WHERE old.version < excluded.version OR old.format <> excluded.format`),
		deleteSnapshot: r.Replace(`DELETE FROM {s}.snapshots WHERE stream_id = $1`),
	}
}

// New returns a store that keeps its tables in the schema of [WithSchema]
// ("eventsource" by default) of the pool's database. It does not touch the
// database: call [Store.Migrate] to create or upgrade the tables. It
// returns one error naming each bad argument: a nil pool or option, a bad
// schema name ([WithSchema]), poll interval or timeout.
//
// Each live [Store.Subscribe] holds one of the pool's connections for as
// long as it runs, so size the pool (pool_max_conns) for the subscriptions
// plus the appends and reads that run at once.
func New(pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	c := defaultConfig()
	var errs []error
	if pool == nil {
		errs = append(errs, errors.New("pool is nil"))
	}
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(&c)
	}
	errs = append(errs, c.validate()...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pgstore: New: %w", err)
	}
	return &Store{
		pool:         pool,
		schema:       c.schema,
		channel:      c.schema + channelSuffix,
		lockBase:     uint64(pgschema.LockKey(ScopeName, "append", c.schema)),
		pollInterval: c.pollInterval,
		subTimeout:   c.subTimeout,
		pageSize:     pageSize,
		idleLimit:    strconv.FormatInt(c.idleTimeout.Milliseconds(), 10) + "ms",
		stageAbove:   StageAbove,
		tel:          newInstruments(pool, c.schema, c.tracerProvider, c.meterProvider, c.optIn),
		sql:          newStatements(c.schema),
	}, nil
}

var (
	_ eventsource.Store           = (*Store)(nil)
	_ eventsource.SnapshotStore   = (*Store)(nil)
	_ eventsource.SnapshotDeleter = (*Store)(nil)
	_ eventsource.CommandLog      = (*Store)(nil)
)

// Append implements [eventsource.Store.Append].
//
// The append is one transaction that waits for its stream's append lock,
// so appends to one stream run one at a time, while appends to different
// streams run and commit side by side (see the package documentation).
// All events are inserted with one statement. An append of new events at
// the expected version takes one round trip; in any other case that
// transaction stores nothing, and a second one reads what is stored
// before it decides.
// Events whose data and metadata exceed [StageAbove] bytes are uploaded
// before the append takes the lock, so that their upload holds no other
// append to the stream up (see [WithAppendIdleTimeout]).
// After the commit, the store notifies subscribers; a failed notification
// is recorded on its span and otherwise ignored, as subscribers poll too.
// The events' metadata carries the trace context of the append's span.
//
// If the call fails after the commit was sent (the context ended, the
// connection dropped), the events may or may not be stored: append them
// again with the same IDs, to the same stream, which appends whichever
// are missing. An event whose ID is stored in another stream is no
// retry: the append fails with an [*eventsource.EventIDTakenError]
// (matching [eventsource.ErrEventIDTaken]) naming both streams and
// stores nothing.
//
// Under a command ID (see [eventsource.WithCommandID]), the append
// inserts the pair (command ID, stream ID) into the schema's commands
// table with its events, under the stream's lock, and fails with
// an error matching [eventsource.ErrDuplicateCommand] if the pair is
// there: it costs no extra round trip. The table keeps the pairs for
// good; delete old rows (by recorded_at) once retries of their commands
// can no longer arrive.
func (s *Store) Append(ctx context.Context, streamID string, expected eventsource.ExpectedVersion, events ...eventsource.NewEvent) ([]eventsource.Event, error) {
	if err := storekit.CheckAppend(streamID, expected, events); err != nil {
		return nil, err
	}
	command, hasCommand := eventsource.CommandID(ctx)
	if hasCommand {
		if err := eventsource.CheckCommandID(command); err != nil {
			return nil, err // so command is not empty
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, span, start := s.tel.Start(ctx, opAppend)
	if span.IsRecording() {
		span.SetAttributes(AttrStreamID.String(brief.String(streamID)))
	}
	// The events carry the trace context of the append's span, so that
	// the projections and relays reading them link to the append itself.
	events = storekit.PrepareAppend(ctx, events)
	var out []eventsource.Event
	var inserted, statements int
	var err error
	for attempt := 1; ; attempt++ {
		var n int
		out, inserted, n, err = s.append(ctx, streamID, expected, command, events)
		statements += n
		// An append to another stream that inserted one of the events'
		// IDs and had not committed when this one checked: the next
		// attempt finds it stored, and tells a retry from a taken ID.
		if err == nil || attempt == maxAttempts || !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	pgtel.SetBatchSize(span, statements)
	s.tel.End(ctx, span, opAppend, start, err)

	t := s.tel
	if t.appendDuration.Enabled(ctx) {
		d := time.Since(start).Seconds()
		if err == nil {
			t.appendDuration.Record(ctx, d)
		} else {
			t.appendDuration.Record(ctx, d, metric.WithAttributes(telemetry.ErrorType(err)))
		}
	}
	// errors.Is rather than errors.As: a target variable for As would
	// escape, an allocation on every append.
	switch {
	case err == nil:
		if inserted > 0 {
			t.appended.Add(ctx, int64(inserted))
		}
		return out, nil
	case errors.Is(err, eventsource.ErrConcurrencyConflict): // a *ConflictError
		t.conflicts.Add(ctx, 1)
		return nil, err
	case errors.Is(err, eventsource.ErrDuplicateCommand), // a *DuplicateCommandError
		errors.Is(err, eventsource.ErrEventIDTaken): // an *EventIDTakenError
		return nil, err
	}
	if isLockTimeout(err) && ctx.Err() == nil {
		// The server's wait for the lock ran out a moment before ctx.
		err = fmt.Errorf("%w: waiting for the stream's append lock (%w)", context.DeadlineExceeded, err)
	}
	return nil, fmt.Errorf("pgstore: appending to stream %s: %w", brief.Quote(streamID), pgschema.Err(ctx, err))
}

// isLockTimeout reports whether err is the end of a wait for a lock that
// ran out of lock_timeout (lockTimeout).
func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// maxAttempts is how many times Append runs its transaction when it fails
// for another stream's append of the same event IDs (retryable).
const maxAttempts = 3

// retryable reports whether err is the failure of an append that raced
// an append to another stream inserting one of the same event IDs: the
// unique violation of the events' IDs, or a deadlock with it.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "23505" && pgErr.ConstraintName == eventIDKey || pgErr.Code == "40P01")
}

// lockKey returns the key of the advisory lock of streamID's appends:
// the FNV-1a hash of the store's scope and schema, continued with the
// stream id. Two streams whose keys collide only take turns.
func (s *Store) lockKey(streamID string) int64 {
	h := s.lockBase
	for i := 0; i < len(streamID); i++ {
		h ^= uint64(streamID[i])
		h *= 1099511628211 // the 64-bit FNV prime
	}
	return int64(h)
}

// append runs an append and returns the events as stored, how many of
// them it inserted and how many statements it sent, from the first BEGIN
// to the last COMMIT or ROLLBACK. A command other than "" is the command
// ID to record with the stream. After the commit, it notifies
// subscribers.
//
// An append of events that need no upload runs first as one round trip
// (appendDirect) that stores them in the usual case, new events at the
// expected version, and nothing in every other; it then runs again, as
// appendChecked, which reads what is stored before it decides (a retry,
// a conflict, a duplicate command, an ID taken).
func (s *Store) append(ctx context.Context, streamID string, expected eventsource.ExpectedVersion, command string, events []eventsource.NewEvent) (out []eventsource.Event, inserted, statements int, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	defer conn.Release()

	if s.stageAbove < 0 || size(events) <= s.stageAbove {
		out, statements, err = s.appendDirect(ctx, conn, streamID, expected, command, events)
		if !needsChecks(err) {
			return out, len(out), statements, err
		}
	}
	out, inserted, n, err := s.appendChecked(ctx, conn, streamID, expected, command, events)
	return out, inserted, statements + n, err
}

// lockSQL bounds how long an append's transaction may sit idle (holding
// its stream's lock and every reader back) and how long it waits for
// the stream's lock, and takes the lock: see appendChecked.
const lockSQL = "SELECT set_config('idle_in_transaction_session_timeout', $1, true), set_config('lock_timeout', coalesce($3, current_setting('lock_timeout')), true), pg_advisory_xact_lock($2)"

// appendDirect runs an append in one round trip, with no check before its
// insert: BEGIN, the stream's lock (as appendChecked takes it), the insert
// of the events (and of the command's record, if any), COMMIT and the
// notification, pipelined. The insert reads the stream's version itself,
// in the snapshot of its statement, taken after the lock, and stores the
// events at the versions that follow it if it is the expected one (any,
// for eventsource.Any) and the command is not recorded, and nothing
// otherwise; an event ID stored already (a retry, or an ID taken) or
// twice in the append fails it (unique_violation). So it stores the
// events just as appendChecked would when they are new, the stream is at
// the expected version and the command new, and stores nothing in every
// other case, which it returns as errNotDirect or an error that
// needsChecks reports, leaving the decision to appendChecked, with the
// connection out of the transaction. A version other than the expected
// one, the usual other case, is no error on the server (none in its log).
func (s *Store) appendDirect(ctx context.Context, conn *pgxpool.Conn, streamID string, expected eventsource.ExpectedVersion, command string, events []eventsource.NewEvent) (_ []eventsource.Event, statements int, err error) {
	out := make([]eventsource.Event, len(events))
	for i, e := range events {
		out[i] = eventsource.Event{
			ID: e.ID, StreamID: streamID, Type: e.Type,
			Data: copyBytes(e.Data), Metadata: copyMap(e.Metadata),
		}
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	b.Queue(lockSQL, s.idleLimit, s.lockKey(streamID), lockTimeout(ctx))
	args := make([]any, 6, 7)
	args[0], args[1] = streamID, int64(expected)
	if len(events) == 1 {
		e := events[0]
		data := e.Data
		if data == nil {
			data = []byte{} // the column is NOT NULL; nil reads back as nil
		}
		var metadata []byte
		if e.Metadata != nil {
			if metadata, err = json.Marshal(e.Metadata); err != nil {
				return nil, 0, fmt.Errorf("encoding the metadata of event 0: %w", err)
			}
		}
		args[2], args[3], args[4], args[5] = pgtype.UUID{Bytes: e.ID, Valid: true}, e.Type, data, metadata
	} else {
		ids := make([]pgtype.UUID, len(events))
		for i, e := range events {
			ids[i] = pgtype.UUID{Bytes: e.ID, Valid: true}
		}
		cols, err := encode(events)
		if err != nil {
			return nil, 0, err
		}
		args[2], args[3], args[4], args[5] = ids, cols.types, cols.data, cols.metadata
	}
	sql := s.sql.direct[directIndex(len(events) > 1, command != "")]
	if command != "" {
		args = append(args, command)
	}
	b.Queue(sql, args...)
	statements = b.Len() + 1 // and the COMMIT
	read := func(br pgx.BatchResults) error {
		for range 2 { // BEGIN, the lock
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		// The event's place in the append is in its position.
		err := scanInserted(br, out, func(position, _ int64) int64 { return position%positionsPerXact - 1 })
		if errors.Is(err, errNoRows) {
			return errNotDirect
		}
		return err
	}
	if s.beforeCommit == nil {
		// If the insert stored nothing, the transaction commits nothing.
		err = s.commit(ctx, conn, b, read)
	} else {
		// The test hook runs between the insert and the COMMIT, while the
		// transaction holds back readers.
		br := conn.SendBatch(ctx, b)
		err = read(br)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			s.beforeCommit(ctx, streamID)
			err = s.commit(ctx, conn, &pgx.Batch{}, func(pgx.BatchResults) error { return nil })
		}
	}
	if err != nil {
		// The COMMIT did not run if the connection is still in the
		// transaction (failed, after a failed statement).
		if conn.Conn().PgConn().TxStatus() != 'I' {
			statements++
			if rerr := conn.Conn().PgConn().Exec(ctx, "ROLLBACK").Close(); rerr != nil && needsChecks(err) {
				// The checked append needs the connection out of it: err
				// is kept as text only, so that needsChecks does not
				// send the append on to it.
				return nil, statements, fmt.Errorf("pgstore: rolling back after %v: %w", err, rerr)
			}
		}
		return nil, statements, err
	}
	return out, statements, nil
}

// errNotDirect is appendDirect's report that its insert stored nothing:
// the stream is not at the expected version, or the command is recorded.
var errNotDirect = errors.New("pgstore: the append's insert stored nothing")

// errNoRows is scanInserted's report of an insert that returned no row.
var errNoRows = errors.New("insert returned no rows")

// needsChecks reports whether err is the failure of appendDirect in a
// case that appendChecked decides: errNotDirect, a unique_violation (an
// event ID stored already, or twice in the append, the stream's version
// taken) or a deadlock with an append to another stream inserting one of
// the same IDs.
func needsChecks(err error) bool {
	if err == errNotDirect {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "40P01") // unique_violation, deadlock_detected
}

// directIndex is the index in statements.direct of appendDirect's insert
// of many events (or one) with a command (or without).
func directIndex(many, command bool) int {
	i := 0
	if many {
		i += 2
	}
	if command {
		i++
	}
	return i
}

// directInsert returns the SQL of appendDirect's insert, with a command
// or not, of many events (in arrays) or one: $1 is the stream, $2 the
// expected version (negative for any), $3 to $6 the events' ids, types,
// data and metadata, $7 the command. The stream's version is read in
// the statement, after the lock; the events take the versions after it
// if it is the one expected, and the command's pair is inserted then
// too, unless it is there: the events are inserted only with it. Each
// event's position is made of the transaction's id and the event's
// place in the append, from which the client reads the place back.
func directInsert(many, command bool) string {
	var q strings.Builder
	q.WriteString(`WITH v AS (SELECT current FROM (SELECT coalesce(max(version), 0) AS current FROM {s}.events WHERE stream_id = $1) AS stream
	WHERE $2::bigint < 0 OR current = $2)`)
	from := "v"
	if command {
		q.WriteString(`,
c AS (INSERT INTO {s}.commands (command_id, stream_id) SELECT $7, $1 FROM v ON CONFLICT DO NOTHING RETURNING 1)`)
		from = "v, c"
	}
	q.WriteString(`
INSERT INTO {s}.events (position, id, stream_id, version, type, data, metadata, recorded_at)
`)
	if many {
		q.WriteString(`SELECT pg_current_xact_id()::text::bigint * 16384 + u.ord, u.id, $1, v.current + u.ord, u.type, u.data, u.metadata, clock_timestamp()
FROM ` + from + `, unnest($3::uuid[], $4::text[], $5::bytea[], $6::jsonb[]) WITH ORDINALITY AS u(id, type, data, metadata, ord)
ORDER BY u.ord`)
	} else {
		q.WriteString(`SELECT pg_current_xact_id()::text::bigint * 16384 + 1, $3::uuid, $1, v.current + 1, $4::text, $5::bytea, $6::jsonb, clock_timestamp()
FROM ` + from)
	}
	q.WriteString(`
RETURNING position, version, recorded_at`)
	return q.String()
}

// appendChecked runs an append's transaction, reading what is stored
// before it inserts: which of the events are stored already, and the
// stream's version. It returns the events as stored, how many of them it
// inserted and how many statements it sent, from the BEGIN to the COMMIT
// or ROLLBACK. A command other than "" is the command ID to record with
// the stream. After the commit, it notifies subscribers.
func (s *Store) appendChecked(ctx context.Context, conn *pgxpool.Conn, streamID string, expected eventsource.ExpectedVersion, command string, events []eventsource.NewEvent) (out []eventsource.Event, inserted, statements int, err error) {
	ids := make([]pgtype.UUID, len(events))
	for i, e := range events {
		ids[i] = pgtype.UUID{Bytes: e.ID, Valid: true}
	}
	// One round trip: begin, bound how long the transaction may sit idle
	// (holding the stream's lock and every reader back), wait for the
	// stream's lock, then, under it, upload large events, record the
	// command (if any) and read which events are stored already and the
	// stream's version. The statements are pipelined with
	// one Sync at the end, so the server counts no idle time among them.
	b := &pgx.Batch{}
	// READ COMMITTED whatever the session's default_transaction_isolation:
	// the statements after the lock must see the commits of the appends
	// that held it before, which a snapshot taken for the transaction at
	// its first statement (REPEATABLE READ), before the wait, would not.
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	// The lock comes before the first write, which gives the transaction
	// its id: so the appends to a stream take ids, and so positions, in
	// the order of their versions.
	//
	// The server waits for the lock no longer than ctx's deadline
	// (lock_timeout; set first, the columns are evaluated in order): a
	// session left waiting by a client that gave up, and could not cancel
	// it (a cut network), would otherwise take the lock in its turn and
	// hold it, idle, until the idle timeout ended it, and the retries of
	// a client whose attempts time out would queue behind their own
	// abandoned attempts for as long as they come.
	b.Queue(lockSQL, s.idleLimit, s.lockKey(streamID), lockTimeout(ctx))
	var upload pgtype.UUID // of the staged events; not Valid if not staged
	if s.stageAbove >= 0 && size(events) > s.stageAbove {
		cols, err := encode(events)
		if err != nil {
			return nil, 0, 0, err
		}
		upload = pgtype.UUID{Bytes: uuid.New(), Valid: true}
		b.Queue(s.sql.stage, upload, ids, cols.types, cols.data, cols.metadata)
	}
	if command != "" {
		b.Queue(s.sql.recordCommand, command, streamID)
	}
	b.Queue(s.sql.existing, ids)
	b.Queue(s.sql.versionXact, streamID)
	statements = b.Len()
	br := conn.SendBatch(ctx, b)
	tx := br.Tx()
	committed := false
	defer func() {
		if !committed {
			statements++ // the ROLLBACK
			_ = tx.Rollback(ctx)
		}
	}()
	stored, current, duplicate, err := readChecks(br, upload.Valid, command != "")
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, 0, statements, err
	}
	if duplicate {
		return nil, 0, statements, &eventsource.DuplicateCommandError{CommandID: command, StreamID: streamID}
	}
	// An ID is a retry only in its own stream: stored in another, it is
	// an error, not the other stream's event handed back as this one's.
	for _, e := range events {
		if got, ok := stored[e.ID]; ok && got.StreamID != streamID {
			return nil, 0, statements, &eventsource.EventIDTakenError{ID: e.ID, StreamID: streamID, StoredIn: got.StreamID}
		}
	}

	fresh := make([]int, 0, len(events)) // indexes in events
	seen := make(map[uuid.UUID]bool, len(events))
	for i, e := range events {
		if _, ok := stored[e.ID]; !ok && !seen[e.ID] {
			fresh = append(fresh, i)
			seen[e.ID] = true
		}
	}
	if len(fresh) == 0 { // a retried append: hand back what is stored
		out := make([]eventsource.Event, len(events))
		for i, e := range events {
			out[i] = stored[e.ID]
		}
		if command != "" { // keep the command's record
			if upload.Valid { // and not the staged events
				statements++
				if _, err := tx.Exec(ctx, s.sql.unstage, upload); err != nil {
					return nil, 0, statements, err
				}
			}
			committed = true
			statements++
			if err := tx.Commit(ctx); err != nil {
				return nil, 0, statements, err
			}
		}
		return out, 0, statements, nil
	}
	if expected != eventsource.Any && int64(expected) != current {
		return nil, 0, statements, &eventsource.ConflictError{StreamID: streamID, Expected: expected, Actual: current}
	}

	// The transaction has its id (taken with the version, under the
	// lock): the hook runs while it holds back readers.
	if s.beforeCommit != nil {
		s.beforeCommit(ctx, streamID)
	}
	statements += 2 // the insert and the COMMIT, in one round trip
	out, err = s.insert(ctx, conn, streamID, current, events, fresh, upload)
	// The COMMIT ran if the connection is out of the transaction.
	committed = conn.Conn().PgConn().TxStatus() == 'I'
	if err != nil {
		if isStreamVersionConflict(err) && !committed {
			// Someone wrote to the table without the stream's lock.
			var actual int64
			committed = true // rolled back here
			statements += 2
			verr := tx.Rollback(ctx)
			if verr == nil {
				verr = conn.QueryRow(ctx, s.sql.version, streamID).Scan(&actual)
			}
			if verr != nil {
				return nil, 0, statements, errors.Join(err, verr)
			}
			return nil, 0, statements, &eventsource.ConflictError{StreamID: streamID, Expected: expected, Actual: actual}
		}
		return nil, 0, statements, err
	}
	return out, len(out), statements, nil
}

// lockTimeout returns the lock_timeout of an append under ctx: the time
// left until ctx's deadline, in whole milliseconds rounded up, or nil
// (the session's setting) without a deadline.
func lockTimeout(ctx context.Context) *string {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil
	}
	ms := max((time.Until(deadline)+time.Millisecond-1)/time.Millisecond, 1)
	v := strconv.FormatInt(int64(ms), 10) + "ms"
	return &v
}

// notifySQL tells subscribers that events were appended. It runs after
// the commit, in a transaction of its own: NOTIFY within the append's
// transaction would take PostgreSQL's global notification lock at every
// commit.
const notifySQL = "SELECT pg_notify($1, '')"

// readChecks reads the results of the append's first batch: begin,
// set_config, lock, the upload if staged, the command's insert if
// withCommand, stored events, stream version. It reports whether the
// command was recorded already.
func readChecks(br pgx.BatchResults, staged, withCommand bool) (stored map[uuid.UUID]eventsource.Event, current int64, duplicate bool, err error) {
	n := 2 // BEGIN, set_config and pg_advisory_xact_lock
	if staged {
		n++
	}
	for range n {
		if _, err := br.Exec(); err != nil {
			return nil, 0, false, err
		}
	}
	if withCommand {
		tag, err := br.Exec()
		if err != nil {
			return nil, 0, false, err
		}
		duplicate = tag.RowsAffected() == 0
	}
	rows, err := br.Query()
	if err != nil {
		return nil, 0, false, err
	}
	stored = map[uuid.UUID]eventsource.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			rows.Close()
			return nil, 0, false, err
		}
		stored[e.ID] = e
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, err
	}
	if err := br.QueryRow().Scan(&current, nil); err != nil {
		return nil, 0, false, err
	}
	return stored, current, duplicate, nil
}

// size returns the bytes of the events' data and metadata.
func size(events []eventsource.NewEvent) int {
	n := 0
	for _, e := range events {
		n += len(e.Data)
		for k, v := range e.Metadata {
			n += len(k) + len(v)
		}
	}
	return n
}

// columns are the type, data and metadata columns of events, as the
// statements send them.
type columns struct {
	types    []string
	data     [][]byte
	metadata [][]byte
}

// encode returns the columns of events.
func encode(events []eventsource.NewEvent) (columns, error) {
	n := len(events)
	c := columns{types: make([]string, n), data: make([][]byte, n), metadata: make([][]byte, n)}
	for i, e := range events {
		c.types[i] = e.Type
		c.data[i] = e.Data
		if c.data[i] == nil {
			c.data[i] = []byte{} // the column is NOT NULL; nil reads back as nil
		}
		if e.Metadata != nil {
			md, err := json.Marshal(e.Metadata)
			if err != nil {
				return columns{}, fmt.Errorf("encoding the metadata of event %d: %w", i, err)
			}
			c.metadata[i] = md
		}
	}
	return c, nil
}

// insert inserts events[fresh[0]], events[fresh[1]], … as versions
// current+1, current+2, … of the stream, in one statement, commits and
// notifies subscribers, all in one round trip, and returns the events as
// stored. If upload is Valid, the events were staged under it in the
// first batch and are moved from there; otherwise they are sent now.
// The statements are pipelined: if the insert fails, the server skips
// the COMMIT and the notification, and the transaction is left failed.
// A failed notification is recorded on its span and otherwise ignored,
// as subscribers poll too.
func (s *Store) insert(ctx context.Context, conn *pgxpool.Conn, streamID string, current int64, events []eventsource.NewEvent, fresh []int, upload pgtype.UUID) ([]eventsource.Event, error) {
	n := len(fresh)
	versions := make([]int64, n)
	out := make([]eventsource.Event, n)
	for i, j := range fresh {
		e := events[j]
		versions[i] = current + 1 + int64(i)
		out[i] = eventsource.Event{
			ID: e.ID, StreamID: streamID, Version: versions[i], Type: e.Type,
			Data: copyBytes(e.Data), Metadata: copyMap(e.Metadata),
		}
	}
	b := &pgx.Batch{}
	if upload.Valid {
		ords := make([]int64, n)
		for i, j := range fresh {
			ords[i] = int64(j) + 1
		}
		b.Queue(s.sql.insertStaged, upload, streamID, ords, versions)
	} else {
		batch := make([]eventsource.NewEvent, n)
		ids := make([]pgtype.UUID, n)
		for i, j := range fresh {
			batch[i] = events[j]
			ids[i] = pgtype.UUID{Bytes: events[j].ID, Valid: true}
		}
		cols, err := encode(batch)
		if err != nil {
			return nil, err
		}
		b.Queue(s.sql.insert, streamID, ids, versions, cols.types, cols.data, cols.metadata)
	}
	err := s.commit(ctx, conn, b, func(br pgx.BatchResults) error {
		return scanInserted(br, out, func(_, version int64) int64 { return version - current - 1 })
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanInserted reads the rows (position, version, recorded_at) returned
// by an insert of the events out into out, at the index that index
// returns for each, and fails unless each event has its row.
func scanInserted(br pgx.BatchResults, out []eventsource.Event, index func(position, version int64) int64) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	n := int64(len(out))
	got := 0
	for rows.Next() {
		var position, version int64
		var recordedAt time.Time
		if err := rows.Scan(&position, &version, &recordedAt); err != nil {
			return err
		}
		i := index(position, version)
		if i < 0 || i >= n {
			return fmt.Errorf("insert returned position %d, version %d; want %d events", position, version, n)
		}
		out[i].Position, out[i].Version, out[i].RecordedAt = position, version, recordedAt.UTC()
		got++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if got == 0 {
		return errNoRows
	}
	if got != len(out) {
		return fmt.Errorf("insert returned %d rows; want %d", got, n)
	}
	return nil
}

// commit queues COMMIT on b, after the statements of the append's
// transaction queued there, and the notification to subscribers after
// it, sends b on conn, has read read the results of the statements
// before the COMMIT, and reads the COMMIT's and the notification's. The
// statements are pipelined: if one fails, the server skips the COMMIT
// and the notification, and the transaction is left failed. A failed
// notification is recorded on its span and otherwise ignored, as
// subscribers poll too.
func (s *Store) commit(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch, read func(pgx.BatchResults) error) (err error) {
	b.Queue("COMMIT")
	// One notification at a time per store: a PostgreSQL notification
	// takes a global lock as its transaction commits, and notifications
	// sent by every append queue for it; and one is enough for the
	// appends that committed before it. The append that finds none in
	// flight sends one after its COMMIT, in its batch, which covers the
	// appends owed one so far (pending); the others mark that they are
	// owed one, which the next such append covers, or, if none comes
	// soon, a timer (flushPending).
	lead := !s.skipNotify && s.notifying.CompareAndSwap(false, true)
	tookOver := false // the lead carries the notification owed to earlier appends
	if lead {
		s.leadSince.Store(time.Now().UnixNano())
		// They committed before the notification runs. But it runs after
		// the batch's lock, which may wait for long (another session
		// holds the stream's lock): if it does, overtake sends it.
		if tookOver = s.pending.Swap(false); tookOver {
			s.carried.Store(true)
			s.armOvertake(ctx)
		}
		b.Queue(notifySQL, s.channel)
	}
	sent := false // the lead's notification ran
	defer func() {
		if s.skipNotify {
			return
		}
		// Owed: this append's commit, unless its own notification ran;
		// what the lead took over, if its notification did not run (the
		// server skips the rest of a batch after a failed statement). An
		// append that failed on the server committed nothing, and owes
		// nothing of its own; one whose connection was lost (its
		// deadline, a network failure) may have committed, as the server
		// runs a batch on without its client.
		mayHaveCommitted := err == nil || conn.Conn().PgConn().IsClosed()
		if mayHaveCommitted && !(lead && sent) || lead && tookOver && !sent {
			s.pending.Store(true)
		}
		if lead {
			s.carried.Store(false)
			s.notifying.Store(false)
		}
		// After the Stores: a flushPending that found the notification in
		// flight left what is owed to this append.
		s.armFlush(ctx)
	}()
	br := conn.SendBatch(ctx, b)
	notified := false // the notification's result was read: Close's error is its
	defer func() {
		cerr := br.Close()
		if lead && !notified && cerr == nil {
			sent = true // read stopped early, and the rest of the batch ran
		}
		if err == nil && cerr != nil && !notified {
			err = cerr
		}
	}()
	if err := read(br); err != nil {
		return err
	}
	tag, err := br.Exec()
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	if lead {
		nctx, span, start := s.tel.Start(ctx, opNotify)
		_, nerr := br.Exec()
		s.tel.End(nctx, span, opNotify, start, nerr)
		notified = true // the append committed: its notification is a hint
		sent = nerr == nil
	}
	return nil
}

// flushDelay is how long a notification owed to appends may wait for
// the next append to send it in its batch before a timer sends it.
const flushDelay = time.Millisecond

// armFlush sets the timer that sends the notification owed (pending), if
// one is and no timer is set. Each append calls it after its Stores of
// pending and notifying, and flushPending clears flushArmed before it
// looks at pending: so a notification owed always has a timer set, a
// flushPending running that will see it, or the append in flight with
// the notification that calls armFlush when done.
//
// ctx is the append's: the notification's span is a child of its span.
func (s *Store) armFlush(ctx context.Context) {
	if s.pending.Load() && s.flushArmed.CompareAndSwap(false, true) {
		ctx = context.WithoutCancel(ctx)
		time.AfterFunc(flushDelay, func() { s.flushPending(ctx) })
	}
}

// flushPending sends the notifications owed, through the pool, unless
// one is in flight (whose append sets the timer again when done) or none
// is owed any more (an append sent one in its batch).
func (s *Store) flushPending(ctx context.Context) {
	s.flushArmed.Store(false)
	for s.pending.Load() && s.notifying.CompareAndSwap(false, true) {
		s.pending.Store(false) // the notification below covers every append that set it
		nctx, span, start := s.tel.Start(ctx, opNotify)
		_, err := s.pool.Exec(nctx, notifySQL, s.channel)
		s.tel.End(nctx, span, opNotify, start, err)
		s.notifying.Store(false)
	}
	if s.pending.Load() && s.notifying.Load() {
		// What is owed waits for the append in flight, whose batch waits
		// for its stream's lock first: for as long as another session
		// holds it.
		s.armOvertake(ctx)
	}
}

// leadGrace is how long a notification owed may wait for the append
// whose notification is in flight before overtake sends it.
const leadGrace = 10 * time.Millisecond

// armOvertake sets the timer of overtake, if none is set, to run when the
// append in flight has been so for leadGrace.
func (s *Store) armOvertake(ctx context.Context) {
	if s.overtakeArmed.CompareAndSwap(false, true) {
		ctx = context.WithoutCancel(ctx)
		wait := max(leadGrace-time.Since(time.Unix(0, s.leadSince.Load())), flushDelay)
		time.AfterFunc(wait, func() { s.overtake(ctx) })
	}
}

// overtake sends the notification owed (pending, or carried by the
// append in flight) through the pool if the append whose notification
// is in flight has been so for leadGrace or more: its batch sends its
// notification after its COMMIT, so after its stream's lock, which
// another session may hold for long, while the appends to other streams
// commit. The notification in flight still runs; it is one more.
func (s *Store) overtake(ctx context.Context) {
	if s.notifying.Load() && (s.pending.Load() || s.carried.Load()) {
		if wait := leadGrace - time.Since(time.Unix(0, s.leadSince.Load())); wait > 0 {
			time.AfterFunc(wait, func() { s.overtake(ctx) }) // a later append's
			return
		}
		s.carried.Store(false)
		s.pending.Store(false) // the notification below covers them
		nctx, span, start := s.tel.Start(ctx, opNotify)
		_, err := s.pool.Exec(nctx, notifySQL, s.channel)
		s.tel.End(nctx, span, opNotify, start, err)
	}
	s.overtakeArmed.Store(false)
	// After the Store: an append owed one since may have found the timer
	// set.
	if s.pending.Load() && s.notifying.Load() {
		s.armOvertake(ctx)
	}
}

// storable reports whether PostgreSQL can store s in a text column:
// valid UTF-8 without NUL bytes. [storekit.CheckAppend] and
// [storekit.CheckSnapshot] refuse to store other ids, so reads of them
// find nothing without a query (which would fail).
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

func isStreamVersionConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == streamVersionKey
}

// ReadStream implements [eventsource.Store.ReadStream]. It reads the
// stream in pages of 500 events, one query (and one span) each, holding
// no connection while the loop body runs. An error, including the
// context's, is yielded and ends the sequence.
func (s *Store) ReadStream(ctx context.Context, streamID string, fromVersion int64) iter.Seq2[eventsource.Event, error] {
	return func(yield func(eventsource.Event, error) bool) {
		from := max(fromVersion, 1)
		for {
			if err := ctx.Err(); err != nil {
				yield(eventsource.Event{}, fmt.Errorf("pgstore: reading stream %s from version %d: %w", brief.Quote(streamID), from, err))
				return
			}
			if streamID == "" || !storable(streamID) { // Append rejects such ids: no events
				return
			}
			page, err := s.readStreamPage(ctx, streamID, from)
			if err != nil {
				yield(eventsource.Event{}, fmt.Errorf("pgstore: reading stream %s from version %d: %w", brief.Quote(streamID), from, pgschema.Err(ctx, err)))
				return
			}
			for _, e := range page {
				if err := ctx.Err(); err != nil {
					yield(eventsource.Event{}, fmt.Errorf("pgstore: reading stream %s from version %d: %w", brief.Quote(streamID), e.Version, err))
					return
				}
				if !yield(e, nil) {
					return
				}
			}
			if len(page) < s.pageSize {
				return
			}
			from = page[len(page)-1].Version + 1
		}
	}
}

func (s *Store) readStreamPage(ctx context.Context, streamID string, from int64) ([]eventsource.Event, error) {
	ctx, span, start := s.tel.Start(ctx, opReadStream)
	if span.IsRecording() {
		span.SetAttributes(AttrStreamID.String(brief.String(streamID)))
	}
	page, _, err := s.queryPage(ctx, s.pool, false, s.sql.readStream, streamID, from, s.pageSize)
	s.tel.SetReturnedRows(span, len(page))
	s.tel.End(ctx, span, opReadStream, start, err)
	return page, err
}

// ReadAll implements [eventsource.Store.ReadAll]. It reads in pages of 500
// events, one query (and one span) each, holding no connection while the
// loop body runs, and ends at the first page that is not full. An error,
// including the context's, is yielded and ends the sequence.
//
// Appends commit in the order of their positions (see the package
// documentation), so a reader that has read position N has seen every
// event below N that will ever be stored.
func (s *Store) ReadAll(ctx context.Context, afterPosition int64) iter.Seq2[eventsource.Event, error] {
	return func(yield func(eventsource.Event, error) bool) {
		after := max(afterPosition, 0)
		for {
			if err := ctx.Err(); err != nil {
				yield(eventsource.Event{}, fmt.Errorf("pgstore: reading all events after position %d: %w", after, err))
				return
			}
			page, err := s.readAllPage(ctx, after)
			if err != nil {
				yield(eventsource.Event{}, fmt.Errorf("pgstore: reading all events after position %d: %w", after, pgschema.Err(ctx, err)))
				return
			}
			for _, e := range page {
				if err := ctx.Err(); err != nil {
					yield(eventsource.Event{}, fmt.Errorf("pgstore: reading all events after position %d: %w", after, err))
					return
				}
				if !yield(e, nil) {
					return
				}
				after = e.Position
			}
			if len(page) < s.pageSize {
				return
			}
		}
	}
}

func (s *Store) readAllPage(ctx context.Context, after int64) ([]eventsource.Event, error) {
	ctx, span, start := s.tel.Start(ctx, opReadAll)
	page, _, err := s.queryPage(ctx, s.pool, false, s.sql.readAll, after, s.pageSize)
	s.tel.SetReturnedRows(span, len(page))
	s.tel.End(ctx, span, opReadAll, start, err)
	return page, err
}

// querier is a *pgxpool.Pool or a *pgxpool.Conn.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// queryPage runs a query of events and returns them all. With withHead,
// each row has one more column, the highest position, which is returned.
func (s *Store) queryPage(ctx context.Context, q querier, withHead bool, sql string, args ...any) ([]eventsource.Event, int64, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var page []eventsource.Event
	var head int64
	for rows.Next() {
		var e eventsource.Event
		var err error
		if withHead {
			e, err = scanEvent(rows, &head)
		} else {
			e, err = scanEvent(rows)
		}
		if err != nil {
			return nil, 0, err
		}
		page = append(page, e)
	}
	return page, head, rows.Err()
}

// scanEvent scans the columns of eventColumns, then into extra.
func scanEvent(rows pgx.Rows, extra ...any) (eventsource.Event, error) {
	var (
		e          eventsource.Event
		id         pgtype.UUID
		metadata   []byte
		recordedAt time.Time
	)
	dest := append([]any{&id, &e.StreamID, &e.Version, &e.Position, &e.Type, &e.Data, &metadata, &recordedAt}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return e, err
	}
	e.ID = id.Bytes
	e.RecordedAt = recordedAt.UTC()
	if len(e.Data) == 0 {
		e.Data = nil
	}
	if metadata != nil {
		if err := json.Unmarshal(metadata, &e.Metadata); err != nil {
			return e, fmt.Errorf("decoding the metadata of event %s (stream %s, version %d): %w", e.ID, brief.Quote(e.StreamID), e.Version, err)
		}
	}
	return e, nil
}

// CommandRecorded implements [eventsource.CommandLog.CommandRecorded]
// with one query of the commands table (and one span).
func (s *Store) CommandRecorded(ctx context.Context, commandID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if eventsource.CheckCommandID(commandID) != nil { // Append rejects such ids
		return false, nil
	}
	ctx, span, start := s.tel.Start(ctx, opCommandRecorded)
	var ok bool
	err := s.pool.QueryRow(ctx, s.sql.hasCommand, commandID).Scan(&ok)
	s.tel.End(ctx, span, opCommandRecorded, start, err)
	if err != nil {
		return false, fmt.Errorf("pgstore: looking up command %s: %w", brief.Quote(commandID), pgschema.Err(ctx, err))
	}
	return ok, nil
}

// CommandRecordedIn implements
// [eventsource.CommandLog.CommandRecordedIn] with one query of the
// commands table (and one span, as CommandRecorded's).
func (s *Store) CommandRecordedIn(ctx context.Context, commandID, streamID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if eventsource.CheckCommandID(commandID) != nil { // Append rejects such ids
		return false, nil
	}
	ctx, span, start := s.tel.Start(ctx, opCommandRecorded)
	var ok bool
	err := s.pool.QueryRow(ctx, s.sql.hasCommandIn, commandID, streamID).Scan(&ok)
	s.tel.End(ctx, span, opCommandRecorded, start, err)
	if err != nil {
		return false, fmt.Errorf("pgstore: looking up command %s in stream %s: %w", brief.Quote(commandID), brief.Quote(streamID), pgschema.Err(ctx, err))
	}
	return ok, nil
}

// LoadSnapshot implements [eventsource.SnapshotStore.LoadSnapshot]. It
// returns an error matching [eventsource.ErrNotFound] when the stream has
// no snapshot.
func (s *Store) LoadSnapshot(ctx context.Context, streamID string) (eventsource.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return eventsource.Snapshot{}, err
	}
	if streamID == "" || !storable(streamID) { // SaveSnapshot rejects such ids
		return eventsource.Snapshot{}, fmt.Errorf("%w: no snapshot of stream %s", eventsource.ErrNotFound, brief.Quote(streamID))
	}
	ctx, span, start := s.tel.Start(ctx, opLoadSnapshot)
	if span.IsRecording() {
		span.SetAttributes(AttrStreamID.String(brief.String(streamID)))
	}
	snap := eventsource.Snapshot{StreamID: streamID}
	var format int64
	err := s.pool.QueryRow(ctx, s.sql.loadSnapshot, streamID).Scan(&snap.Version, &format, &snap.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		s.tel.End(ctx, span, opLoadSnapshot, start, nil)
		return eventsource.Snapshot{}, fmt.Errorf("%w: no snapshot of stream %s", eventsource.ErrNotFound, brief.Quote(streamID))
	}
	s.tel.End(ctx, span, opLoadSnapshot, start, err)
	if err != nil {
		return eventsource.Snapshot{}, fmt.Errorf("pgstore: loading the snapshot of stream %s: %w", brief.Quote(streamID), pgschema.Err(ctx, err))
	}
	snap.Format = int(format)
	if len(snap.Data) == 0 {
		snap.Data = nil
	}
	return snap, nil
}

// SaveSnapshot implements [eventsource.SnapshotStore.SaveSnapshot] with
// one statement: it stores snap unless the stream has a snapshot of the
// same format and the same or a newer version; a snapshot of another
// format is replaced whatever its version, so that a repository whose
// format changed ([eventsource.WithSnapshotFormat]) replaces the old
// snapshots as it saves. It rejects what [storekit.CheckSnapshot]
// rejects, with an error matching [eventsource.ErrInvalidArgument].
func (s *Store) SaveSnapshot(ctx context.Context, snap eventsource.Snapshot) error {
	if err := storekit.CheckSnapshot(snap); err != nil {
		return fmt.Errorf("pgstore: saving a snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, span, start := s.tel.Start(ctx, opSaveSnapshot)
	if span.IsRecording() {
		span.SetAttributes(AttrStreamID.String(brief.String(snap.StreamID)))
	}
	data := snap.Data
	if data == nil {
		data = []byte{}
	}
	_, err := s.pool.Exec(ctx, s.sql.saveSnapshot, snap.StreamID, snap.Version, int64(snap.Format), data)
	s.tel.End(ctx, span, opSaveSnapshot, start, err)
	if err != nil {
		return fmt.Errorf("pgstore: saving the snapshot of stream %s at version %d: %w", brief.Quote(snap.StreamID), snap.Version, pgschema.Err(ctx, err))
	}
	return nil
}

// DeleteSnapshot implements [eventsource.SnapshotDeleter.DeleteSnapshot]
// with one statement. Deleting a snapshot that does not exist is not an
// error.
func (s *Store) DeleteSnapshot(ctx context.Context, streamID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if streamID == "" || !storable(streamID) { // SaveSnapshot rejects such ids
		return nil
	}
	ctx, span, start := s.tel.Start(ctx, opDeleteSnapshot)
	if span.IsRecording() {
		span.SetAttributes(AttrStreamID.String(brief.String(streamID)))
	}
	_, err := s.pool.Exec(ctx, s.sql.deleteSnapshot, streamID)
	s.tel.End(ctx, span, opDeleteSnapshot, start, err)
	if err != nil {
		return fmt.Errorf("pgstore: deleting the snapshot of stream %s: %w", brief.Quote(streamID), pgschema.Err(ctx, err))
	}
	return nil
}

func copyBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
