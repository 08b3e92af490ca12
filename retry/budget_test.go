package retry_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
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

// budgetBound is the bound Budget's doc states: over any T seconds in
// which the retriers sharing a budget make N calls, they retry at most
//
//	ratio·N + burst + minPerSec·T + max(1, ⌊minPerSec⌋)
//
// times (the last term only with a floor).
func budgetBound(ratio float64, burst int, minPerSec float64, calls int, seconds float64) float64 {
	bound := ratio*float64(calls) + float64(burst)
	if minPerSec > 0 {
		bound += minPerSec*seconds + max(1, math.Floor(minPerSec))
	}
	return bound
}

// TestBudgetBoundInDoc checks the bound that Budget's doc states, so that
// the doc cannot go stale: outages at several rates of traffic, every
// window of the outage within the bound, and the whole outage close to it
// when the calls want more retries than it allows.
func TestBudgetBoundInDoc(t *testing.T) {
	src, err := os.ReadFile("budget.go")
	require.NoError(t, err)
	for _, formula := range []string{
		"//\tratio·N + burst + minPerSec·T + max(1, ⌊minPerSec⌋)\n",
		"//\t0.2·N + 10·T + 20\n",
	} {
		require.Contains(t, string(src), formula, "Budget's doc states the bound this test checks; change both together")
	}
	require.Equal(t, 0.2, retry.DefaultBudgetRatio)
	require.Equal(t, 10, retry.DefaultBudgetBurst)
	require.Equal(t, 10.0, retry.DefaultMinRetriesPerSecond)

	const attempts = 4 // each call wants 3 retries
	tests := []struct {
		name        string
		ratio       float64
		burst       int
		minPerSec   float64
		callsPerSec int
		seconds     int
		oldClaim    bool // whether "at most 20% more calls" held
	}{
		{"defaults, 1 call a second", 0.2, 10, 10, 1, 60, false},
		{"defaults, 100 calls a second", 0.2, 10, 10, 100, 10, false},
		{"defaults, 1000 calls a second", 0.2, 10, 10, 1000, 10, false},
		{"fractional floor", 0.5, 3, 2.5, 20, 10, false},
		{"no floor", 0.1, 1, 0, 50, 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := []retry.BudgetOption{retry.WithRatio(tt.ratio), retry.WithBurst(tt.burst), retry.WithMinRetriesPerSecond(tt.minPerSec)}
				if tt.ratio == 0.2 && tt.burst == 10 && tt.minPerSec == 10 {
					opts = nil // the defaults
				}
				b := retry.NewBudget(opts...)
				r := retry.New(retry.WithBudget(b), retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(attempts))

				start := time.Now()
				var callTimes, retryTimes []time.Duration // since start
				fail := func(ctx context.Context) error {
					if retry.ResendCount(ctx) == 0 {
						callTimes = append(callTimes, time.Since(start))
					} else {
						retryTimes = append(retryTimes, time.Since(start))
					}
					return errBoom
				}
				calls := tt.callsPerSec * tt.seconds
				for range calls {
					_ = r.Do(context.Background(), fail)
					time.Sleep(time.Second / time.Duration(tt.callsPerSec))
				}
				require.Len(t, callTimes, calls)

				// Every window [from, from+length) of the outage.
				count := func(times []time.Duration, from, to time.Duration) (n int) {
					for _, at := range times {
						if at >= from && at < to {
							n++
						}
					}
					return n
				}
				total := time.Duration(tt.seconds) * time.Second
				for _, length := range []time.Duration{time.Second, 2500 * time.Millisecond, total / 2, total} {
					for from := time.Duration(0); from+length <= total; from += 500 * time.Millisecond {
						n, retries := count(callTimes, from, from+length), count(retryTimes, from, from+length)
						bound := budgetBound(tt.ratio, tt.burst, tt.minPerSec, n, length.Seconds())
						require.LessOrEqual(t, float64(retries), bound,
							"%d retries for %d calls in [%v, %v); the doc's bound is %v", retries, n, from, from+length, bound)
					}
				}

				// The whole outage: the bound is what the budget allows, when
				// the calls want more.
				retries := len(retryTimes)
				bound := budgetBound(tt.ratio, tt.burst, tt.minPerSec, calls, float64(tt.seconds))
				want := min(float64((attempts-1)*calls), bound)
				assert.GreaterOrEqual(t, float64(retries), 0.9*want, "the budget allows what its doc says: %d retries for %d calls, bound %v", retries, calls, bound)
				assert.Equal(t, tt.oldClaim, float64(retries) <= 0.2*float64(calls)+float64(tt.burst),
					"%d retries for %d calls: whether the old doc's 20%% held", retries, calls)
			})
		})
	}
}

// TestBudgetRatioNeverRoundsUp protects the bound in Budget's doc,
// ratio·N retries from deposits, against a ratio with more than three
// decimals: the budget keeps ratios to 0.001, and rounding 0.0005 to the
// nearest (0.001) doubled the retries the ratio allows. A ratio of three
// decimals must be kept exactly.
func TestBudgetRatioNeverRoundsUp(t *testing.T) {
	const calls = 10_000
	for _, ratio := range []float64{0.0005, 0.0015, 0.2005, 0.9995, 0.001, 0.2, 0.29, 0.57, 1} {
		t.Run(fmt.Sprint(ratio), func(t *testing.T) {
			b := retry.NewBudget(retry.WithRatio(ratio), retry.WithBurst(10), retry.WithMinRetriesPerSecond(0))
			r := retry.New(retry.WithBudget(b), retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(2))
			retries := 0
			for range calls {
				_ = r.Do(context.Background(), func(ctx context.Context) error {
					if retry.ResendCount(ctx) > 0 {
						retries++
					}
					return errBoom
				})
			}
			bound := ratio*calls + 10 // the burst of 10
			assert.LessOrEqual(t, float64(retries), bound, "%d retries for %d calls at ratio %v", retries, calls, ratio)
			kept := math.Floor(ratio*1000) / 1000
			assert.GreaterOrEqual(t, float64(retries), min(calls, kept*calls+10-2), "a ratio of 0.001 steps is kept whole")
		})
	}
}
