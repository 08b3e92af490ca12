package pglog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/pgschema"
	"github.com/otelpatterns/patterns/saga"
)

// transitionsKey is the name of the primary key of the transitions table,
// the last guard against two transitions taking one Seq.
const transitionsKey = "transitions_pkey"

// sagasKey is the name of the primary key of the sagas table, which turns
// away a second Create of a saga.
const sagasKey = "sagas_pkey"

// Log is a [saga.Log] kept in PostgreSQL. Create it with [New] and its
// tables with [Log.Migrate].
//
// A Log is safe for concurrent use, also by several processes sharing the
// database. Leases are timed by the database's clock, so the clocks of the
// processes need not agree. The Log does not own the pool: close the pool
// after its last call.
type Log struct {
	pool   *pgxpool.Pool
	writer *writer // of Create and Append
	schema string
	tel    *instruments
	sql    statements
	// owner is the last owner that appended, with its interface (see
	// ownerArg).
	owner atomic.Pointer[boxedOwner]
}

// statements are the log's SQL, with its schema's quoted name built in.
type statements struct {
	schema                          string // the quoted schema name
	create, why, renew, claim, load string
	release, reopen, reopenWhy      string
	// appends are the statements of Append: appends[set][n] writes a
	// batch that sets a status (set 1) or none (set 0), of n transitions
	// sent as scalars (n up to maxScalars), or of any number of them sent
	// as arrays (n 0).
	appends [2][maxScalars + 1]string
}

// maxScalars is the largest batch that Append sends as scalar parameters,
// as a multi-row VALUES: the batches of a saga that runs its steps in
// sequence (a step's Started; a step's outcome with the next one's Started
// or the saga's final status). Larger batches go as arrays, which cost
// the client more to encode (an allocation per element).
const maxScalars = 2

// appendSQL returns the statement of an append of n transitions as
// scalars ($first on, 8 a transition), or of arrays for n 0, that sets a
// status ($3, and $4 if final) if set, with "{s}" for the quoted schema.
//
// The saga's row is locked, if owner holds the lease: by the UPDATE of
// its status, or else by FOR NO KEY UPDATE, the same lock without a new
// row version (and the WAL, the dead tuple and the index entries that it
// may bring). The lock serialises the appends to one saga and the claims
// of it. The INSERT adds the transitions only if the row matched. A taken
// Seq is turned away by the transitions' primary key alone, whether it
// was taken long ago or by an append that committed while this one waited
// for the row lock: its violation fails the whole statement, the UPDATE
// included. (A probe of the Seqs before the INSERT would cost an index
// lookup on every append to spare an error on the rare one that repeats
// a Seq, which a lost lease or a bug causes, not a healthy run.)
func appendSQL(set bool, n int) string {
	first := 3
	if set {
		first = 5
	}
	// params returns the parameters of a transition's columns, from
	// $from on, each cast to its column's type with suffix ("[]" for
	// arrays).
	params := func(from int, suffix string) string {
		types := [...]string{"bigint", "text", "text", "text", "text", "integer", "bytea", "text"}
		ps := make([]string, len(types))
		for i, t := range types {
			ps[i] = "$" + strconv.Itoa(from+i) + "::" + t + suffix
		}
		return strings.Join(ps, ", ")
	}
	var rows string
	if n == 0 {
		rows = "unnest(" + params(first, "[]") + ")"
	} else {
		var values []string
		for k := range n {
			values = append(values, "("+params(first+8*k, "")+")")
		}
		rows = "(VALUES " + strings.Join(values, ", ") + ")"
	}
	lock := `SELECT id FROM {s}.sagas
	WHERE id = $1 AND owner = $2
	FOR NO KEY UPDATE`
	if set {
		lock = `UPDATE {s}.sagas
	SET status = $3::text,
		owner = CASE WHEN $4::boolean THEN NULL ELSE owner END,
		updated_at = now()
	WHERE id = $1 AND owner = $2
	RETURNING id`
	}
	return `WITH s AS (
	` + lock + `
)
INSERT INTO {s}.transitions (saga_id, seq, status, step, phase, kind, attempt, data, error)
SELECT s.id, u.seq, u.status, u.step, u.phase, u.kind, u.attempt, u.data, u.error
FROM s, ` + rows + `
	AS u(seq, status, step, phase, kind, attempt, data, error)`
}

