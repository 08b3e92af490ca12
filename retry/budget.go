package retry

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Budget caps the retries of many retriers, as Envoy's and gRPC's retry
// budgets do. Every call of [Retrier.Do] (every first attempt) deposits
// ratio of a retry ([WithRatio]) into a balance that holds at most burst
// retries ([WithBurst]) and starts full; every retry withdraws a whole one.
// When the balance has less than one, a floor still allows minPerSec
// retries a second ([WithMinRetriesPerSecond]), at most max(1, ⌊minPerSec⌋)
// of them at once, so that a service with little traffic can still retry.
//
// So over any T seconds in which the retriers that share a budget make N
// calls, they retry at most
//
//	ratio·N + burst + minPerSec·T + max(1, ⌊minPerSec⌋)
//
// times, which with the defaults (ratio 0.2, burst 10, minPerSec 10) is
//
//	0.2·N + 10·T + 20
//
// A dependency that fails every call therefore sees at most 20% more calls
// than it would without retries, plus 10 a second, plus 20 at once when the
// outage starts (10 saved up and the floor's 10): not 20% alone. Where
// traffic is high the ratio dominates: at 1,000 calls a second, retries add
// at most 21% (after the first 20). Where it is low the floor does: at 1
// call a second, every call may use all its attempts, which is 3 times the
// load with the default [WithMaxAttempts]. Without a budget, every call may
// use all its attempts whatever the traffic.
//
// The bound is per budget: a budget caps the retries of the layer that
// uses it, so each layer that retries through its own budget multiplies
// the load it passes on by at most 1.2 (plus the floor), where retries
// without budgets multiply it by their attempts at every layer (3·3·3 = 27
// calls for one through three layers of 3 attempts).
//
// A Budget is safe for concurrent use; share one between the retriers that
// call the same dependency.
type Budget struct {
	deposit  int64 // milli-retries per first attempt
	capacity int64 // milli-retries
	balance  atomic.Int64
	floor    *rate.Limiter
}

// milli is a whole retry in the budget's unit; ratios are kept to 0.001.
const milli = 1000

// maxBurst bounds [WithBurst], so that the balance, kept in milli-retries,
// cannot overflow.
const maxBurst = 1_000_000_000

// Defaults of a [Budget] built with no options.
const (
	// DefaultBudgetRatio is the fraction of a retry that each call deposits.
	DefaultBudgetRatio = 0.2
	// DefaultMinRetriesPerSecond is the floor: retries allowed each second
	// whatever the balance.
	DefaultMinRetriesPerSecond = 10.0
	// DefaultBudgetBurst is how many retries the balance holds, and holds
	// when the budget is new.
	DefaultBudgetBurst = 10
)

// BudgetOption configures a [Budget].
type BudgetOption interface{ applyBudget(*budgetConfig) }

type budgetConfig struct {
	ratio     float64
	minPerSec float64
	burst     int
	errs      []error // bad options, reported by NewBudget and ValidateBudget
}

