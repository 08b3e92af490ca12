package saga_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/saga"
)

// Sagas of a version no longer registered do not keep Recover from the
// ones behind them, nor make it loop.
func TestRecoverMovesPastUnknownVersions(t *testing.T) {
	var j journal
	v2, err := saga.Define("order", 2, step(&j, "pay", nil))
	require.NoError(t, err)
	log := &saga.MemoryLog{}
	ctx := ctxWithin(t, 10*time.Second)
	for i := range 150 {
		id := fmt.Sprintf("old-%03d", i)
		require.NoError(t, log.Create(ctx, saga.Record{ID: id, Name: "order", Version: 1, Data: []byte(`{}`)}, "", time.Second))
	}
	for i := range 3 {
		id := fmt.Sprintf("new-%d", i)
		require.NoError(t, log.Create(ctx, saga.Record{ID: id, Name: "order", Version: 2, Data: []byte(`{}`)}, "", time.Second))
	}
	o := newOrchestrator(t, log, saga.WithDefinitions(v2))
	n, err := o.Recover(ctx)
	require.ErrorIs(t, err, saga.ErrUnknownDefinition)
	assert.Equal(t, 3, n)
	require.NoError(t, ctx.Err(), "Recover returned before the deadline")
	for i := range 3 {
		st, err := o.Wait(ctx, fmt.Sprintf("new-%d", i))
		require.NoError(t, err)
		assert.Equal(t, saga.Completed, st)
	}
	// The old ones are free for an orchestrator that knows version 1.
	recs, err := log.Claim(ctx, "other", []string{"order"}, time.Second, 1000)
	require.NoError(t, err)
	assert.Len(t, recs, 150)
}

// flakyRenewLog fails every Renew while down is set.
type flakyRenewLog struct {
	*saga.MemoryLog
	down atomic.Bool
}

func (l *flakyRenewLog) Renew(ctx context.Context, owner string, lease time.Duration, ids []string) ([]string, error) {
	if l.down.Load() {
		return nil, errors.New("connection refused")
	}
	return l.MemoryLog.Renew(ctx, owner, lease, ids)
}

// An orchestrator whose lease expired while it could not renew it does not
// start the saga a second time when its own Recover claims it back.
func TestRecoverDoesNotRunASagaTwiceInOneOrchestrator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		release := make(chan struct{})
		slow := saga.Step[order]{Name: "slow", Idempotent: true,
			Action: func(ctx context.Context, o order) (func(*order), error) {
				calls.Add(1)
				<-release
				return nil, nil
			},
			Compensate: func(context.Context, order) error { return nil }}
		def, err := saga.Define("order", 1, slow)
		require.NoError(t, err)
		log := &flakyRenewLog{MemoryLog: &saga.MemoryLog{}}
		o, err := saga.NewOrchestrator(log, saga.WithDefinitions(def), saga.WithLease(time.Second))
		require.NoError(t, err)
		ctx := context.Background()
		id, err := o.Start(ctx, def, order{})
		require.NoError(t, err)
		log.down.Store(true)
		time.Sleep(2 * time.Second) // the lease expires unrenewed
		log.down.Store(false)
		n, err := o.Recover(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "the saga runs here already")
		synctest.Wait()
		assert.Equal(t, int32(1), calls.Load())
		close(release)
		st, err := o.Wait(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, saga.Completed, st)
		assert.Equal(t, int32(1), calls.Load())
		require.NoError(t, o.Close(ctx))
	})
}

// While a graceful Close waits for an attempt, it keeps renewing the
// saga's lease: no other orchestrator takes the saga over meanwhile.
func TestGracefulCloseKeepsTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		slow := saga.Step[order]{Name: "slow",
			Action: func(ctx context.Context, o order) (func(*order), error) {
				calls.Add(1)
				time.Sleep(2500 * time.Millisecond)
				return nil, nil
			},
			Compensate: func(context.Context, order) error { return nil }}
		def, err := saga.Define("order", 1, slow, step(&journal{}, "next", nil))
		require.NoError(t, err)
		log := &saga.MemoryLog{}
		ctx := context.Background()
		first, err := saga.NewOrchestrator(log, saga.WithLease(time.Second), saga.WithOwner("first"))
		require.NoError(t, err)
		_, err = first.Start(ctx, def, order{})
		require.NoError(t, err)
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- first.Close(ctx) }()

		second := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithOwner("second"))
		time.Sleep(1500 * time.Millisecond) // past the lease, inside the attempt
		n, err := second.Recover(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "the closing orchestrator still holds the lease")
		require.NoError(t, <-closed)
		assert.Equal(t, int32(1), calls.Load())
	})
}

// A step whose update panics fails the saga, which compensates; the
// process goes on.
func TestPanickingUpdateCompensates(t *testing.T) {
	var j journal
	bad := step(&j, "pay", nil)
	bad.Action = func(ctx context.Context, o order) (func(*order), error) {
		j.add("do pay")
		return func(*order) { panic("update bug") }, nil
	}
	def, err := saga.Define("order", 1, step(&j, "reserve", nil), bad)
	require.NoError(t, err)
	o := newOrchestrator(t, &saga.MemoryLog{})
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.Compensated, st)
	require.ErrorContains(t, err, "update bug")
	assert.Equal(t, []string{"do reserve", "do pay", "undo pay", "undo reserve"}, j.list(),
		"the step took effect, so it is compensated")
}

func TestStartRejectsAZeroDefinition(t *testing.T) {
	o := newOrchestrator(t, &saga.MemoryLog{})
	_, err := o.Start(context.Background(), &saga.Definition[order]{}, order{})
	require.ErrorContains(t, err, "not made by Define")
}