func newStatements(schema string) statements {
	q := pgx.Identifier{schema}.Sanitize()
	r := strings.NewReplacer("{s}", q,
		"{unfinished}", "'"+string(saga.Running)+"', '"+string(saga.Compensating)+"'",
		"{until}", "now() + $2::bigint * interval '1 microsecond'")
	var appends [2][maxScalars + 1]string
	for set := range appends {
		for n := range appends[set] {
			appends[set][n] = r.Replace(appendSQL(set == 1, n))
		}
	}
	return statements{
		schema:  q,
		appends: appends,
		create: r.Replace(`INSERT INTO {s}.sagas (id, name, version, status, data, trace, owner, lease_until)
VALUES ($1, $3, $4, '` + string(saga.Running) + `', $5, $6::jsonb, nullif($7, ''), now() + $2::bigint * interval '1 microsecond')`),
		why: r.Replace(`SELECT owner, EXISTS (SELECT FROM {s}.transitions WHERE saga_id = $1 AND seq = ANY($2::bigint[]))
FROM {s}.sagas WHERE id = $1`),
		// The rows are locked in the byte order of their ids (COLLATE
		// "C", whatever the column's collation), as a batch of writes
		// locks them, so that two renewals of overlapping sagas, or a
		// renewal and a batch, cannot deadlock.
		renew: r.Replace(`WITH r AS (
	UPDATE {s}.sagas SET lease_until = {until}, updated_at = now()
	WHERE id IN (SELECT id FROM {s}.sagas WHERE id = ANY($3::text[]) AND owner = $1 ORDER BY id COLLATE "C" FOR UPDATE)
	RETURNING id
)
SELECT u.id FROM unnest($3::text[]) WITH ORDINALITY AS u(id, ord)
WHERE NOT EXISTS (SELECT FROM r WHERE r.id = u.id)
ORDER BY u.ord`),
		claim: r.Replace(`UPDATE {s}.sagas SET owner = $1, lease_until = {until}, updated_at = now()
WHERE id IN (
	SELECT id FROM {s}.sagas
	WHERE status IN ({unfinished}) AND name = ANY($3::text[]) AND (owner IS NULL OR lease_until <= now())
	ORDER BY created_at, id
	LIMIT $4
	FOR UPDATE SKIP LOCKED
)
RETURNING id, name, version, status, data, trace, created_at`),
		release: r.Replace(`UPDATE {s}.sagas SET owner = NULL, updated_at = now() WHERE id = $1 AND owner = $2`),
		// A saga that needs attention has no owner (its final status
		// cleared it), or the owner of an earlier Reopen, whose lease may
		// have expired. The row lock serialises two reopens: the second
		// rechecks the owner once the first commits, and is turned away.
		reopen: r.Replace(`UPDATE {s}.sagas SET owner = $2, lease_until = now() + $3::bigint * interval '1 microsecond', updated_at = now()
WHERE id = $1 AND status = '` + string(saga.NeedsAttention) + `' AND (owner IS NULL OR owner = $2 OR lease_until <= now())`),
		reopenWhy: r.Replace(`SELECT status, owner FROM {s}.sagas WHERE id = $1`),
		// One statement, so one snapshot: the record and its transitions
		// agree. The saga's data and trace come with the first row only.
		load: r.Replace(`SELECT s.name, s.version, s.status,
	CASE WHEN row_number() OVER w = 1 THEN s.data END,
	CASE WHEN row_number() OVER w = 1 THEN s.trace END,
	s.created_at,
	t.seq, t.status, t.step, t.phase, t.kind, t.attempt, t.data, t.error, t.at
FROM {s}.sagas s LEFT JOIN {s}.transitions t ON t.saga_id = s.id
WHERE s.id = $1
WINDOW w AS (ORDER BY t.seq)
ORDER BY t.seq`),
	}
}

var (
	_ saga.Log      = (*Log)(nil)
	_ saga.Reopener = (*Log)(nil)
)

