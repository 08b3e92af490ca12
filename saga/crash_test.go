package saga_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// The crash tests run sagas in a child process (this test binary, with
// the environment variables below), kill it with SIGKILL at a chosen
// point, and recover the sagas with a fresh orchestrator on the same
// PostgreSQL schema. They check the effects the steps left in tables, not
// the log: each step is applied exactly once, and each compensation once
// for exactly the steps that may have taken effect.
const (
	envCrashRole   = "SAGA_CRASH_ROLE"
	envCrashURL    = "SAGA_CRASH_URL"
	envCrashSchema = "SAGA_CRASH_SCHEMA"
	envCrashStep   = "SAGA_CRASH_STEP"
	envCrashPhase  = "SAGA_CRASH_PHASE"
	envCrashPoint  = "SAGA_CRASH_POINT"
	envCrashFail   = "SAGA_CRASH_FAIL"
	envCrashSagas  = "SAGA_CRASH_SAGAS"
	// midPoint is the point inside the action or compensation itself,
	// after its effect.
	midPoint = "mid"
)

// crashShop is the data of the crash tests' saga.
type crashShop struct {
	// FailShip makes the ship step fail for good, so that the saga
	// compensates.
	FailShip bool
}

// crashDefinition is the saga of the crash tests: pay (idempotent),
// reserve (not idempotent: its effect is a plain insert that would count
// twice if it ran twice) and ship (idempotent). Payments, refunds,
// shipments and releases are keyed by the idempotency key, as a remote
// service would; reservations are not. atMid, if set, runs inside the
// action or compensation of each step after its effect; around, if set,
// runs before each and returns what to run after.
func crashDefinition(pool *pgxpool.Pool, schema string, atMid func(step string, phase saga.Phase), around func(ctx context.Context) (after func())) *saga.Definition[crashShop] {
	q := pgx.Identifier{schema}.Sanitize()
	if around == nil {
		around = func(context.Context) func() { return func() {} }
	}
	keyed := func(table string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			defer around(ctx)()
			info, _ := saga.StepFromContext(ctx)
			if _, err := pool.Exec(ctx, `INSERT INTO `+q+`.`+table+` (key, saga_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
				info.IdempotencyKey(), info.SagaID); err != nil {
				return err
			}
			if atMid != nil {
				atMid(info.Step, info.Phase)
			}
			return nil
		}
	}
	plain := func(ctx context.Context) error {
		defer around(ctx)()
		info, _ := saga.StepFromContext(ctx)
		if _, err := pool.Exec(ctx, `INSERT INTO `+q+`.reservations (saga_id) VALUES ($1)`, info.SagaID); err != nil {
			return err
		}
		if atMid != nil {
			atMid(info.Step, info.Phase)
		}
		return nil
	}
	act := func(f func(context.Context) error) func(context.Context, crashShop) (func(*crashShop), error) {
		return func(ctx context.Context, _ crashShop) (func(*crashShop), error) { return nil, f(ctx) }
	}
	comp := func(f func(context.Context) error) func(context.Context, crashShop) error {
		return func(ctx context.Context, _ crashShop) error { return f(ctx) }
	}
	fast := retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(retry.Constant(10*time.Millisecond)))
	ship := keyed("shipments")
	def, err := saga.Define("shop", 1,
		saga.Step[crashShop]{Name: "pay", Idempotent: true, Retry: fast, Action: act(keyed("payments")), Compensate: comp(keyed("refunds"))},
		saga.Step[crashShop]{Name: "reserve", Retry: fast, Action: act(plain), Compensate: comp(keyed("releases"))},
		saga.Step[crashShop]{Name: "ship", Idempotent: true, Retry: fast, Compensate: comp(keyed("recalls")),
			Action: func(ctx context.Context, s crashShop) (func(*crashShop), error) {
				if s.FailShip {
					return nil, retry.Permanent(errors.New("no courier"))
				}
				return nil, ship(ctx)
			}},
	)
	if err != nil {
		panic(err)
	}
	return def
}

// TestCrashChild is not a test: it is the child process of the crash
// tests, selected by SAGA_CRASH_ROLE. It starts sagas and, at the step,
// phase and point the parent chose, prints testenv.CrashMarker and waits to be
// killed.
func TestCrashChild(t *testing.T) {
	if os.Getenv(envCrashRole) != "run" {
		t.Skip("the child process of the crash tests")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(envCrashURL))
	require.NoError(t, err)
	schema := os.Getenv(envCrashSchema)
	crashStep, crashPhase, crashPoint := os.Getenv(envCrashStep), saga.Phase(os.Getenv(envCrashPhase)), os.Getenv(envCrashPoint)
	// The crash waits for every saga to be in the log, so that the
	// parent knows how many there are to recover.
	var once sync.Once
	started := make(chan struct{})
	stop := func() {
		<-started
		once.Do(func() { fmt.Println(testenv.CrashMarker) })
		select {} // until killed
	}
	def := crashDefinition(pool, schema, func(step string, phase saga.Phase) {
		if crashPoint == midPoint && step == crashStep && phase == crashPhase {
			stop()
		}
	}, nil)
	log, err := pglog.New(pool, pglog.WithSchema(schema))
	require.NoError(t, err)
	o, err := saga.NewOrchestrator(log, saga.WithOwner("child"), saga.WithLease(time.Second))
	require.NoError(t, err)
	saga.SetHook(o, func(p saga.HookPoint, step string, phase saga.Phase) {
		if string(p) == crashPoint && step == crashStep && phase == crashPhase {
			stop()
		}
	})
	n := 1
	if s := os.Getenv(envCrashSagas); s != "" {
		_, err := fmt.Sscan(s, &n)
		require.NoError(t, err)
	}
	var ids []string
	for i := range n {
		id, err := o.Start(ctx, def, crashShop{FailShip: os.Getenv(envCrashFail) == "1"}, saga.WithID(fmt.Sprintf("s-%d", i)))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	close(started)
	for _, id := range ids {
		st, err := o.Wait(ctx, id)
		t.Logf("saga %s ended %s (%v) before the crash point", id, st, err)
	}
	t.Fatal("the crash point was never reached")
}

// crashCase is one place to kill the child.
type crashCase struct {
	step  string
	phase saga.Phase
	point string
	fail  bool // the saga fails at ship and compensates
}

func crashCases() []crashCase {
	points := []string{string(saga.HookBeforeStart), string(saga.HookAfterStart), midPoint,
		string(saga.HookAfterAction), string(saga.HookAfterResult)}
	var cases []crashCase
	for _, step := range []string{"pay", "reserve", "ship"} {
		for _, p := range points {
			// The Started transition of a step after the first is written
			// with the success of the step before it: there is no point
			// between the two, only after-outcome of the step before.
			if step != "pay" && p == string(saga.HookBeforeStart) {
				continue
			}
			cases = append(cases, crashCase{step, saga.Forward, p, false})
		}
	}
	for _, step := range []string{"reserve", "pay"} {
		for _, p := range points {
			cases = append(cases, crashCase{step, saga.Compensate, p, true})
		}
	}
	return cases
}

// TestCrashRecovery kills the child at every boundary of every step and
// compensation (and inside them, after their effect), then recovers.
func TestCrashRecovery(t *testing.T) {
	url := testenv.PostgresURL(t)
	for _, c := range crashCases() {
		t.Run(fmt.Sprintf("%s/%s/%s", c.phase, c.step, c.point), func(t *testing.T) {
			t.Parallel()
			pool, schema := crashSchema(t)
			runChildUntilCrash(t, url, schema, c, 1)

			def := crashDefinition(pool, schema, nil, nil)
			log, err := pglog.New(pool, pglog.WithSchema(schema))
			require.NoError(t, err)
			o := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithOwner("recoverer"))
			ctx := ctxWithin(t, 30*time.Second)
			// A crash after the last step's outcome, written with the
			// saga's completion, leaves nothing to recover.
			rec, _, err := log.Load(ctx, "s-0")
			require.NoError(t, err)
			if !rec.Status.Final() {
				recoverAll(t, ctx, o, 1)
			}
			st, err := o.Wait(ctx, "s-0")
			require.Equal(t, wantStatus(c), st, "status after recovery (%v)", err)

			e := effects(t, pool, schema)
			want := wantEffects(c, st)
			assert.Equal(t, want, e, "effects after recovery (status %s)", st)
		})
	}
}

// wantEffects is what the tables must hold after recovery: each effect
// once, and each compensation once for exactly the steps that may have
// taken effect.
func wantEffects(c crashCase, st saga.Status) map[string]int {
	if st == saga.Completed {
		return map[string]int{"payments": 1, "reservations": 1, "shipments": 1}
	}
	// Compensated. A compensation runs for every step whose action took
	// effect or may have (reserve, interrupted, is not idempotent).
	want := map[string]int{"payments": 1, "refunds": 1, "releases": 1}
	reserved := !(c.phase == saga.Forward && (c.step == "reserve" && c.point == string(saga.HookAfterStart) ||
		c.step == "pay" && c.point == string(saga.HookAfterResult)))
	if reserved {
		want["reservations"] = 1
	}
	return want
}

// wantStatus is how the saga must end: an interrupted attempt of reserve,
// which is not idempotent, has an unknown outcome and is compensated;
// interrupted idempotent steps run again; a saga that was compensating
// goes on compensating.
//
// The Started transition of reserve is written with pay's success, so a
// crash right after pay's outcome leaves reserve as interrupted as one
// after its own Started (the window between the write and the call is as
// short in both).
func wantStatus(c crashCase) saga.Status {
	interrupted := c.point == string(saga.HookAfterStart) || c.point == midPoint || c.point == string(saga.HookAfterAction)
	if c.fail || (c.phase == saga.Forward && c.step == "reserve" && interrupted) ||
		(c.phase == saga.Forward && c.step == "pay" && c.point == string(saga.HookAfterResult)) {
		return saga.Compensated
	}
	return saga.Completed
}

// Two orchestrators recovering one crashed process's sagas at once never
// run a saga concurrently, and together recover each exactly once.
func TestCrashTwoRecoverers(t *testing.T) {
	url := testenv.PostgresURL(t)
	pool, schema := crashSchema(t)
	const sagas = 20
	// The child dies inside reserve of the first saga to get there; the
	// others are wherever they were.
	runChildUntilCrash(t, url, schema, crashCase{"reserve", saga.Forward, midPoint, false}, sagas)

	q := pgx.Identifier{schema}.Sanitize()
	ctx := ctxWithin(t, 60*time.Second)
	_, err := pool.Exec(ctx, `CREATE TABLE `+q+`.running (saga_id text PRIMARY KEY)`)
	require.NoError(t, err)
	// Each recovered attempt holds a marker row of its saga while it
	// runs: a second concurrent run of one saga would violate the
	// primary key.
	var overlaps sync.Map
	marked := crashDefinition(pool, schema, nil, func(ctx context.Context) func() {
		info, _ := saga.StepFromContext(ctx)
		if _, err := pool.Exec(ctx, `INSERT INTO `+q+`.running (saga_id) VALUES ($1)`, info.SagaID); err != nil {
			overlaps.Store(info.SagaID, err.Error())
			return func() {}
		}
		time.Sleep(5 * time.Millisecond) // widen the window a concurrent run would hit
		return func() {
			_, _ = pool.Exec(context.WithoutCancel(ctx), `DELETE FROM `+q+`.running WHERE saga_id = $1`, info.SagaID)
		}
	})

	var total int
	var mu sync.Mutex
	var wg sync.WaitGroup
	var orchs []*saga.Orchestrator
	for i := range 2 {
		l, err := pglog.New(pool, pglog.WithSchema(schema))
		require.NoError(t, err)
		orchs = append(orchs, newOrchestrator(t, l, saga.WithDefinitions(marked), saga.WithOwner(fmt.Sprintf("recoverer-%d", i))))
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, o := range orchs {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				n, err := o.Recover(ctx)
				assert.NoError(t, err)
				mu.Lock()
				total += n
				done := total >= sagas
				mu.Unlock()
				if done {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	require.Equal(t, sagas, total, "each saga recovered by exactly one orchestrator")
	for i := range sagas {
		// Every saga was inside or past reserve, which is not
		// idempotent: the interrupted ones compensate, the others
		// complete.
		st, err := orchs[0].Wait(ctx, fmt.Sprintf("s-%d", i))
		require.True(t, st == saga.Completed || st == saga.Compensated, "saga s-%d: %s (%v)", i, st, err)
	}
	overlaps.Range(func(k, v any) bool {
		t.Errorf("saga %v ran in two orchestrators at once: %v", k, v)
		return true
	})
	var reservations, dup int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(*) - count(DISTINCT saga_id) FROM `+q+`.reservations`).Scan(&reservations, &dup))
	assert.Zero(t, dup, "reserve ran twice for a saga")
}

