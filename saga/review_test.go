package saga_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
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
