package pglog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// batchTracer records the sizes of the batches a pool sends, and the
// first argument of each write of transitions it sends alone: the saga
// of an append run on its own.
type batchTracer struct {
	mu    sync.Mutex
	sizes []int
	alone []any
}

func (b *batchTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if len(data.Args) > 0 && strings.Contains(data.SQL, "transitions") {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.alone = append(b.alone, data.Args[0])
	}
	return ctx
}
func (b *batchTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (b *batchTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, data.Batch.Len())
	return ctx
}
func (b *batchTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (b *batchTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (b *batchTracer) aloneArgs() []any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]any(nil), b.alone...)
}

func (b *batchTracer) batches() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...)
}

// batchRig is a log whose writer's slots a test can fill: a transaction
// of the rig's holds a saga's row locked, and appends to the saga wait
// for the lock, each on a slot, until unlock.
type batchRig struct {
	t      *testing.T
	l      *pglog.Log
	pool   *pgxpool.Pool
	schema string
	tracer *batchTracer
	held   []pgx.Tx
	wg     sync.WaitGroup
}

func newBatchRig(t *testing.T, opts ...pglog.Option) *batchRig {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	require.NoError(t, err)
	cfg.MaxConns = 8
	r := &batchRig{t: t, tracer: &batchTracer{}, schema: schemaName(t)}
	cfg.ConnConfig.Tracer = r.tracer
	r.pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(r.pool.Close)
	r.l = newLogIn(t, r.pool, r.schema, opts...)
	// No batch or queued write stops waiting while the test sets the
	// scene; the tests of that set a stall of their own.
	pglog.SetStall(r.l, time.Minute, time.Minute)
	require.NoError(t, r.l.Migrate(testenv.Context(t, 10*time.Second)))
	t.Cleanup(r.wg.Wait)
	// Before the wait for the rig's goroutines (cleanups run last first):
	// a failed test leaves them waiting for the rows it locked, or for a
	// write that sleeps (see sleepy), whose transaction would also hold
	// up every other test's logical replication slot while it lasts.
	t.Cleanup(func() {
		for _, tx := range r.held {
			_ = tx.Rollback(context.Background())
		}
		_, _ = r.pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE wait_event = 'PgSleep' AND query LIKE '%' || $1 || '%'`, pgx.Identifier{r.schema}.Sanitize())
	})
	return r
}

// newTracedBatchRig is newBatchRig with a log that records its spans and
// metrics in the providers it returns.
func newTracedBatchRig(t *testing.T) (*batchRig, *telemetrytest.Providers) {
	t.Helper()
	p := telemetrytest.New(t)
	return newBatchRig(t, pglog.WithTracerProvider(p.TracerProvider), pglog.WithMeterProvider(p.MeterProvider)), p
}

// lock holds the row of saga id locked until unlock.
func (r *batchRig) lock(ctx context.Context, id string) {
	r.t.Helper()
	tx, err := r.pool.Begin(ctx)
	require.NoError(r.t, err)
	_, err = tx.Exec(ctx, `SELECT FROM `+pgx.Identifier{r.schema}.Sanitize()+`.sagas WHERE id = $1 FOR UPDATE`, id)
	require.NoError(r.t, err)
	r.held = append(r.held, tx)
}

// lockWaits returns how many of the rig's statements wait for a row lock.
func (r *batchRig) lockWaits(ctx context.Context) int {
	r.t.Helper()
	var waiting int
	require.NoError(r.t, r.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`, pgx.Identifier{r.schema}.Sanitize()).Scan(&waiting))
	return waiting
}

// waitForLockWaits waits until n of the rig's statements wait for a row
// lock.
func (r *batchRig) waitForLockWaits(ctx context.Context, n int) {
	r.t.Helper()
	require.Eventually(r.t, func() bool { return r.lockWaits(ctx) == n },
		10*time.Second, 5*time.Millisecond, "statements waiting for a lock")
}