// New returns a log that keeps its tables in the schema of [WithSchema]
// ("saga" by default) of the pool's database. It does not touch the
// database: call [Log.Migrate] to create or upgrade the tables. It returns
// an error naming each bad argument: a nil pool, a nil option ("opts[i]
// is nil") or a bad schema name.
func New(pool *pgxpool.Pool, opts ...Option) (*Log, error) {
	c := config{schema: DefaultSchema}
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(&c)
	}
	if pool == nil {
		errs = append(errs, errors.New("pool is nil"))
	}
	if c.slots < 0 {
		errs = append(errs, fmt.Errorf("WithGroupCommit(%d): slots must not be negative", c.slots))
	}
	if err := pgschema.CheckName(c.schema, MaxSchemaLen); err != nil {
		errs = append(errs, fmt.Errorf("WithSchema(%s): %w", brief.Quote(c.schema), err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pglog: New: %w", err)
	}
	if !c.slotsSet {
		c.slots = defaultSlots(pool.Config().MaxConns)
	}
	return &Log{
		pool:   pool,
		writer: newWriter(pool, c.slots),
		schema: c.schema,
		tel:    newInstruments(pool, c.schema, c.tracerProvider, c.meterProvider, c.optIn),
		sql:    newStatements(c.schema),
	}, nil
}

// Create implements [saga.Log.Create] with one INSERT. The lease runs
// from the database's clock. The keys and values of rec.Trace are stored
// with each NUL byte and each run of bytes that is not UTF-8 replaced by
// U+FFFD, which PostgreSQL's jsonb refuses; rec.Data is stored as it is.
func (l *Log) Create(ctx context.Context, rec saga.Record, owner string, lease time.Duration) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, span, start := l.tel.start(ctx, opCreate, rec.ID)
	defer func() { l.tel.End(ctx, span, opCreate, start, err) }()
	trace, err := encodeTrace(rec.Trace)
	if err != nil {
		return fmt.Errorf("pglog: creating saga %s: encoding its trace: %w", brief.Quote(rec.ID), err)
	}
	_, batched, err := l.writer.exec(ctx, rec.ID, l.sql.create, []any{rec.ID, lease.Microseconds(), rec.Name, rec.Version, rec.Data, trace, l.ownerArg(owner)})
	batchSize(span, batched)
	switch {
	case err == nil:
		return nil
	case isViolation(err, sagasKey):
		return fmt.Errorf("%w: saga %s", saga.ErrExists, brief.Quote(rec.ID))
	case err != nil:
		return fmt.Errorf("pglog: creating saga %s: %w", brief.Quote(rec.ID), pgschema.Err(ctx, err))
	}
	return nil
}

