package saga_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

var errNoCourier = errors.New("no courier")

// TestWaitResult checks saga.Wait's Result, for a saga waited for by the
// orchestrator that runs it and by another sharing its log (which reads
// the result from the log alone): the final status, the data the steps
// recorded, and the error that made the saga compensate or stop, a
// *saga.StepError with the same fields either way, with the error's
// chain for the Wait that found the run in progress. (A saga's result
// could only be had by decoding the log by hand. Issue 18.)
func TestWaitResult(t *testing.T) {
	var j journal
	failUndo := step(&j, "reserve", nil)
	failUndo.Compensate = func(context.Context, order) error { return retry.Permanent(errors.New("warehouse gone")) }
	tests := []struct {
		name      string
		steps     []saga.Step[order]
		status    saga.Status
		reserved  []string // Data.Reserved
		errStep   string
		errPhase  saga.Phase
		errString string
	}{
		{"completed", []saga.Step[order]{step(&j, "pay", nil), step(&j, "reserve", nil)},
			saga.Completed, []string{"pay", "reserve"}, "", "", ""},
		{"compensated", []saga.Step[order]{step(&j, "pay", nil), step(&j, "reserve", nil), step(&j, "ship", retry.Permanent(errNoCourier))},
			saga.Compensated, []string{"pay", "reserve"}, "ship", saga.Forward,
			`step "ship": retry: not retryable after 1 attempt: no courier`},
		{"needs attention", []saga.Step[order]{step(&j, "pay", nil), failUndo, step(&j, "ship", retry.Permanent(errNoCourier))},
			saga.NeedsAttention, []string{"pay", "reserve"}, "reserve", saga.Compensate,
			`compensation of step "reserve": retry: not retryable after 1 attempt: warehouse gone; left in effect: steps ["pay" "reserve"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// The first step waits for the gate, so that the first
				// Wait finds the run in progress.
				gate := make(chan struct{})
				steps := append([]saga.Step[order](nil), tt.steps...)
				first := steps[0].Action
				steps[0].Action = func(ctx context.Context, o order) (func(*order), error) {
					<-gate
					return first(ctx, o)
				}
				def, err := saga.Define("order", 1, steps...)
				require.NoError(t, err)
				log := &saga.MemoryLog{}
				ran := newOrchestrator(t, log)
				elsewhere := newOrchestrator(t, log, saga.WithRecoverInterval(0))
				ctx := context.Background()
				id, err := saga.Start(ctx, ran, def, order{ID: "o-1"})
				require.NoError(t, err)
				var here saga.Result[order]
				var hereErr error
				waited := make(chan struct{})
				go func() {
					defer close(waited)
					here, hereErr = saga.Wait(ctx, ran, def, id)
				}()
				synctest.Wait() // Wait waits for the run
				close(gate)
				<-waited

				for _, w := range []struct {
					name  string
					o     *saga.Orchestrator
					local bool
				}{{"here", ran, true}, {"elsewhere", elsewhere, false}} {
					res, err := here, hereErr
					if !w.local {
						res, err = saga.Wait(ctx, w.o, def, id)
					}
					require.NoError(t, err, w.name)
					assert.Equal(t, tt.status, res.Status, w.name)
					assert.Equal(t, "o-1", res.Data.ID, w.name)
					assert.Equal(t, tt.reserved, res.Data.Reserved, w.name)
					if tt.errString == "" {
						assert.NoError(t, res.Err, w.name)
						continue
					}
					var se *saga.StepError
					require.True(t, errors.As(res.Err, &se), "%s: Result.Err = %#v; want a *saga.StepError", w.name, res.Err)
					assert.Equal(t, tt.errStep, se.Step, w.name)
					assert.Equal(t, tt.errPhase, se.Phase, w.name)
					assert.Equal(t, tt.errString, se.Error(), w.name)
					// The error's chain is had only where the run was.
					assert.Equal(t, w.local, se.Unwrap() != nil, w.name)
					if tt.errPhase == saga.Forward {
						assert.Equal(t, w.local, errors.Is(res.Err, errNoCourier), w.name)
					}

					// Orchestrator.Wait returns the same error.
					st, err := w.o.Wait(ctx, id)
					assert.Equal(t, tt.status, st, w.name)
					require.True(t, errors.As(err, &se), "%s: Wait() = %#v; want a *saga.StepError", w.name, err)
					assert.Equal(t, tt.errString, err.Error(), w.name)
				}
			})
		})
	}
}

// Wait for a saga of another definition is an error, at once, not a
// decoding of the data into the wrong type.
func TestWaitOtherDefinition(t *testing.T) {
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	refund, err := saga.Define("refund", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	log := &saga.MemoryLog{}
	o := newOrchestrator(t, log)
	ctx := ctxWithin(t, 10*time.Second)
	id, err := saga.Start(ctx, o, def, order{})
	require.NoError(t, err)
	_, err = saga.Wait(ctx, o, refund, id)
	require.ErrorContains(t, err, `it is a saga of definition "order", not "refund"`)
	elsewhere := newOrchestrator(t, log, saga.WithRecoverInterval(0))
	_, err = saga.Wait(ctx, elsewhere, refund, id)
	require.ErrorContains(t, err, `it is a saga of definition "order", not "refund"`)
	res, err := saga.Wait(ctx, o, def, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, res.Status)
}

// Wait returns ctx's error, with the status so far, when ctx ends before
// the saga.
func TestWaitResultContextEnds(t *testing.T) {
	release := make(chan struct{})
	def, err := saga.Define("order", 1, saga.Step[order]{Name: "pay",
		Action: func(ctx context.Context, o order) (func(*order), error) {
			<-release
			return nil, nil
		},
		Compensate: func(context.Context, order) error { return nil }})
	require.NoError(t, err)
	o := newOrchestrator(t, &saga.MemoryLog{})
	ctx := ctxWithin(t, 10*time.Second)
	id, err := saga.Start(ctx, o, def, order{})
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(ctx)
	cancel()
	res, err := saga.Wait(wctx, o, def, id)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, saga.Running, res.Status)
	close(release)
	res, err = saga.Wait(ctx, o, def, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, res.Status)
}
