package saga_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