// Append implements [saga.Log.Append] with one statement: a SELECT FOR
// NO KEY UPDATE of the saga's row (an UPDATE of its status, if a
// transition of ts sets one), matching only if owner holds the lease,
// and an INSERT of the transitions (scalar parameters for batches of one
// or two, unnested arrays for more) that runs only if it matched. The
// row lock serialises the appends to a saga and the claims of it, so a stale owner is turned away
// whichever commits first. A taken Seq violates the transitions' primary
// key, which fails the whole statement: ErrLeaseLost. A transition's Error is stored with each
// NUL byte and each run of bytes that is not UTF-8 replaced by U+FFFD, as
// PostgreSQL's text refuses them: an error message can never make the
// write fail (and the saga stall, retrying it at every recovery). Only when nothing was written does a second query tell a missing
// saga from a lost lease.
func (l *Log) Append(ctx context.Context, id, owner string, ts ...saga.Transition) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ts) == 0 {
		return nil
	}
	ctx, span, start := l.tel.start(ctx, opAppend, id)
	defer func() { l.tel.End(ctx, span, opAppend, start, err) }()
	var status saga.Status
	for _, t := range ts {
		if t.Status != "" {
			status = t.Status
		}
	}
	set := 0
	// Not pooled: pgx hands the arguments to the pool's query tracer,
	// which may keep them after Exec returns.
	args := make([]any, 0, 4+8*min(len(ts), maxScalars))
	args = append(args, id, l.ownerArg(owner))
	if status != "" {
		set = 1
		args = append(args, word(string(status)), status.Final())
	}
	var sql string
	if len(ts) <= maxScalars {
		sql = l.sql.appends[set][len(ts)]
		for _, t := range ts {
			args = append(args, t.Seq, word(string(t.Status)), t.Step, word(string(t.Phase)), word(string(t.Kind)), attempt(t), t.Data, saga.ValidText(t.Error))
		}
	} else {
		sql = l.sql.appends[set][0]
		statuses, steps, phases, kinds, errs := make([]string, len(ts)), make([]string, len(ts)), make([]string, len(ts)), make([]string, len(ts)), make([]string, len(ts))
		attempts := make([]int32, len(ts))
		data := make([][]byte, len(ts))
		for i, t := range ts {
			statuses[i], steps[i], phases[i], kinds[i] = string(t.Status), t.Step, string(t.Phase), string(t.Kind)
			attempts[i], data[i], errs[i] = attempt(t), t.Data, saga.ValidText(t.Error)
		}
		args = append(args, seqsOf(ts), statuses, steps, phases, kinds, attempts, data, errs)
	}
	tag, batched, err := l.writer.exec(ctx, id, sql, args)
	batchSize(span, batched)
	if err == nil && tag.RowsAffected() == int64(len(ts)) {
		return nil
	}
	seqs := seqsOf(ts)
	switch {
	case isSeqTaken(err):
		return fmt.Errorf("%w: saga %s has a transition of %v already", saga.ErrLeaseLost, brief.Quote(id), seqs)
	case err != nil:
		return fmt.Errorf("pglog: appending transitions %v to saga %s: %w", seqs, brief.Quote(id), pgschema.Err(ctx, err))
	}
	var holder pgtype.Text
	var taken bool
	err = l.pool.QueryRow(ctx, l.sql.why, id, seqs).Scan(&holder, &taken)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: saga %s", saga.ErrNotFound, brief.Quote(id))
	case err != nil:
		return fmt.Errorf("pglog: appending transitions %v to saga %s: %w", seqs, brief.Quote(id), pgschema.Err(ctx, err))
	case holder.Valid && holder.String == owner && taken:
		return fmt.Errorf("%w: saga %s has a transition of %v already", saga.ErrLeaseLost, brief.Quote(id), seqs)
	case !holder.Valid:
		return fmt.Errorf("%w: saga %s is leased to no one", saga.ErrLeaseLost, brief.Quote(id))
	default:
		return fmt.Errorf("%w: saga %s is not leased to %s", saga.ErrLeaseLost, brief.Quote(id), brief.Quote(owner))
	}
}

// word returns s as a query argument: for the statuses, phases and kinds
// of the saga package, the interface of a constant, which costs no
// allocation, where that of another string costs one.
func word(s string) any {
	switch s {
	case "":
		return ""
	case string(saga.Running):
		return string(saga.Running)
	case string(saga.Compensating):
		return string(saga.Compensating)
	case string(saga.Completed):
		return string(saga.Completed)
	case string(saga.Compensated):
		return string(saga.Compensated)
	case string(saga.NeedsAttention):
		return string(saga.NeedsAttention)
	case string(saga.Resolved):
		return string(saga.Resolved)
	case string(saga.Forward):
		return string(saga.Forward)
	case string(saga.Compensate):
		return string(saga.Compensate)
	case string(saga.Started):
		return string(saga.Started)
	case string(saga.Succeeded):
		return string(saga.Succeeded)
	case string(saga.Failed):
		return string(saga.Failed)
	case string(saga.TimedOut):
		return string(saga.TimedOut)
	case string(saga.Retried):
		return string(saga.Retried)
	}
	return s
}

// ownerArg returns owner as a query argument, reusing the interface made
// for the last owner: an orchestrator writes under one owner, and every
// append of every saga would otherwise allocate it anew.
func (l *Log) ownerArg(owner string) any {
	if b := l.owner.Load(); b != nil && b.owner == owner {
		return b.arg
	}
	b := &boxedOwner{owner: owner, arg: owner}
	l.owner.Store(b)
	return b.arg
}

// boxedOwner is an owner with its interface, made once.
type boxedOwner struct {
	owner string
	arg   any
}

// seqsOf returns the Seqs of ts.
func seqsOf(ts []saga.Transition) []int64 {
	seqs := make([]int64, len(ts))
	for i, t := range ts {
		seqs[i] = t.Seq
	}
	return seqs
}

// attempt returns t's Attempt as the integer column stores it.
func attempt(t saga.Transition) int32 { return int32(min(max(t.Attempt, 0), 1<<31-1)) }

// isSeqTaken reports whether err is the violation of the transitions'
// primary key.
func isSeqTaken(err error) bool { return isViolation(err, transitionsKey) }

// isViolation reports whether err is the violation of the unique
// constraint called key.
func isViolation(err error, key string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == key
}

