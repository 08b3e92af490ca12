package pglog_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// benchWorkers is how many goroutines run sagas at once in
// BenchmarkSagaThroughput, and how many connections each pool has.
const benchWorkers = 8

// rowsPerSaga is how many records a saga of three steps writes to the
// log when every step succeeds at once: the saga, a Started and a
// Succeeded transition per step, and the final status.
const rowsPerSaga = 1 + 3*2 + 1

// callsPerSaga is how many writes (round trips) carry them: Create, the
// first step's Started, then one Append per step holding its Succeeded
// with the next step's Started, or with the final status for the last.
// TestSagaWrites checks it.
const callsPerSaga = 1 + 1 + 3

// benchOrder is the data of the benchmark's saga.
type benchOrder struct {
	ID       string
	Customer string
	Cents    int64
}

func benchDefinition(t testing.TB) *saga.Definition[benchOrder] {
	t.Helper()
	noop := func(context.Context, benchOrder) (func(*benchOrder), error) { return nil, nil }
	undo := func(context.Context, benchOrder) error { return nil }
	def, err := saga.Define("bench", 1,
		saga.Step[benchOrder]{Name: "pay", Action: noop, Compensate: undo},
		saga.Step[benchOrder]{Name: "reserve", Action: noop, Compensate: undo},
		saga.Step[benchOrder]{Name: "ship", Action: noop, Compensate: undo},
	)
	require.NoError(t, err)
	return def
}

// TestSagaWrites checks the number of writes a saga of three no-op steps
// makes to the log, which the raw baseline of BenchmarkSagaThroughput
// repeats: one span per call of the log.
func TestSagaWrites(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	l, _, _ := newLog(t, 2, pglog.WithTracerProvider(tp))
	o, err := saga.NewOrchestrator(l)
	require.NoError(t, err)
	defer func() { require.NoError(t, o.Close(context.Background())) }()
	ctx := testenv.Context(t, 10*time.Second)
	id, err := o.Start(ctx, benchDefinition(t), benchOrder{ID: "order-1", Customer: "Ada", Cents: 6400})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, saga.Completed, st)

	calls := map[string]int{}
	total := 0
	for _, s := range rec.Ended() {
		op, _, _ := strings.Cut(s.Name(), " ")
		if op == "migrate" {
			continue
		}
		calls[op]++
		total++
	}
	require.Equal(t, map[string]int{"create": 1, "append": callsPerSaga - 1}, calls, "calls of the log per saga")
	require.Equal(t, callsPerSaga, total)
	_, ts, err := l.Load(ctx, id)
	require.NoError(t, err)
	require.Len(t, ts, rowsPerSaga-1, "transitions per saga")
}