// crashSchema creates a schema of the test's own with the saga log and the
// effect tables, dropped when the test ends.
func crashSchema(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	pool := testenv.PostgresPool(t, 0)
	schema := testenv.Schema(t, "saga_crash_")
	ctx := ctxWithin(t, 10*time.Second)
	log, err := pglog.New(pool, pglog.WithSchema(schema))
	require.NoError(t, err)
	require.NoError(t, log.Migrate(ctx))
	q := pgx.Identifier{schema}.Sanitize()
	for _, table := range []string{"payments", "refunds", "shipments", "recalls", "releases"} {
		_, err := pool.Exec(ctx, `CREATE TABLE `+q+`.`+table+` (key text PRIMARY KEY, saga_id text NOT NULL)`)
		require.NoError(t, err)
	}
	_, err = pool.Exec(ctx, `CREATE TABLE `+q+`.reservations (saga_id text NOT NULL)`)
	require.NoError(t, err)
	return pool, schema
}

// effects counts the rows of each effect table, leaving out empty ones.
func effects(t *testing.T, pool *pgxpool.Pool, schema string) map[string]int {
	t.Helper()
	q := pgx.Identifier{schema}.Sanitize()
	out := map[string]int{}
	for _, table := range []string{"payments", "refunds", "reservations", "releases", "shipments", "recalls"} {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM `+q+`.`+table).Scan(&n))
		if n > 0 {
			out[table] = n
		}
	}
	return out
}

// runChildUntilCrash starts the child process, waits until it reports
// that it is at its crash point, and kills it with SIGKILL.
func runChildUntilCrash(t *testing.T, url, schema string, c crashCase, sagas int) {
	t.Helper()
	fail := "0"
	if c.fail {
		fail = "1"
	}
	testenv.KillAtCrashPoint(t, "TestCrashChild", []string{envCrashRole + "=run", envCrashURL + "=" + url,
		envCrashSchema + "=" + schema, envCrashStep + "=" + c.step, envCrashPhase + "=" + string(c.phase),
		envCrashPoint + "=" + c.point, envCrashFail + "=" + fail, fmt.Sprintf("%s=%d", envCrashSagas, sagas)}, 20*time.Second)
}

// recoverAll calls Recover until it has resumed n sagas: the dead child's
// leases must expire first.
func recoverAll(t *testing.T, ctx context.Context, o *saga.Orchestrator, n int) {
	t.Helper()
	total := 0
	for total < n {
		got, err := o.Recover(ctx)
		require.NoError(t, err)
		total += got
		if total < n {
			select {
			case <-ctx.Done():
				t.Fatalf("recovered %d of %d sagas: %v", total, n, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}
