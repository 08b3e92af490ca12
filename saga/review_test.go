package saga_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// The regression tests of an adversarial review of the saga engine, each
// named after what it protects.

// Recover, called when Close comes while it claims sagas, returns: it
// claimed a full batch, found the orchestrator closed at each resumption,
// released the sagas and claimed the same batch again, for as long as its
// context lasted (at start-up, for ever), after Close had returned.
func TestRecoverStopsWhenTheOrchestratorCloses(t *testing.T) {
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	ctx := ctxWithin(t, 10*time.Second)
	log := &faultLog{Log: &saga.MemoryLog{}}
	const sagas = 150 // more than one claim's batch
	for i := range sagas {
		require.NoError(t, log.Create(ctx, saga.Record{ID: fmt.Sprintf("s-%03d", i), Name: "order", Version: 1, Data: []byte(`{}`)}, "", time.Minute))
	}
	o, err := saga.NewOrchestrator(log, saga.WithDefinitions(def), saga.WithRecoverInterval(0))
	require.NoError(t, err)
	log.beforeClaim = func() {
		log.beforeClaim = nil
		require.NoError(t, o.Close(ctx)) // SIGTERM during start-up
	}
	recoverCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	n, err := o.Recover(recoverCtx)
	// (The error is not printed: it joined an error per saga claimed.)
	require.LessOrEqual(t, log.claims.Load(), int32(1), "claims after Close")
	assert.True(t, errors.Is(err, saga.ErrClosed), "Recover's error matches ErrClosed")
	assert.Zero(t, n)
	assert.Empty(t, j.list())

	// Every saga claimed was released: another orchestrator resumes them
	// all at once.
	other := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithRecoverInterval(0))
	n, err = other.Recover(ctx)
	require.NoError(t, err)
	assert.Equal(t, sagas, n)
}

// Two operators' calls of Retry on one orchestrator at once: one retries
// the saga, the other is told it no longer needs attention, and the saga
// stays leased to its run. Reopen let the second call through (the same
// owner), and that call, finding the saga compensating, released the
// lease of the run the first had started: another orchestrator's
// recovery took the saga over and refunded the charge a second time
// while the first refund was under way.
func TestConcurrentRetriesInOneOrchestrator(t *testing.T) {
	var j journal
	var fixed atomic.Bool
	refunding, refunded := make(chan struct{}), make(chan struct{})
	var refundOnce sync.Once
	charge := step(&j, "charge", nil)
	charge.Compensate = func(ctx context.Context, _ order) error {
		if !fixed.Load() {
			return retry.Permanent(errors.New("refund service down"))
		}
		j.add("undo charge")
		refundOnce.Do(func() { close(refunding) })
		<-refunded
		return nil
	}
	def, err := saga.Define("order", 1, charge, step(&j, "ship", retry.Permanent(errors.New("no courier"))))
	require.NoError(t, err)
	log := &faultLog{Log: &saga.MemoryLog{}}
	o := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithOwner("first"), saga.WithRecoverInterval(0))
	other := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithOwner("second"), saga.WithRecoverInterval(0))
	id := needingAttention(t, o, def)
	fixed.Store(true)
	ctx := ctxWithin(t, 10*time.Second)

	// The first call stops once it has reopened the saga, until the second
	// has reopened it too (or returned); the second then waits for the
	// refund the first call's run makes.
	var reopens atomic.Int32
	firstReopened, secondReopened, secondDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	log.afterReopen = func() {
		switch reopens.Add(1) {
		case 1:
			close(firstReopened)
			select {
			case <-secondReopened:
			case <-secondDone:
			}
		case 2:
			close(secondReopened)
			<-refunding
		}
	}
	errs := make(chan error, 2)
	go func() { errs <- o.Retry(ctx, id) }()
	<-firstReopened
	go func() {
		errs <- o.Retry(ctx, id)
		close(secondDone)
	}()
	first, second := <-errs, <-errs
	<-refunding
	if first != nil {
		first, second = second, first
	}
	require.NoError(t, first)
	assert.ErrorIs(t, second, saga.ErrNotNeedsAttention)

	n, err := other.Recover(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "another orchestrator took over a saga whose retry runs")
	close(refunded)
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.Compensated, st, "Wait() error: %v", err)
	assert.Equal(t, []string{"do charge", "fail ship", "undo charge"}, j.list(), "the charge refunded once")
}

