package retry

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Budget caps the retries of many retriers at a fraction of their first
// attempts, as Envoy's and gRPC's retry budgets do: every first attempt
// deposits ratio of a token, every retry withdraws a whole one. With the
// default ratio of 0.2, a dependency that fails every call sees at most 20%
// more calls than it would without retries, instead of three times as many,
// however many layers retry. So that a service with little traffic can still
// retry, a minimum number of retries per second is always allowed.
//
// A Budget is safe for concurrent use; share one between the retriers that
// call the same dependency.
type Budget struct {
	deposit  int64 // milli-tokens per first attempt
	capacity int64 // milli-tokens
	balance  atomic.Int64
	floor    *rate.Limiter
}

const milli = 1000

// BudgetOption configures a [Budget].
type BudgetOption interface{ applyBudget(*budgetConfig) }

type budgetConfig struct {
	ratio     float64
	minPerSec float64
	burst     int
}

type budgetOptionFunc func(*budgetConfig)

func (f budgetOptionFunc) applyBudget(c *budgetConfig) { f(c) }

// WithRatio sets the fraction of first attempts that may be retried, in
// [0, 1]. The default is 0.2.
func WithRatio(r float64) BudgetOption {
	return budgetOptionFunc(func(c *budgetConfig) { c.ratio = r })
}

// WithMinRetriesPerSecond sets how many retries per second are allowed
// whatever the ratio. The default is 10; 0 allows none beyond the ratio.
func WithMinRetriesPerSecond(n float64) BudgetOption {
	return budgetOptionFunc(func(c *budgetConfig) { c.minPerSec = n })
}

// WithBurst sets how many retries the budget can save up from deposits
// during quiet times, to spend at once. The default is 10.
func WithBurst(n int) BudgetOption {
	return budgetOptionFunc(func(c *budgetConfig) { c.burst = n })
}

// NewBudget returns a full budget. It panics on invalid options, naming
// them, as [New] does.
func NewBudget(opts ...BudgetOption) *Budget {
	c := budgetConfig{ratio: 0.2, minPerSec: 10, burst: 10}
	for _, o := range opts {
		o.applyBudget(&c)
	}
	var errs []error
	if !(c.ratio >= 0 && c.ratio <= 1) {
		errs = append(errs, fmt.Errorf("WithRatio(%v): must be in [0, 1]", c.ratio))
	}
	if !(c.minPerSec >= 0) {
		errs = append(errs, fmt.Errorf("WithMinRetriesPerSecond(%v): must not be negative", c.minPerSec))
	}
	if c.burst < 1 {
		errs = append(errs, fmt.Errorf("WithBurst(%d): must be at least 1", c.burst))
	}
	if err := errors.Join(errs...); err != nil {
		panic(fmt.Sprintf("retry: NewBudget: %v", err))
	}
	b := &Budget{
		deposit:  int64(c.ratio * milli),
		capacity: int64(c.burst) * milli,
	}
	if c.minPerSec > 0 {
		b.floor = rate.NewLimiter(rate.Limit(c.minPerSec), max(1, int(c.minPerSec)))
	}
	b.balance.Store(b.capacity)
	return b
}

// recordAttempt deposits for a first attempt. A full budget is only read, so healthy
// traffic does not contend on it.
func (b *Budget) recordAttempt() {
	for {
		cur := b.balance.Load()
		if cur >= b.capacity {
			return
		}
		if b.balance.CompareAndSwap(cur, min(cur+b.deposit, b.capacity)) {
			return
		}
	}
}

// withdraw takes one retry from the budget, reporting whether there was
// one.
func (b *Budget) withdraw() bool {
	if b.balance.Add(-milli) >= 0 {
		return true
	}
	b.balance.Add(milli)
	return b.floor != nil && b.floor.Allow()
}

// Available returns how many retries the budget could pay for now from its
// deposits (the per-second minimum aside).
func (b *Budget) Available() float64 {
	return float64(max(b.balance.Load(), 0)) / milli
}