// Renew implements [saga.Log.Renew] with one statement. The leases run
// from the database's clock. It returns lost ids in the order of ids.
func (l *Log) Renew(ctx context.Context, owner string, lease time.Duration, ids []string) (lost []string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	start := time.Now()
	rows, err := l.pool.Query(ctx, l.sql.renew, owner, lease.Microseconds(), ids)
	if err == nil {
		lost, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	// An orchestrator renews every lease/3 on no one's behalf: a renewal
	// that lost nothing has a span only under a caller's span.
	l.tel.Finish(ctx, opRenew, start, err, len(lost), len(lost) > 0 || err != nil || hasSpan(ctx))
	if err != nil {
		return nil, fmt.Errorf("pglog: renewing %d leases of %s: %w", len(ids), brief.Quote(owner), pgschema.Err(ctx, err))
	}
	return lost, nil
}

// Claim implements [saga.Log.Claim] with one UPDATE whose subquery picks
// the oldest claimable sagas with FOR UPDATE SKIP LOCKED: sagas that a
// concurrent claim, append or renewal has locked are skipped, not waited
// for, so a claim may return fewer than limit sagas while others are
// claimable. A limit below 1 or no names return nothing without a query.
func (l *Log) Claim(ctx context.Context, owner string, names []string, lease time.Duration, limit int) (recs []saga.Record, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 || len(names) == 0 {
		return nil, nil
	}
	start := time.Now()
	rows, err := l.pool.Query(ctx, l.sql.claim, owner, lease.Microseconds(), names, limit)
	if err == nil {
		recs, err = pgx.CollectRows(rows, scanRecord)
	}
	// An orchestrator claims at every recovery tick on no one's behalf: a
	// claim that took nothing has a span only under a caller's span.
	l.tel.Finish(ctx, opClaim, start, err, len(recs), len(recs) > 0 || err != nil || hasSpan(ctx))
	if err != nil {
		return nil, fmt.Errorf("pglog: claiming sagas for %s: %w", brief.Quote(owner), pgschema.Err(ctx, err))
	}
	// RETURNING follows no order.
	slices.SortFunc(recs, func(a, b saga.Record) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return recs, nil
}

// hasSpan reports whether ctx carries a span: the caller's work, which the
// log's spans belong under.
func hasSpan(ctx context.Context) bool { return trace.SpanContextFromContext(ctx).IsValid() }

func scanRecord(row pgx.CollectableRow) (saga.Record, error) {
	var r saga.Record
	var status string
	var trace []byte
	if err := row.Scan(&r.ID, &r.Name, &r.Version, &status, &r.Data, &trace, &r.CreatedAt); err != nil {
		return saga.Record{}, err
	}
	r.Status = saga.Status(status)
	var err error
	r.Trace, err = decodeTrace(trace)
	return r, err
}

// Release implements [saga.Log.Release] with one UPDATE. Releasing a
// lease that owner does not hold, or of a saga that does not exist, does
// nothing and is no error.
func (l *Log) Release(ctx context.Context, id, owner string) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, span, start := l.tel.start(ctx, opRelease, id)
	defer func() { l.tel.End(ctx, span, opRelease, start, err) }()
	if _, err := l.pool.Exec(ctx, l.sql.release, id, owner); err != nil {
		return fmt.Errorf("pglog: releasing saga %s for %s: %w", brief.Quote(id), brief.Quote(owner), pgschema.Err(ctx, err))
	}
	return nil
}

// Reopen implements [saga.Reopener.Reopen] with one UPDATE, which matches
// only a saga in status needs_attention that no other owner holds an
// unexpired lease on (the lease runs from the database's clock); only
// when it matches nothing does a second query tell a missing saga
// (ErrNotFound) from one in another status or leased (ErrLeaseLost).
func (l *Log) Reopen(ctx context.Context, id, owner string, lease time.Duration) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, span, start := l.tel.start(ctx, opReopen, id)
	defer func() { l.tel.End(ctx, span, opReopen, start, err) }()
	tag, err := l.pool.Exec(ctx, l.sql.reopen, id, owner, lease.Microseconds())
	switch {
	case err != nil:
		return fmt.Errorf("pglog: reopening saga %s for %s: %w", brief.Quote(id), brief.Quote(owner), pgschema.Err(ctx, err))
	case tag.RowsAffected() == 1:
		return nil
	}
	var status string
	var holder pgtype.Text
	err = l.pool.QueryRow(ctx, l.sql.reopenWhy, id).Scan(&status, &holder)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: saga %s", saga.ErrNotFound, brief.Quote(id))
	case err != nil:
		return fmt.Errorf("pglog: reopening saga %s for %s: %w", brief.Quote(id), brief.Quote(owner), pgschema.Err(ctx, err))
	case saga.Status(status) != saga.NeedsAttention:
		return fmt.Errorf("%w: saga %s is %s, not %s", saga.ErrLeaseLost, brief.Quote(id), brief.Quote(status), saga.NeedsAttention)
	default:
		return fmt.Errorf("%w: saga %s is leased to %s", saga.ErrLeaseLost, brief.Quote(id), brief.Quote(holder.String))
	}
}