// BenchmarkSagaThroughput measures sagas per second on PostgreSQL: sagas
// of three no-op steps, started and waited for by benchWorkers goroutines
// at once on one orchestrator, against raw pgx baselines that write the
// same records without an orchestrator: for each "saga", a row like the
// saga's into a sagas table and seven rows like its transitions into a
// transitions table, identical to the log's (version 2: the transitions
// have no foreign key, whose check took a third of an append's time in
// the server; the log keeps them consistent by its row locks and
// triggers). "raw-pgx" writes each record
// with its own autocommitted INSERT (8 round trips), as a log that writes
// every transition on its own would; "raw-pgx-batched" groups them into
// the log's 5 writes (multi-row INSERTs), to show what the orchestrator
// and the log's lease checks cost on top. Both skip what the log does
// besides (the lease check and status update in each append, the
// orchestrator's goroutines and encoding). "pglog-sql" sends the log's
// own 5 statements from the same loop, without an orchestrator, to tell
// what the log's SQL costs from what the orchestrator does (each
// statement on its own: the log's group commit is not in it). The log
// groups the writes of sagas that run at once into batches
// ([pglog.WithGroupCommit]); "raw-pgx-grouped" groups the baseline's
// writes across sagas too, benchWorkers sagas in step with each of their
// writes one batch for them all, as a bound on what grouping could reach.
// All use pools of benchWorkers connections and the default (no-op)
// telemetry, and report sagas/s.
func BenchmarkSagaThroughput(b *testing.B) {
	b.Run("raw-pgx-batched", func(b *testing.B) {
		bl := newBaseline(b)
		ctx := context.Background()
		var ids atomic.Int64
		parallel(b, bl.pool, func() error {
			for _, w := range bl.writes(fmt.Sprintf("raw-%d", ids.Add(1))) {
				if _, err := bl.pool.Exec(ctx, w.sql, w.args...); err != nil {
					return err
				}
			}
			return nil
		})
	})

	// The same writes as raw-pgx-batched, grouped across sagas as the
	// log's group commit groups them: benchWorkers sagas run in step by
	// one goroutine, each of their 5 writes in one batch (one round trip
	// and one transaction) for them all. What group commit could reach
	// with no orchestrator and no waiting for a batch to form.
	b.Run("raw-pgx-grouped", func(b *testing.B) {
		bl := newBaseline(b)
		ctx := context.Background()
		var n atomic.Int64
		var sagas [benchWorkers][5]baselineWrite
		inStep(b, bl.pool, benchWorkers, func() error {
			for i := range sagas {
				sagas[i] = bl.writes(fmt.Sprintf("grouped-%d", n.Add(1)))
			}
			for k := range 5 {
				batch := &pgx.Batch{}
				for i := range sagas {
					batch.Queue(sagas[i][k].sql, sagas[i][k].args...)
				}
				if err := bl.pool.SendBatch(ctx, batch).Close(); err != nil {
					return err
				}
			}
			return nil
		})
	})

	b.Run("raw-pgx", func(b *testing.B) {
		bl := newBaseline(b)
		pool, insTransition := bl.pool, bl.one
		ctx := context.Background()
		var ids atomic.Int64
		parallel(b, pool, func() error {
			id := fmt.Sprintf("raw-%d", ids.Add(1))
			if _, err := pool.Exec(ctx, bl.saga, id, "bench", 1, benchData, "{}", "bench-owner", benchLease); err != nil {
				return err
			}
			seq := int64(0)
			for _, step := range []string{"pay", "reserve", "ship"} {
				for _, kind := range []string{"started", "succeeded"} {
					seq++
					if _, err := pool.Exec(ctx, insTransition, id, seq, "", step, "forward", kind, 1, nil, ""); err != nil {
						return err
					}
				}
			}
			seq++
			_, err := pool.Exec(ctx, insTransition, id, seq, "completed", "", "", "", 0, nil, "")
			return err
		})
	})

	// The log's own statements, as the orchestrator sends them for a
	// saga, from a loop like raw-pgx-batched's: what the log's SQL costs
	// (the lease check and row lock of each append, the final status
	// update) apart from the orchestrator's.
	b.Run("pglog-sql", func(b *testing.B) {
		l, pool, _ := newLog(b, benchWorkers)
		ctx := context.Background()
		create, start := pglog.CreateSQL(l), pglog.AppendSQL(l, false, 1)
		next, last := pglog.AppendSQL(l, false, 2), pglog.AppendSQL(l, true, 2)
		const owner = "bench-owner"
		var ids atomic.Int64
		parallel(b, pool, func() error {
			id := fmt.Sprintf("sql-%d", ids.Add(1))
			if _, err := pool.Exec(ctx, create, id, benchLease, "bench", 1, benchData, nil, owner); err != nil {
				return err
			}
			if _, err := pool.Exec(ctx, start, id, owner, 1, "", "pay", "forward", "started", 1, nil, ""); err != nil {
				return err
			}
			steps := []string{"pay", "reserve", "ship"}
			for i, step := range steps {
				seq := int64(2 + 2*i)
				sql, args := next, []any{id, owner}
				nextStatus, nextStep, nextPhase, nextKind, nextAttempt := "", "", "forward", "started", 1
				if i+1 < len(steps) {
					nextStep = steps[i+1]
				} else {
					sql, args = last, append(args, "completed", true)
					nextStatus, nextPhase, nextKind, nextAttempt = "completed", "", "", 0
				}
				args = append(args, seq, "", step, "forward", "succeeded", 1, nil, "",
					seq+1, nextStatus, nextStep, nextPhase, nextKind, nextAttempt, nil, "")
				tag, err := pool.Exec(ctx, sql, args...)
				if err != nil {
					return err
				}
				if tag.RowsAffected() != 2 {
					return fmt.Errorf("append of saga %s wrote %d transitions; want 2", id, tag.RowsAffected())
				}
			}
			return nil
		})
	})

	b.Run("pglog", func(b *testing.B) {
		l, pool, _ := newLog(b, benchWorkers)
		def := benchDefinition(b)
		o, err := saga.NewOrchestrator(l)
		require.NoError(b, err)
		defer func() { require.NoError(b, o.Close(context.Background())) }()
		ctx := context.Background()
		parallel(b, pool, func() error {
			id, err := o.Start(ctx, def, benchOrder{ID: "order-1", Customer: "Ada", Cents: 6400})
			if err != nil {
				return err
			}
			st, err := o.Wait(ctx, id)
			if err == nil && st != saga.Completed {
				err = fmt.Errorf("status %s; want completed", st)
			}
			return err
		})
	})
}