// fillSlots starts as many appends to a new saga id as the writer has
// slots, each waiting for the row lock that the rig takes, and returns
// their errors' channel.
func (r *batchRig) fillSlots(ctx context.Context, id string) chan error {
	r.t.Helper()
	require.NoError(r.t, r.l.Create(ctx, saga.Record{ID: id, Name: "order"}, "owner", time.Minute))
	r.lock(ctx, id)
	before := r.lockWaits(ctx)
	slots := pglog.Slots(r.l)
	errs := make(chan error, slots)
	for i := range slots {
		r.wg.Go(func() { errs <- r.l.Append(ctx, id, "owner", started(int64(i+1))) })
	}
	r.waitForLockWaits(ctx, before+slots)
	return errs
}

// waitQueued waits until n writes wait for a batch.
func (r *batchRig) waitQueued(n int) {
	r.t.Helper()
	require.Eventually(r.t, func() bool { return pglog.Queued(r.l) == n },
		10*time.Second, time.Millisecond, "writes queued")
}

// sleepy makes a write of transitions to saga "sleepy" take 30s,
// waiting for no lock (which would time out), and returns a function
// that counts the rig's statements sleeping.
func (r *batchRig) sleepy(ctx context.Context) func() int {
	r.t.Helper()
	q := pgx.Identifier{r.schema}.Sanitize()
	_, err := r.pool.Exec(ctx, `CREATE FUNCTION `+q+`.sleepy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.saga_id = 'sleepy' THEN PERFORM pg_sleep(30); END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER sleepy BEFORE INSERT ON `+q+`.transitions FOR EACH ROW EXECUTE FUNCTION `+q+`.sleepy()`)
	require.NoError(r.t, err)
	return func() int {
		var n int
		require.NoError(r.t, r.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event = 'PgSleep' AND query LIKE '%' || $1 || '%'`, q).Scan(&n))
		return n
	}
}

// unlock commits the oldest transaction that lock began.
func (r *batchRig) unlock(ctx context.Context) {
	r.t.Helper()
	require.NoError(r.t, r.held[0].Commit(ctx))
	r.held = r.held[1:]
}

func started(seq int64) saga.Transition {
	return saga.Transition{Seq: seq, Step: "pay", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}
}

// batchSizes returns, by saga, the pglog.batch_size of each of its
// writes' spans that has one.
func batchSizes(p *telemetrytest.Providers, schema string) map[string][]int64 {
	sizes := map[string][]int64{}
	for _, name := range []string{"create " + schema + ".sagas", "append " + schema + ".transitions"} {
		for _, span := range p.SpansNamed(name) {
			a := telemetrytest.Attrs(span)
			if v, ok := a[pglog.AttrBatchSize]; ok {
				id := a[saga.AttrID].AsString()
				sizes[id] = append(sizes[id], v.AsInt64())
			}
		}
	}
	return sizes
}

// TestBatchCommitsTogether checks that writes that wait while the slots
// are taken go as one batch, and each commits, and that their spans have
// the batch's size, which the writes that went at once do not have.
func TestBatchCommitsTogether(t *testing.T) {
	r, p := newTracedBatchRig(t)
	ctx := testenv.Context(t, 30*time.Second)
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, r.l.Create(ctx, saga.Record{ID: id, Name: "order"}, "owner", time.Minute))
	}
	slotErrs := r.fillSlots(ctx, "blocker")

	errs := map[string]chan error{}
	for _, id := range []string{"c", "a", "b", "new"} { // a batch sorts its writes by saga
		ch := make(chan error, 1)
		errs[id] = ch
		r.wg.Go(func() {
			if id == "new" {
				ch <- r.l.Create(ctx, saga.Record{ID: id, Name: "order"}, "owner", time.Minute)
				return
			}
			ch <- r.l.Append(ctx, id, "owner", started(1))
		})
	}
	r.waitQueued(len(errs))
	r.unlock(ctx)
	for range pglog.Slots(r.l) {
		require.NoError(t, <-slotErrs)
	}
	for id, ch := range errs {
		require.NoError(t, <-ch, "saga %s", id)
	}
	assert.Contains(t, r.tracer.batches(), 1+len(errs), "one batch of the lock timeout and the queued writes")
	for _, id := range []string{"a", "b", "c"} {
		_, ts, err := r.l.Load(ctx, id)
		require.NoError(t, err)
		require.Len(t, ts, 1, "saga %s", id)
	}
	_, _, err := r.l.Load(ctx, "new")
	require.NoError(t, err)

	want := int64(len(errs))
	assert.Equal(t, map[string][]int64{"a": {want}, "b": {want}, "c": {want}, "new": {want}}, batchSizes(p, r.schema),
		"pglog.batch_size of the writes that went in a batch, by saga; none on those sent at once")
}

// TestBatchFailureRunsEachAlone checks that a write that fails in a batch
// fails alone: the batch's other writes, rolled back with it, run again
// on their own and commit, and each caller gets its own outcome.
func TestBatchFailureRunsEachAlone(t *testing.T) {
	r, p := newTracedBatchRig(t)
	ctx := testenv.Context(t, 30*time.Second)
	for _, id := range []string{"ok", "taken", "other"} {
		require.NoError(t, r.l.Create(ctx, saga.Record{ID: id, Name: "order"}, "owner", time.Minute))
	}
	require.NoError(t, r.l.Append(ctx, "taken", "owner", started(1)))
	slotErrs := r.fillSlots(ctx, "blocker")

	type call struct {
		name string
		run  func() error
		want error
	}
	calls := []call{
		{"append", func() error { return r.l.Append(ctx, "ok", "owner", started(1)) }, nil},
		{"append of a taken seq", func() error { return r.l.Append(ctx, "taken", "owner", started(1)) }, saga.ErrLeaseLost},
		{"append by another owner", func() error { return r.l.Append(ctx, "other", "thief", started(1)) }, saga.ErrLeaseLost},
		{"create of a saga there", func() error {
			return r.l.Create(ctx, saga.Record{ID: "ok", Name: "order"}, "owner", time.Minute)
		}, saga.ErrExists},
		{"create", func() error {
			return r.l.Create(ctx, saga.Record{ID: "new", Name: "order"}, "owner", time.Minute)
		}, nil},
	}
	errs := make([]chan error, len(calls))
	for i, c := range calls {
		errs[i] = make(chan error, 1)
		r.wg.Go(func() { errs[i] <- c.run() })
	}
	r.waitQueued(len(calls))
	r.unlock(ctx)
	for range pglog.Slots(r.l) {
		require.NoError(t, <-slotErrs)
	}
	for i, c := range calls {
		err := <-errs[i]
		if c.want == nil {
			assert.NoError(t, err, c.name)
		} else {
			assert.ErrorIs(t, err, c.want, c.name)
		}
	}
	assert.Contains(t, r.tracer.batches(), 1+len(calls), "one batch of the lock timeout and the queued writes")
	_, ts, err := r.l.Load(ctx, "ok")
	require.NoError(t, err)
	require.Len(t, ts, 1)
	_, ts, err = r.l.Load(ctx, "other")
	require.NoError(t, err)
	require.Empty(t, ts)
	_, _, err = r.l.Load(ctx, "new")
	require.NoError(t, err)
	assert.Empty(t, batchSizes(p, r.schema), "pglog.batch_size of writes that ran again on their own")
}

// TestBatchCancelled checks what a caller that gives up gets: a write
// still queued never runs; one in a batch under way leaves the batch
// running for the others, and the batch is cancelled once every caller
// in it has given up.
func TestBatchCancelled(t *testing.T) {
	r, p := newTracedBatchRig(t)
	ctx := testenv.Context(t, 30*time.Second)
	for _, id := range []string{"queued", "sleepy", "kept"} {
		require.NoError(t, r.l.Create(ctx, saga.Record{ID: id, Name: "order"}, "owner", time.Minute))
	}
	sleeping := r.sleepy(ctx)
	slotErrs := r.fillSlots(ctx, "blocker")

	// A write that gives up in the queue never runs.
	qctx, qcancel := context.WithCancel(ctx)
	qerr := make(chan error, 1)
	r.wg.Go(func() { qerr <- r.l.Append(qctx, "queued", "owner", started(1)) })
	r.waitQueued(1)
	qcancel()
	require.ErrorIs(t, <-qerr, context.Canceled)
	r.waitQueued(0)

	// A batch held up by "sleepy": its caller gives up and the batch goes
	// on for the other; once that one gives up too, the batch is
	// cancelled, and nothing of it commits.
	sctx, scancel := context.WithCancel(ctx)
	kctx, kcancel := context.WithCancel(ctx)
	serr, kerr := make(chan error, 1), make(chan error, 1)
	r.wg.Go(func() { serr <- r.l.Append(sctx, "sleepy", "owner", started(1)) })
	r.wg.Go(func() { kerr <- r.l.Append(kctx, "kept", "owner", started(1)) })
	r.waitQueued(2)
	r.unlock(ctx) // the slots: the queue goes as a batch, held up by "sleepy"
	for range pglog.Slots(r.l) {
		require.NoError(t, <-slotErrs)
	}
	require.Eventually(t, func() bool { return sleeping() == 1 }, 10*time.Second, 5*time.Millisecond)
	scancel()
	require.ErrorIs(t, <-serr, context.Canceled)
	select {
	case err := <-kerr:
		t.Fatalf("the batch ended while a caller waited for it: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	require.Equal(t, 1, sleeping(), "the batch goes on for the caller still waiting")
	kcancel()
	require.ErrorIs(t, <-kerr, context.Canceled)
	require.Eventually(t, func() bool { return sleeping() == 0 }, 10*time.Second, 5*time.Millisecond,
		"the batch is cancelled once no caller waits for it")
	for _, id := range []string{"queued", "sleepy", "kept"} {
		_, ts, err := r.l.Load(ctx, id)
		require.NoError(t, err)
		require.Empty(t, ts, "transitions of saga %s", id)
	}
	assert.Equal(t, map[string][]int64{"sleepy": {2}, "kept": {2}}, batchSizes(p, r.schema),
		"pglog.batch_size: the callers that gave up once their batch was sent went in it; the one that gave up in the queue did not")
}

// TestBatchLockTimeout checks that a batch does not wait long for the row
// of a saga that someone holds: it gives up, its other writes run on
// their own and commit, and the held saga's waits for its row, as a write
// alone would.
func TestBatchLockTimeout(t *testing.T) {
	r := newBatchRig(t)
	pglog.SetStall(r.l, time.Minute, 100*time.Millisecond)
	ctx := testenv.Context(t, 30*time.Second)
	for _, id := range []string{"held", "free"} {
		require.NoError(t, r.l.Create(ctx, saga.Record{ID: id, Name: "order"}, "owner", time.Minute))
	}
	r.lock(ctx, "held")
	slotErrs := r.fillSlots(ctx, "blocker")
	herr, ferr := make(chan error, 1), make(chan error, 1)
	r.wg.Go(func() { herr <- r.l.Append(ctx, "held", "owner", started(1)) })
	r.wg.Go(func() { ferr <- r.l.Append(ctx, "free", "owner", started(1)) })
	r.waitQueued(2)
	r.held[0], r.held[1] = r.held[1], r.held[0]
	r.unlock(ctx) // the slots: the queue goes as a batch, which waits for "held"
	for range pglog.Slots(r.l) {
		require.NoError(t, <-slotErrs)
	}
	require.NoError(t, <-ferr, "the write to the free saga, while the other's row is held")
	select {
	case err := <-herr:
		t.Fatalf("the write to the held saga ended while its row was held: %v", err)
	default:
	}
	r.unlock(ctx) // "held"
	require.NoError(t, <-herr)
	for _, id := range []string{"held", "free"} {
		_, ts, err := r.l.Load(ctx, id)
		require.NoError(t, err)
		require.Len(t, ts, 1, "transitions of saga %s", id)
	}
	assert.Contains(t, r.tracer.batches(), 1+2, "a batch of the lock timeout and the two writes")
}

// TestBatchLocksInIdOrder checks that a batch takes its sagas' row locks
// in the order of their ids, as Renew does, so that the two never
// deadlock.
func TestBatchLocksInIdOrder(t *testing.T) {
	r := newBatchRig(t)
	r.renewAndBatch(testenv.Context(t, 30*time.Second), "a", "b")
}

// renewAndBatch sets the scene of a Renew of sagas held and other, and a
// batch of writes to other and held, while the rig holds the row of
// held: Renew waits for it, and the batch queues behind. If Renew takes
// held first and the batch other (in the order the writes came, or in an
// order of ids that differs from Renew's), the batch holds other while
// waiting for held, which Renew gets next and holds while waiting for
// other: a deadlock, which the batch's lock timeout (or the deadlock
// check, after a second) would end, and the batch's writes would run
// again on their own.
func (r *batchRig) renewAndBatch(ctx context.Context, held, other string) {
	t := r.t
	t.Helper()
	for _, id := range []string{held, other} {
		require.NoError(t, r.l.Create(ctx, saga.Record{ID: id, Name: "order"}, "owner", time.Minute))
	}
	r.lock(ctx, held)
	renewErr := make(chan error, 1)
	r.wg.Go(func() {
		_, err := r.l.Renew(ctx, "owner", time.Minute, []string{held, other})
		renewErr <- err
	})
	r.waitForLockWaits(ctx, 1)
	slotErrs := r.fillSlots(ctx, "blocker")
	errs := make([]chan error, 2)
	for i, id := range []string{other, held} {
		errs[i] = make(chan error, 1)
		r.wg.Go(func() { errs[i] <- r.l.Append(ctx, id, "owner", started(1)) })
	}
	r.waitQueued(2)
	r.held[1], r.held[0] = r.held[0], r.held[1]
	r.unlock(ctx) // the slots: the batch goes, and waits for held behind Renew
	for range pglog.Slots(r.l) {
		require.NoError(t, <-slotErrs)
	}
	r.waitForLockWaits(ctx, 2)
	r.unlock(ctx) // held
	require.NoError(t, <-renewErr)
	for _, ch := range errs {
		require.NoError(t, <-ch)
	}
	assert.Contains(t, r.tracer.batches(), 1+2)
	assert.NotContains(t, r.tracer.aloneArgs(), held, "a write run again on its own")
	assert.NotContains(t, r.tracer.aloneArgs(), other, "a write run again on its own")
}

// TestBatchArgumentsFailAlone checks that a write whose arguments the
// driver cannot encode (a Version beyond the column's integer) fails
// alone in a batch too: the driver finds it before it sends anything, and
// the batch's other writes run on their own. (A second reader's finding:
// they all got its error.)
func TestBatchArgumentsFailAlone(t *testing.T) {
	r := newBatchRig(t)
	ctx := testenv.Context(t, 30*time.Second)
	require.NoError(t, r.l.Create(ctx, saga.Record{ID: "ok", Name: "order"}, "owner", time.Minute))
	slotErrs := r.fillSlots(ctx, "blocker")
	okErr, badErr := make(chan error, 1), make(chan error, 1)
	r.wg.Go(func() { okErr <- r.l.Append(ctx, "ok", "owner", started(1)) })
	r.wg.Go(func() {
		badErr <- r.l.Create(ctx, saga.Record{ID: "bad", Name: "order", Version: 1 << 40}, "owner", time.Minute)
	})
	r.waitQueued(2)
	r.unlock(ctx)
	for range pglog.Slots(r.l) {
		require.NoError(t, <-slotErrs)
	}
	require.Error(t, <-badErr, "the write that cannot be encoded")
	require.NoError(t, <-okErr, "the write in its batch")
	_, ts, err := r.l.Load(ctx, "ok")
	require.NoError(t, err)
	require.Len(t, ts, 1)
}

// TestBatchLockOrderCollation is TestBatchLocksInIdOrder with ids whose
// byte order ("B" before "a") is not their order in the id column's
// collation (en-US: "a" before "B"), as on a database whose default
// collation is en_US.UTF-8. Renew locks in byte order, as a batch does.
// (A second reader's finding: Renew locked in the column's order.)
func TestBatchLockOrderCollation(t *testing.T) {
	r := newBatchRig(t)
	ctx := testenv.Context(t, 30*time.Second)
	q := pgx.Identifier{r.schema}.Sanitize()
	_, err := r.pool.Exec(ctx, `ALTER TABLE `+q+`.sagas ALTER COLUMN id TYPE text COLLATE "en-US-x-icu"`)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42704" { // undefined_object: a server without ICU
		t.Skip("PostgreSQL has no ICU collation en-US-x-icu:", err)
	}
	require.NoError(t, err)
	r.pool.Reset() // the statements prepared before the ALTER
	r.renewAndBatch(ctx, "a", "B")
}

// TestBatchStuckWriteHoldsUpOnce checks that a write that went at once
// and waits for a row lock gives its slot back after the stall, so that
// the writes after it go at once, as before. (A second reader's finding:
// it kept the slot for as long as the row was held, and each write after
// it waited the stall.)
func TestBatchStuckWriteHoldsUpOnce(t *testing.T) {
	r := newBatchRig(t)
	pglog.SetStall(r.l, 100*time.Millisecond, time.Minute)
	ctx := testenv.Context(t, 30*time.Second)
	require.NoError(t, r.l.Create(ctx, saga.Record{ID: "free", Name: "order"}, "owner", time.Minute))
	slotErrs := r.fillSlots(ctx, "held") // appends at once, waiting for the row of "held"
	require.Eventually(t, func() bool { return pglog.Busy(r.l) == 0 }, 10*time.Second, time.Millisecond,
		"the slots given back while their writes wait")
	const n = 5
	for i := range n {
		require.NoError(t, r.l.Append(ctx, "free", "owner", started(int64(i+1))))
	}
	r.unlock(ctx)
	for range pglog.Slots(r.l) {
		require.NoError(t, <-slotErrs)
	}
	alone := 0
	for _, arg := range r.tracer.aloneArgs() {
		if arg == "free" {
			alone++
		}
	}
	assert.Equal(t, n, alone, "appends to the free saga that went at once")
	assert.Zero(t, pglog.Busy(r.l), "slots held once every write has ended")
}

// TestGroupCommitOff checks that WithGroupCommit(0) sends every write on
// its own, however many come in at once.
func TestGroupCommitOff(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	require.NoError(t, err)
	cfg.MaxConns = 8
	tracer := &batchTracer{}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	l := newLogIn(t, pool, schemaName(t), pglog.WithGroupCommit(0))
	ctx := testenv.Context(t, 30*time.Second)
	require.NoError(t, l.Migrate(ctx))
	require.Zero(t, pglog.Slots(l))
	before := len(tracer.batches())
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			id := fmt.Sprintf("s%d", i)
			assert.NoError(t, l.Create(ctx, saga.Record{ID: id, Name: "order"}, "owner", time.Minute))
			assert.NoError(t, l.Append(ctx, id, "owner", started(1)))
		})
	}
	wg.Wait()
	assert.Len(t, tracer.batches(), before, "batches sent")
	assert.Len(t, tracer.aloneArgs(), 16, "appends sent on their own")
}