// Load implements [saga.Log.Load] with one query, so the record and the
// transitions come from one snapshot.
func (l *Log) Load(ctx context.Context, id string) (rec saga.Record, ts []saga.Transition, err error) {
	if err := ctx.Err(); err != nil {
		return saga.Record{}, nil, err
	}
	ctx, span, start := l.tel.start(ctx, opLoad, id)
	defer func() { l.tel.End(ctx, span, opLoad, start, err) }()
	rec, ts, found, err := l.load(ctx, id)
	switch {
	case err != nil:
		return saga.Record{}, nil, fmt.Errorf("pglog: loading saga %s: %w", brief.Quote(id), pgschema.Err(ctx, err))
	case !found:
		return saga.Record{}, nil, fmt.Errorf("%w: saga %s", saga.ErrNotFound, brief.Quote(id))
	}
	l.tel.SetReturnedRows(span, len(ts))
	return rec, ts, nil
}

func (l *Log) load(ctx context.Context, id string) (rec saga.Record, ts []saga.Transition, found bool, err error) {
	rows, err := l.pool.Query(ctx, l.sql.load, id)
	if err != nil {
		return rec, nil, false, err
	}
	defer rows.Close()
	rec.ID = id
	var (
		status        string
		trace, data   []byte
		seq           pgtype.Int8
		attempt       pgtype.Int4
		tStatus, step pgtype.Text
		phase, kind   pgtype.Text
		tErr          pgtype.Text
		at            pgtype.Timestamptz
		tData         []byte
	)
	for rows.Next() {
		if err := rows.Scan(&rec.Name, &rec.Version, &status, &data, &trace, &rec.CreatedAt,
			&seq, &tStatus, &step, &phase, &kind, &attempt, &tData, &tErr, &at); err != nil {
			return rec, nil, false, err
		}
		if !found {
			found = true
			rec.Status = saga.Status(status)
			rec.Data = data
			if rec.Trace, err = decodeTrace(trace); err != nil {
				return rec, nil, false, err
			}
		}
		if !seq.Valid { // no transitions
			continue
		}
		ts = append(ts, saga.Transition{
			Seq:     seq.Int64,
			Status:  saga.Status(tStatus.String),
			Step:    step.String,
			Phase:   saga.Phase(phase.String),
			Kind:    saga.Kind(kind.String),
			Attempt: int(attempt.Int32),
			Data:    tData,
			Error:   tErr.String,
			At:      at.Time,
		})
	}
	return rec, ts, found, rows.Err()
}

// encodeTrace returns the JSON of a trace context, or NULL for none, with
// its keys and values through saga.ValidText: jsonb refuses a NUL ("\u0000").
// It is text, not []byte, which the simple protocol (PgBouncer) would
// send as a bytea literal.
func encodeTrace(trace map[string]string) (pgtype.Text, error) {
	if len(trace) == 0 {
		return pgtype.Text{}, nil
	}
	valid := trace
	for k, v := range trace {
		if saga.ValidText(k) != k || saga.ValidText(v) != v {
			valid = make(map[string]string, len(trace))
			for k, v := range trace {
				valid[saga.ValidText(k)] = saga.ValidText(v)
			}
			break
		}
	}
	b, err := json.Marshal(valid)
	return pgtype.Text{String: string(b), Valid: true}, err
}

func decodeTrace(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding the trace context %s: %w", brief.Quote(string(b)), err)
	}
	return m, nil
}
