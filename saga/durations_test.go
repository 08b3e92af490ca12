package saga_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// TestDefaultRetryDurations measures, in fake time, how long the default
// retry policies try a step or a compensation that keeps failing before
// they give up, over many sagas, and checks what the documentation of
// Step.Retry and WithCompensationRetry says: the waits are drawn at
// random (full jitter) up to the exponential backoff's, so the time is
// half their sum on average, and their sum at most. (The documentation
// said "about 2 minutes" and "about 8 minutes"; the issue measured
// 25-41 s and 1m33s-3m16s. Issue 14 item 9.) The sums come from the
// default policies (saga.WaitsOf), as the numbers in the docs do
// (TestDefaultRetryDocs).
func TestDefaultRetryDurations(t *testing.T) {
	const sagas = 200
	fails := func(context.Context, order) (func(*order), error) { return nil, errors.New("busy") }
	ok := func(context.Context, order) (func(*order), error) { return nil, nil }
	undo := func(context.Context, order) error { return nil }
	tests := []struct {
		name    string
		steps   []saga.Step[order]
		failing string // the step whose attempts are timed
		want    saga.Status
		max     time.Duration // the sum of the waits
	}{
		{"step", []saga.Step[order]{{Name: "pay", Action: fails, Compensate: undo}},
			"pay", saga.Compensated, saga.WaitsOf("step")},
		{"compensation", []saga.Step[order]{
			{Name: "pay", Action: ok, Compensate: func(context.Context, order) error { return errors.New("busy") }},
			{Name: "ship", Action: func(context.Context, order) (func(*order), error) {
				return nil, retry.Permanent(errors.New("no courier"))
			}, Compensate: undo}},
			"pay", saga.NeedsAttention, saga.WaitsOf("compensation")},
		{"retriable", []saga.Step[order]{
			{Name: "ship", Action: ok, Pivot: true},
			{Name: "notify", Action: fails, Retriable: true}},
			"notify", saga.NeedsAttention, saga.WaitsOf("retriable")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				first := map[string]time.Time{}
				steps := append([]saga.Step[order](nil), tt.steps...)
				for i := range steps {
					if steps[i].Name != tt.failing {
						continue
					}
					mark := func(ctx context.Context) {
						if info, _ := saga.StepFromContext(ctx); info.Attempt == 1 {
							mu.Lock()
							first[info.SagaID] = time.Now()
							mu.Unlock()
						}
					}
					if tt.failing == "pay" && tt.want == saga.NeedsAttention {
						comp := steps[i].Compensate
						steps[i].Compensate = func(ctx context.Context, o order) error { mark(ctx); return comp(ctx, o) }
					} else {
						act := steps[i].Action
						steps[i].Action = func(ctx context.Context, o order) (func(*order), error) { mark(ctx); return act(ctx, o) }
					}
				}
				def, err := saga.Define("order", 1, steps...)
				require.NoError(t, err)
				o := newOrchestrator(t, &saga.MemoryLog{}) // the default policies
				took := make([]time.Duration, sagas)
				var wg sync.WaitGroup
				for k := range sagas {
					wg.Go(func() {
						ctx := context.Background()
						id, err := o.Start(ctx, def, order{})
						if err != nil {
							t.Error(err)
							return
						}
						st, _ := o.Wait(ctx, id)
						if st != tt.want {
							t.Errorf("Wait() = %s; want %s", st, tt.want)
						}
						mu.Lock()
						took[k] = time.Since(first[id])
						mu.Unlock()
					})
				}
				wg.Wait()
				var sum, lo, hi time.Duration
				lo = took[0]
				for _, d := range took {
					sum += d
					lo, hi = min(lo, d), max(hi, d)
				}
				mean := sum / sagas
				t.Logf("gave up after %v on average (%v to %v over %d sagas); the waits sum to %v",
					mean.Round(10*time.Millisecond), lo.Round(10*time.Millisecond), hi.Round(10*time.Millisecond), sagas, tt.max)
				assert.LessOrEqual(t, hi, tt.max, "the longest")
				assert.InDelta(t, float64(tt.max/2), float64(mean), float64(tt.max)/20,
					fmt.Sprintf("the mean, %v; want half the sum of the waits, %v, within 5%% of the sum", mean, tt.max/2))
			})
		})
	}
}
