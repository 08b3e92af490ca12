package retry_test

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
)

// outage runs calls operations that always fail through r from goroutines
// goroutines, and returns how many retries happened and how many calls gave
// up on the budget.
func outage(t *testing.T, r *retry.Retrier, goroutines, calls int) (retries, budgetRefusals int) {
	var attempts, refused atomic.Int32
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range calls / goroutines {
				err := r.Do(context.Background(), func(context.Context) error { attempts.Add(1); return errBoom })
				if errors.Is(err, retry.ErrBudgetExhausted) {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(attempts.Load()) - calls, int(refused.Load())
}

func TestBudgetCapsRetries(t *testing.T) {
	tests := []struct {
		name       string
		opts       []retry.BudgetOption
		goroutines int
		maxRetries int
	}{
		// 10 saved up, 10 from the per-second floor, 0.2 per first attempt.
		{"defaults", nil, 1, 10 + 10 + 200},
		{"defaults, concurrent", nil, 8, 10 + 10 + 200},
		{"no floor", []retry.BudgetOption{retry.WithMinRetriesPerSecond(0)}, 4, 10 + 200},
		{"ratio only", []retry.BudgetOption{retry.WithMinRetriesPerSecond(0), retry.WithRatio(0.5), retry.WithBurst(1)}, 1, 1 + 500},
		{"ratio only, concurrent", []retry.BudgetOption{retry.WithMinRetriesPerSecond(0), retry.WithRatio(0.5), retry.WithBurst(1)}, 4, 1 + 500},
		{"nothing", []retry.BudgetOption{retry.WithMinRetriesPerSecond(0), retry.WithRatio(0), retry.WithBurst(1)}, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { // time stands still: the floor does not refill
				b := retry.NewBudget(tt.opts...)
				r := retry.New(retry.WithBudget(b), retry.WithBackoff(retry.Constant(0)))
				retries, refused := outage(t, r, tt.goroutines, 1000)
				assert.LessOrEqual(t, retries, tt.maxRetries)
				if tt.goroutines == 1 {
					// Concurrent deposits into a full budget are lost, so only
					// a sequential run gets exactly what the budget promises.
					assert.GreaterOrEqual(t, retries, tt.maxRetries*9/10, "the budget must allow what it promises")
				} else {
					assert.Positive(t, retries)
				}
				assert.Positive(t, refused)
			})
		})
	}
}

func TestBudgetWithoutOutageIsFree(t *testing.T) {
	b := retry.NewBudget(retry.WithMinRetriesPerSecond(0))
	r := retry.New(retry.WithBudget(b), retry.WithBackoff(retry.Constant(0)))
	for range 100 {
		require.NoError(t, r.Do(context.Background(), func(context.Context) error { return nil }))
	}
	assert.Equal(t, 10.0, b.Available(), "healthy traffic keeps the budget full")
}

func TestBudgetRefillsFromFirstAttempts(t *testing.T) {
	b := retry.NewBudget(retry.WithMinRetriesPerSecond(0), retry.WithBurst(2), retry.WithRatio(0.5))
	r := retry.New(retry.WithBudget(b), retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(2))
	fail := func(context.Context) error { return errBoom }
	// Full (2), a first attempt deposits nothing; the retry spends one.
	require.ErrorIs(t, r.Do(context.Background(), fail), retry.ErrExhausted)
	assert.Equal(t, 1.0, b.Available())
	// 1 + 0.5 - 1.
	require.ErrorIs(t, r.Do(context.Background(), fail), retry.ErrExhausted)
	assert.Equal(t, 0.5, b.Available())
	// 0.5 + 0.5 - 1.
	require.ErrorIs(t, r.Do(context.Background(), fail), retry.ErrExhausted)
	assert.Zero(t, b.Available())
	// Half a retry is not enough.
	require.ErrorIs(t, r.Do(context.Background(), fail), retry.ErrBudgetExhausted)
	assert.Equal(t, 0.5, b.Available(), "a refused retry spends nothing")
	require.ErrorIs(t, r.Do(context.Background(), fail), retry.ErrExhausted, "the next half makes one")
}

func TestBudgetFloorRefillsOverTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(retry.WithRatio(0), retry.WithBurst(1), retry.WithMinRetriesPerSecond(2))
		r := retry.New(retry.WithBudget(b), retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(2))
		fail := func(context.Context) error { return errBoom }
		var refused int
		for range 10 {
			if errors.Is(r.Do(context.Background(), fail), retry.ErrBudgetExhausted) {
				refused++
			}
		}
		assert.Equal(t, 10-1-2, refused, "one saved up, two from the floor")
		time.Sleep(time.Second)
		require.ErrorIs(t, r.Do(context.Background(), fail), retry.ErrExhausted, "a second later the floor allows more")
	})
}

func TestNewBudgetPanics(t *testing.T) {
	for _, tt := range []struct {
		opt  retry.BudgetOption
		want string
	}{
		{retry.WithRatio(1.5), "WithRatio(1.5)"},
		{retry.WithRatio(-1), "WithRatio(-1)"},
		{retry.WithMinRetriesPerSecond(-1), "WithMinRetriesPerSecond(-1)"},
		{retry.WithBurst(0), "WithBurst(0)"},
	} {
		msg := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			retry.NewBudget(tt.opt)
			return ""
		}()
		assert.Contains(t, msg, "retry: NewBudget: "+tt.want)
	}
}