func (c *budgetConfig) fault(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// newBudgetConfig applies opts to the defaults and reports every bad option
// at once (nil when all are good).
func newBudgetConfig(opts []BudgetOption) (budgetConfig, error) {
	c := budgetConfig{ratio: DefaultBudgetRatio, minPerSec: DefaultMinRetriesPerSecond, burst: DefaultBudgetBurst}
	for i, o := range opts {
		if o == nil {
			c.fault("opts[%d] is nil", i)
			continue
		}
		o.applyBudget(&c)
	}
	return c, errors.Join(c.errs...)
}

type budgetOptionFunc func(*budgetConfig)

func (f budgetOptionFunc) applyBudget(c *budgetConfig) { f(c) }

// WithRatio sets the fraction of a retry that each call deposits: the
// share of calls that may be retried once the saved-up burst is spent,
// floor aside. r must be between 0 and 1 (0 allows no retries beyond the
// burst and the floor); it is kept to 0.001, rounded down so that the
// deposits never add up to more than r retries a call (0.0015 is kept as
// 0.001, 0.2 as 0.2). The default is [DefaultBudgetRatio] (0.2).
func WithRatio(r float64) BudgetOption {
	return budgetOptionFunc(func(c *budgetConfig) {
		if !(r >= 0 && r <= 1) {
			c.fault("WithRatio(%v): must be between 0 and 1", r)
		}
		c.ratio = r
	})
}

// WithMinRetriesPerSecond sets the floor: how many retries per second are
// allowed whatever the balance, max(1, ⌊n⌋) of them at once. n must be a
// finite number, at least 0; 0 allows none beyond the balance. The default
// is [DefaultMinRetriesPerSecond] (10).
func WithMinRetriesPerSecond(n float64) BudgetOption {
	return budgetOptionFunc(func(c *budgetConfig) {
		if !(n >= 0 && !math.IsInf(n, 1)) {
			c.fault("WithMinRetriesPerSecond(%v): must be a finite number, at least 0", n)
		}
		c.minPerSec = n
	})
}

// WithBurst sets how many retries the balance holds: saved up from
// deposits during quiet times, to spend at once when an outage starts. A
// new budget starts full. n must be in 1..1e9. The default is
// [DefaultBudgetBurst] (10).
func WithBurst(n int) BudgetOption {
	return budgetOptionFunc(func(c *budgetConfig) {
		if n < 1 || n > maxBurst {
			c.fault("WithBurst(%d): must be in 1..%d", n, maxBurst)
		}
		c.burst = n
	})
}

// ValidateBudget reports whether opts are valid options for [NewBudget],
// without panicking: nil if they are, otherwise an error that names every
// bad option, with the faults NewBudget would panic with. Use it for
// options read from configuration, as [Validate] is used for [New].
func ValidateBudget(opts ...BudgetOption) error {
	if _, err := newBudgetConfig(opts); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	return nil
}

// NewBudget returns a full budget. It panics on invalid options (a nil
// option among them), naming every invalid one, as [New] does; check
// options read from configuration with [ValidateBudget] first.
func NewBudget(opts ...BudgetOption) *Budget {
	c, err := newBudgetConfig(opts)
	if err != nil {
		panic(fmt.Sprintf("retry: NewBudget: %v", err))
	}
	b := &Budget{
		deposit:  deposit(c.ratio),
		capacity: int64(c.burst) * milli,
	}
	if c.minPerSec > 0 {
		b.floor = rate.NewLimiter(rate.Limit(c.minPerSec), max(1, int(min(c.minPerSec, maxBurst))))
	}
	b.balance.Store(b.capacity)
	return b
}

// deposit returns ratio in milli-retries, rounded down: the largest
// k/milli that is not above ratio, so that the bound in Budget's doc holds
// for the ratio given. A ratio of three decimals, such as 0.57 (whose
// float64 is a hair under 0.57), is kept exactly.
func deposit(ratio float64) int64 {
	k := math.Round(ratio * milli)
	if k/milli > ratio {
		k--
	}
	return int64(k)
}

// recordAttempt deposits for a first attempt. A full budget is only read,
// so healthy traffic does not contend on it.
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
	// Compare-and-swap rather than subtract and undo: the balance stays
	// within 0..capacity at every moment (an undo after a concurrent
	// deposit could take it past capacity), which the bound in Budget's
	// doc relies on.
	for {
		cur := b.balance.Load()
		if cur < milli {
			return b.floor != nil && b.floor.Allow()
		}
		if b.balance.CompareAndSwap(cur, cur-milli) {
			return true
		}
	}
}

// Available returns how many retries the balance could pay for now, from
// 0 to the burst (the floor of [WithMinRetriesPerSecond] aside).
func (b *Budget) Available() float64 {
	return float64(max(b.balance.Load(), 0)) / milli
}
