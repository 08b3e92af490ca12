package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of a Retrier built with no options.
const (
	// DefaultMaxAttempts is how many times the operation is called at
	// most: the first attempt and two retries.
	DefaultMaxAttempts = 3
	// DefaultInitial is the default backoff's wait before the first retry,
	// before jitter.
	DefaultInitial = 100 * time.Millisecond
	// DefaultMultiplier is how much the default backoff's wait grows after
	// each retry.
	DefaultMultiplier = 2.0
	// DefaultMaxDelay is the default backoff's longest wait, before jitter.
	// With the default 3 attempts it is not reached: the two waits are at
	// most 100ms and 200ms.
	DefaultMaxDelay = 10 * time.Second
)

// Option configures a [Retrier]. Options passed to [NewTransport] configure
// its retrier.
type Option interface {
	TransportOption
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }
func (f optionFunc) applyTransport(t *transportConfig) {
	t.retrier = append(t.retrier, f)
	// Applied to a scratch config too, so that NewTransport lists the
	// faults of transport and retrier options in the order given.
	n := len(t.check.errs)
	f(&t.check)
	t.errs = append(t.errs, t.check.errs[n:]...)
}

type config struct {
	name           string
	maxAttempts    int
	maxElapsed     time.Duration
	backoff        Backoff
	jitter         Jitter
	retryIf        func(error) bool
	onRetry        []func(ctx context.Context, attempt int, err error, delay time.Duration)
	budget         *Budget
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	errs           []error // bad options, reported by New and Validate
}

func defaultConfig() config {
	return config{
		maxAttempts: DefaultMaxAttempts,
		backoff:     Exponential(DefaultInitial, DefaultMultiplier, DefaultMaxDelay),
		jitter:      FullJitter,
	}
}

// fault records a bad option. Options check their own arguments as they
// are applied, so that every bad one is named, even one overridden by a
// later option.
func (c *config) fault(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// newConfig applies opts to the defaults and reports every bad option at
// once (nil when all are good).
func newConfig(opts []Option) (config, error) {
	c := defaultConfig()
	for i, o := range opts {
		if o == nil {
			c.fault("opts[%d] is nil", i)
			continue
		}
		o.apply(&c)
	}
	return c, errors.Join(c.errs...)
}

// Validate reports whether opts are valid options for [New], without
// building a retrier and without panicking: nil if they are, otherwise an
// error that names every bad option, with the faults New would panic with.
//
// Use it where the options' values come from configuration rather than
// code (a file, flags, the environment), to report a bad setting as an
// error before calling New. [NewTransport] accepts the same options and
// rejects the same values; [ValidateBudget] does the same for [NewBudget].
func Validate(opts ...Option) error {
	if _, err := newConfig(opts); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	return nil
}

// WithName names the retrier in its telemetry: the retry.name attribute of
// its metrics and span. The default is no name (the attribute is empty).
func WithName(name string) Option {
	return optionFunc(func(c *config) { c.name = name })
}

// WithMaxAttempts sets how many times, at most, the operation is called:
// the first attempt and up to n-1 retries. n must be at least 1 (1 turns
// retries off). The default is [DefaultMaxAttempts] (3).
func WithMaxAttempts(n int) Option {
	return optionFunc(func(c *config) {
		if n < 1 {
			c.fault("WithMaxAttempts(%d): must be at least 1", n)
		}
		c.maxAttempts = n
	})
}

// WithMaxElapsedTime bounds the time from the start of the first attempt to
// the start of the last: the retrier gives up rather than wait past it. d
// must not be negative. The default, 0, sets no bound besides the
// context's deadline, which is always respected. Setting it costs a clock
// read on every call.
func WithMaxElapsedTime(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d < 0 {
			c.fault("WithMaxElapsedTime(%v): must not be negative", d)
		}
		c.maxElapsed = d
	})
}

// WithBackoff sets the waits between attempts, before jitter: a [Constant],
// [Linear] or [Exponential] backoff whose arguments those functions accept
// (the zero Backoff is rejected). The default is Exponential(100ms, 2, 10s).
func WithBackoff(b Backoff) Option {
	return optionFunc(func(c *config) {
		if err := b.check(); err != "" {
			c.fault("WithBackoff(%v): %s", b, err)
		}
		c.backoff = b
	})
}

// check returns what is wrong with b, or "".
func (b Backoff) check() string {
	switch {
	case b.kind == kindNone:
		return "use Constant, Linear or Exponential"
	case b.initial < 0 || b.step < 0 || b.max < 0:
		return "durations must not be negative"
	case b.kind != kindConstant && b.max < b.initial:
		return "the maximum must be at least the initial wait"
	case b.kind == kindExponential && b.initial == 0:
		return "the initial wait must be positive; 0 never grows (use Constant(0) for no wait)"
	case b.kind == kindExponential && !(b.multiplier >= 1 && !math.IsInf(b.multiplier, 1)):
		return "the multiplier must be at least 1 and finite"
	}
	return ""
}

// WithJitter sets how the waits are randomised: [FullJitter], [NoJitter],
// [EqualJitter] or [DecorrelatedJitter]; other values are rejected. The
// default is FullJitter.
func WithJitter(j Jitter) Option {
	return optionFunc(func(c *config) {
		if j > DecorrelatedJitter {
			c.fault("WithJitter(%v): unknown jitter", j)
		}
		c.jitter = j
	})
}

// WithRetryIf sets which errors are worth retrying; the retrier gives up at
// once on an error for which f returns false. f must not be nil. The
// default retries every error except those marked with [Permanent],
// rejections by an open or saturated circuit breaker
// ([circuitbreaker.ErrOpen], [circuitbreaker.ErrTooManyRequests]), and the
// context's own
// error once it is done; f is asked only about the errors the default
// would retry.
func WithRetryIf(f func(err error) bool) Option {
	return optionFunc(func(c *config) {
		if f == nil {
			c.fault("WithRetryIf(nil): predicate must not be nil")
		}
		c.retryIf = f
	})
}

// WithOnRetry registers f to be called before each wait, with the number of
// the attempt that failed (1 for the first), its error and the wait before
// the next attempt. f runs on the caller's goroutine and must not be nil.
// Each WithOnRetry adds a hook, called in the order given; by default there
// is none.
func WithOnRetry(f func(ctx context.Context, attempt int, err error, delay time.Duration)) Option {
	return optionFunc(func(c *config) {
		if f == nil {
			c.fault("WithOnRetry(nil): hook must not be nil")
			return
		}
		c.onRetry = append(c.onRetry, f)
	})
}

// WithBudget makes retries spend from b, shared with other retriers, so that
// retries stay bounded during an outage (see [Budget] for the bound). b
// must not be nil. With an exhausted budget the retrier gives up at once
// with [ErrBudgetExhausted]. The default is no budget.
func WithBudget(b *Budget) Option {
	return optionFunc(func(c *config) {
		if b == nil {
			c.fault("WithBudget(nil): budget must not be nil (leave the option out for no budget)")
		}
		c.budget = b
	})
}

// WithTracerProvider sets where the retry span goes. The default, also used
// when tp is nil, is the global provider at the time of New.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets where the retrier's metrics go. The default, also
// used when mp is nil, is the global provider at the time of New.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
