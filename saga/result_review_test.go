package saga_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// A saga whose step failed with a message over 8 KiB, retried by an
// operator after a compensation failed, ends compensated with the cut
// message and its true length, for the Wait of the orchestrator that ran
// the retry and for one reading the log. The retried run writes the
// error it read from the log with the final status: the log cut the cut
// message again, and said it was of 8208 bytes. The StepError has no
// chain either way (Unwrap gave the run here the text it read from the
// log as an error).
func TestWaitResultLongMessageAfterRetry(t *testing.T) {
	var j journal
	var fixed atomic.Bool
	long := strings.Repeat("x", 20000)
	charge := step(&j, "charge", nil)
	charge.Compensate = func(context.Context, order) error {
		if !fixed.Load() {
			return retry.Permanent(errors.New("refund service down"))
		}
		return nil
	}
	def, err := saga.Define("order", 1, charge, step(&j, "ship", retry.Permanent(errors.New(long))))
	require.NoError(t, err)
	log := &saga.MemoryLog{}
	o := newOrchestrator(t, log, saga.WithDefinitions(def))
	elsewhere := newOrchestrator(t, log, saga.WithRecoverInterval(0))
	ctx := ctxWithin(t, 10*time.Second)
	id, err := saga.Start(ctx, o, def, order{})
	require.NoError(t, err)
	res, err := saga.Wait(ctx, o, def, id)
	require.NoError(t, err)
	require.Equal(t, saga.NeedsAttention, res.Status)

	fixed.Store(true)
	require.NoError(t, o.Retry(ctx, id))
	want := fmt.Sprintf("…(%d bytes)", len(`step "ship": retry: not retryable after 1 attempt: `+long))
	for _, w := range []struct {
		name string
		o    *saga.Orchestrator
	}{{"here", o}, {"elsewhere", elsewhere}} {
		res, err := saga.Wait(ctx, w.o, def, id)
		require.NoError(t, err, w.name)
		assert.Equal(t, saga.Compensated, res.Status, w.name)
		var se *saga.StepError
		require.True(t, errors.As(res.Err, &se), w.name)
		assert.Equal(t, "ship", se.Step, w.name)
		assert.True(t, strings.HasSuffix(se.Message, want), "%s: the message ends …%q; want …%q",
			w.name, se.Message[len(se.Message)-20:], want)
		// The retried run read the error from the log: there is no chain,
		// as StepError's doc says of an error read from the log.
		assert.True(t, se.Unwrap() == nil, "%s: Unwrap() of an error read from the log is not nil", w.name)
	}
}

// A saga that an operator retried elsewhere while its run here told
// WithNeedsAttention's function, and that needs attention again, comes
// with the error of its second stop, as the log has it: Wait, waiting for
// the run, read the log for the status but took the error of the first
// stop from the run.
func TestWaitResultNeedsAttentionAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		var refusals atomic.Int32
		charge := step(&j, "charge", nil)
		charge.Compensate = func(context.Context, order) error {
			return retry.Permanent(fmt.Errorf("refund refused (%d)", refusals.Add(1)))
		}
		def, err := saga.Define("order", 1, charge, step(&j, "ship", retry.Permanent(errors.New("no courier"))))
		require.NoError(t, err)
		log := &saga.MemoryLog{}
		told, release := make(chan struct{}), make(chan struct{})
		here := newOrchestrator(t, log, saga.WithDefinitions(def),
			saga.WithNeedsAttention(func(context.Context, string, string, error) {
				close(told)
				<-release
			}))
		operator := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithRecoverInterval(0))
		ctx := context.Background()
		id, err := saga.Start(ctx, here, def, order{})
		require.NoError(t, err)
		<-told
		var res saga.Result[order]
		var resErr error
		waited := make(chan struct{})
		go func() {
			defer close(waited)
			res, resErr = saga.Wait(ctx, here, def, id)
		}()
		synctest.Wait() // Wait waits for the run, which waits for release

		require.NoError(t, operator.Retry(ctx, id))
		there, err := saga.Wait(ctx, operator, def, id)
		require.NoError(t, err)
		require.Equal(t, saga.NeedsAttention, there.Status)
		require.ErrorContains(t, there.Err, "refund refused (2)")
		close(release)
		<-waited

		require.NoError(t, resErr)
		assert.Equal(t, saga.NeedsAttention, res.Status)
		assert.Equal(t, there.Err.Error(), res.Err.Error())
		st, err := here.Wait(ctx, id)
		assert.Equal(t, saga.NeedsAttention, st)
		assert.EqualError(t, err, there.Err.Error())
	})
}