// A write to the log whose reply was lost, tried again once another
// orchestrator had taken the saga over, does not let the run go on: the
// try found the transition written (by the first try) and went on to run
// the step, whose outcome the other orchestrator had already taken for
// unknown and compensated: the charge was made after its refund, and
// stayed.
func TestWriteTriedAgainAfterATakeOverStopsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		def, err := saga.Define("order", 1, step(&j, "charge", nil))
		require.NoError(t, err)
		mem := &saga.MemoryLog{}
		log := &faultLog{Log: mem}
		const lease = time.Second
		o := newOrchestrator(t, log, saga.WithOwner("first"), saga.WithLease(lease), saga.WithRecoverInterval(0))
		other := newOrchestrator(t, mem, saga.WithOwner("second"), saga.WithDefinitions(def), saga.WithRecoverInterval(0))
		ctx := context.Background()
		var tries atomic.Int32
		log.onAppend = func(ts []saga.Transition, next func() error) error {
			if ts[0].Step != "charge" || ts[0].Kind != saga.Started {
				return next()
			}
			switch tries.Add(1) {
			case 1:
				// Written, but the reply is lost, and the log is out of
				// reach (no renewal) for longer than the lease.
				require.NoError(t, next())
				log.down.Store(true)
				return errDown
			case 2:
				// The next try reaches the log once the lease expired and
				// the other orchestrator took the saga over, and
				// compensated the charge, whose outcome was unknown.
				time.Sleep(2 * lease)
				n, err := other.Recover(ctx)
				require.NoError(t, err)
				require.Equal(t, 1, n)
				st, _ := other.Wait(ctx, ts[0].Step+"-saga")
				require.Equal(t, saga.Compensated, st)
				log.down.Store(false)
			}
			return next()
		}
		id, err := o.Start(ctx, def, order{}, saga.WithID("charge-saga"))
		require.NoError(t, err)
		st, _ := other.Wait(ctx, id)
		assert.Equal(t, saga.Compensated, st)
		require.NoError(t, o.Close(ctx))
		assert.Equal(t, []string{"undo charge"}, j.list(), "the charge was made after the other orchestrator took the saga over")
	})
}

// Operators retrying and resolving sagas that need attention, from two
// orchestrators at once, while the orchestrators crash and restart and
// recover in the background: no saga's steps ever run in two places at
// once, and once the operators have fixed everything every saga ends
// compensated or resolved.
func TestOperatorsRecoveriesAndCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds")
	}
	t.Run("memory", func(t *testing.T) { operatorsRecoveriesAndCrashes(t, &saga.MemoryLog{}) })
	t.Run("postgres", func(t *testing.T) {
		pool := testenv.PostgresPool(t, 16)
		log, err := pglog.New(pool, pglog.WithSchema(testenv.Schema(t, "saga_stress_")))
		require.NoError(t, err)
		require.NoError(t, log.Migrate(ctxWithin(t, 20*time.Second)))
		operatorsRecoveriesAndCrashes(t, log)
	})
}