// parallel runs saga b.N times from benchWorkers goroutines and reports
// sagas/s, and the CPU time per saga of this process (go-cpu-µs/saga, all
// its goroutines) and, if its processes can be read in /proc (a local
// server), of pool's server processes (pg-cpu-µs/saga): figures that a
// loaded machine changes less than the rate.
func parallel(b *testing.B, pool *pgxpool.Pool, saga func() error) {
	inStep(b, pool, 1, saga)
}

// inStep is parallel for sagas that run k at a time, in step: run runs k
// sagas, from benchWorkers/k goroutines.
func inStep(b *testing.B, pool *pgxpool.Pool, k int, run func() error) {
	b.ReportAllocs()
	pids := backends(b, pool)
	pgStart, pgOK := cpuOf(pids)
	goStart, _ := testenv.ProcessCPU()
	var next, ran atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range benchWorkers / k {
		wg.Go(func() {
			for next.Add(int64(k))-int64(k) < int64(b.N) {
				if err := run(); err != nil {
					b.Error(err)
					return
				}
				ran.Add(int64(k))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	// With k > 1, the last round may run more than b.N sagas.
	n := float64(ran.Load())
	b.ReportMetric(n/b.Elapsed().Seconds(), "sagas/s")
	if goEnd, ok := testenv.ProcessCPU(); ok {
		b.ReportMetric(float64((goEnd-goStart).Microseconds())/n, "go-cpu-µs/saga")
	}
	if pgEnd, ok := cpuOf(pids); ok && pgOK && pool.Stat().TotalConns() == int32(len(pids)) {
		b.ReportMetric(float64((pgEnd-pgStart).Microseconds())/n, "pg-cpu-µs/saga")
	}
}

// backends opens every connection of pool and returns the process ids of
// their server processes.
func backends(b *testing.B, pool *pgxpool.Pool) []int {
	ctx := context.Background()
	conns := make([]*pgxpool.Conn, 0, pool.Config().MaxConns)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	var pids []int
	for range pool.Config().MaxConns {
		c, err := pool.Acquire(ctx)
		require.NoError(b, err)
		conns = append(conns, c)
		pids = append(pids, int(c.Conn().PgConn().PID()))
	}
	return pids
}

// cpuOf returns the CPU time (user and system) that the processes pids
// have used, read from /proc, or false if it cannot be read.
func cpuOf(pids []int) (time.Duration, bool) {
	var ticks int64
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, false
		}
		// The fields after the command (in parentheses): utime and stime
		// are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
		_, rest, ok := bytes.Cut(stat, []byte(") "))
		f := strings.Fields(string(rest))
		if !ok || len(f) < 13 {
			return 0, false
		}
		for _, s := range f[11:13] {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, false
			}
			ticks += n
		}
	}
	return time.Duration(ticks) * (time.Second / 100), true
}

// The saga's data and lease in the raw baselines' writes.
var (
	benchData  = []byte(`{"ID":"order-1","Customer":"Ada","Cents":6400}`)
	benchLease = (30 * time.Second).Microseconds()
)

// baseline is the raw baselines' tables (baselineTables) in a schema of
// their own, with a pool of benchWorkers connections, and their INSERTs:
// of a saga, of a transition, and of two transitions.
type baseline struct {
	pool           *pgxpool.Pool
	saga, one, two string
}

func newBaseline(b *testing.B) *baseline {
	bl := &baseline{pool: testenv.PostgresPool(b, benchWorkers)}
	q := pgx.Identifier{schemaName(b)}.Sanitize()
	_, err := bl.pool.Exec(context.Background(), baselineTables(q))
	require.NoError(b, err)
	bl.saga, bl.one, bl.two = baselineInserts(q)
	return bl
}

// baselineWrite is a statement and its arguments.
type baselineWrite struct {
	sql  string
	args []any
}

// writes returns the 5 writes of saga id, as the orchestrator groups a
// saga's transitions: the saga, the first step's start, then each step's
// success with the next step's start or, for the last, the saga's end.
func (bl *baseline) writes(id string) [5]baselineWrite {
	ws := [5]baselineWrite{
		{bl.saga, []any{id, "bench", 1, benchData, "{}", "bench-owner", benchLease}},
		{bl.one, []any{id, 1, "", "pay", "forward", "started", 1, nil, ""}},
	}
	steps := []string{"pay", "reserve", "ship"}
	for i, step := range steps {
		seq := int64(2 + 2*i)
		nextStatus, nextStep, nextPhase, nextKind, nextAttempt := "completed", "", "", "", 0
		if i+1 < len(steps) {
			nextStatus, nextStep, nextPhase, nextKind, nextAttempt = "", steps[i+1], "forward", "started", 1
		}
		ws[2+i] = baselineWrite{bl.two, []any{id, seq, "", step, "forward", "succeeded", 1, nil, "",
			seq + 1, nextStatus, nextStep, nextPhase, nextKind, nextAttempt, nil, ""}}
	}
	return ws
}

// baselineInserts returns the baselines' INSERTs into the tables of
// baselineTables in the schema quoted q: of a saga, of a transition, and
// of two transitions.
func baselineInserts(q string) (saga, one, two string) {
	return `INSERT INTO ` + q + `.sagas (id, name, version, status, data, trace, owner, lease_until)
VALUES ($1, $2, $3, 'running', $4, $5::jsonb, $6, now() + $7::bigint * interval '1 microsecond')`,
		`INSERT INTO ` + q + `.transitions (saga_id, seq, status, step, phase, kind, attempt, data, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		`INSERT INTO ` + q + `.transitions (saga_id, seq, status, step, phase, kind, attempt, data, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), ($1, $10, $11, $12, $13, $14, $15, $16, $17)`
}

// baselineTables returns the DDL of tables like the log's (version 2 of
// its migrations, without the triggers, which no baseline fires), in the
// schema quoted q. The baselines must write to the same tables as the
// log: with the foreign key version 1 had, they paid a check per
// transition that the log no longer does.
func baselineTables(q string) string {
	return `CREATE SCHEMA ` + q + `;
CREATE TABLE ` + q + `.sagas (
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
CREATE INDEX sagas_claimable ON ` + q + `.sagas (created_at, id) WHERE status IN ('running', 'compensating');
CREATE TABLE ` + q + `.transitions (
	saga_id text NOT NULL,
	seq     bigint NOT NULL,
	status  text NOT NULL,
	step    text NOT NULL,
	phase   text NOT NULL,
	kind    text NOT NULL,
	attempt integer NOT NULL,
	data    bytea,
	error   text NOT NULL,
	at      timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT transitions_pkey PRIMARY KEY (saga_id, seq)
)`
}