func operatorsRecoveriesAndCrashes(t *testing.T, log saga.Log) {
	const sagas = 20
	var (
		inside     sync.Map // saga id → the step running
		overlaps   atomic.Int32
		fixed      sync.Map // saga id → true once its refund works
		refunds    sync.Map // saga id → *atomic.Int32
		violations = make(chan string, 100)
	)
	enter := func(ctx context.Context, what string) func() {
		id := saga.IdempotencyKey(ctx)
		info, _ := saga.StepFromContext(ctx)
		if other, busy := inside.LoadOrStore(info.SagaID, id); busy {
			overlaps.Add(1)
			select {
			case violations <- fmt.Sprintf("%s of saga %s while %s runs", what, info.SagaID, other):
			default:
			}
			return func() {}
		}
		return func() { inside.Delete(info.SagaID) }
	}
	pause := func(ctx context.Context) error {
		select {
		case <-time.After(time.Duration(rand.IntN(3)) * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	def, err := saga.Define("order", 1,
		saga.Step[order]{Name: "charge",
			Action: func(ctx context.Context, _ order) (func(*order), error) {
				defer enter(ctx, "charge")()
				return nil, pause(ctx)
			},
			Compensate: func(ctx context.Context, _ order) error {
				defer enter(ctx, "refund")()
				if err := pause(ctx); err != nil {
					return err
				}
				info, _ := saga.StepFromContext(ctx)
				if _, ok := fixed.Load(info.SagaID); !ok && rand.IntN(2) == 0 {
					return errors.New("refund service down")
				}
				n, _ := refunds.LoadOrStore(info.SagaID, new(atomic.Int32))
				n.(*atomic.Int32).Add(1)
				return nil
			}},
		saga.Step[order]{Name: "ship", Action: func(ctx context.Context, _ order) (func(*order), error) {
			defer enter(ctx, "ship")()
			return nil, retry.Permanent(errors.New("no courier"))
		}, Compensate: func(context.Context, order) error { return nil }})
	require.NoError(t, err)

	var mu sync.Mutex
	var orchs [2]*saga.Orchestrator
	generation := 0
	newOrch := func(k int) *saga.Orchestrator {
		generation++
		o, err := saga.NewOrchestrator(log, saga.WithDefinitions(def), saga.WithLease(time.Second),
			saga.WithRecoverInterval(20*time.Millisecond), saga.WithOwner(fmt.Sprintf("o%d-%d", k, generation)),
			saga.WithCompensationRetry(retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(retry.Constant(time.Millisecond)))))
		require.NoError(t, err)
		return o
	}
	for k := range orchs {
		orchs[k] = newOrch(k)
	}
	pick := func() *saga.Orchestrator {
		mu.Lock()
		defer mu.Unlock()
		return orchs[rand.IntN(len(orchs))]
	}
	ctx := ctxWithin(t, 60*time.Second)
	ids := make([]string, sagas)
	for i := range ids {
		ids[i], err = pick().Start(ctx, def, order{})
		require.NoError(t, err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // crashes and restarts
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(100+rand.IntN(200)) * time.Millisecond):
			}
			k := rand.IntN(len(orchs))
			mu.Lock()
			old := orchs[k]
			orchs[k] = newOrch(k)
			mu.Unlock()
			cut, cancel := context.WithCancel(ctx)
			if rand.IntN(2) == 0 {
				cancel() // a crash
			}
			_ = old.Close(cut)
			cancel()
		}
	})
	for range 4 { // operators
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[rand.IntN(len(ids))]
				switch rand.IntN(10) {
				case 0:
					_ = pick().Resolve(ctx, id, "refunded by hand")
				case 1, 2:
					fixed.Store(id, true)
					fallthrough
				default:
					_ = pick().Retry(ctx, id)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	// Everything fixed: every saga ends, compensated or resolved.
	for _, id := range ids {
		fixed.Store(id, true)
	}
	for _, id := range ids {
		for {
			rec, _, err := log.Load(ctx, id)
			require.NoError(t, err)
			if rec.Status == saga.Compensated || rec.Status == saga.Resolved {
				break
			}
			if rec.Status == saga.NeedsAttention {
				_ = pick().Retry(ctx, id)
			}
			require.NoError(t, ctx.Err(), "saga %s stuck in %s", id, rec.Status)
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, o := range orchs {
		require.NoError(t, o.Close(ctx))
	}
	close(violations)
	for v := range violations {
		t.Error(v)
	}
	assert.Zero(t, overlaps.Load(), "steps of one saga running in two places at once")
	for _, id := range ids {
		rec, _, err := log.Load(ctx, id)
		require.NoError(t, err)
		if n, _ := refunds.Load(id); rec.Status == saga.Compensated && n == nil {
			t.Errorf("saga %s compensated, never refunded", id)
		}
	}
}

// Wait on the orchestrator whose run stopped a saga in status
// needs_attention returns the saga's status once the run's
// WithNeedsAttention function (a slow notification) returned: resolved,
// or compensated after a retry, if another orchestrator's operator
// resolved or retried the saga meanwhile. It answered needs_attention.
func TestWaitAfterAnOperatorElsewhere(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(ctx context.Context, o *saga.Orchestrator, id string) error
		want saga.Status
	}{
		{"resolved", func(ctx context.Context, o *saga.Orchestrator, id string) error {
			return o.Resolve(ctx, id, "refunded by hand")
		}, saga.Resolved},
		{"retried", func(ctx context.Context, o *saga.Orchestrator, id string) error {
			return o.Retry(ctx, id)
		}, saga.Compensated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var j journal
			var fixed atomic.Bool
			def := refundSaga(t, &j, &fixed)
			log := &saga.MemoryLog{}
			told, notified := make(chan struct{}), make(chan struct{})
			var once sync.Once
			o := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithRecoverInterval(0),
				saga.WithNeedsAttention(func(context.Context, string, string, error) {
					once.Do(func() {
						close(told)
						<-notified // a slow notification
					})
				}))
			other := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithRecoverInterval(0))
			ctx := ctxWithin(t, 10*time.Second)
			id, err := o.Start(ctx, def, order{})
			require.NoError(t, err)
			<-told
			fixed.Store(true)
			require.NoError(t, tc.op(ctx, other, id))
			var st saga.Status
			waited := make(chan struct{})
			go func() {
				defer close(waited)
				st, err = o.Wait(ctx, id)
			}()
			time.Sleep(50 * time.Millisecond) // Wait finds the run, still telling
			close(notified)
			<-waited
			assert.Equal(t, tc.want, st)
			assert.Error(t, err)
		})
	}
}
