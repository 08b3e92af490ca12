package retry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of a Retrier built with no options.
const (
	DefaultMaxAttempts = 3
	DefaultInitial     = 100 * time.Millisecond
	DefaultMultiplier  = 2.0
	DefaultMaxDelay    = 10 * time.Second
)

// Option configures a [Retrier]. Options passed to [NewTransport] configure
// its retrier.
type Option interface {
	TransportOption
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config)                   { f(c) }
func (f optionFunc) applyTransport(t *transportConfig) { t.retrier = append(t.retrier, f) }

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
}

func defaultConfig() config {
	return config{
		maxAttempts: DefaultMaxAttempts,
		backoff:     Exponential(DefaultInitial, DefaultMultiplier, DefaultMaxDelay),
		jitter:      FullJitter,
	}
}

func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.maxAttempts < 1 {
		bad("WithMaxAttempts(%d): must be at least 1", c.maxAttempts)
	}
	if c.maxElapsed < 0 {
		bad("WithMaxElapsedTime(%v): must not be negative", c.maxElapsed)
	}
	b := c.backoff
	switch {
	case b.kind == kindNone:
		bad("WithBackoff(%v): use Constant, Linear or Exponential", b)
	case b.initial < 0 || b.step < 0 || b.max < 0:
		bad("WithBackoff(%v): durations must not be negative", b)
	case b.kind != kindConstant && b.max < b.initial:
		bad("WithBackoff(%v): the maximum must be at least the initial wait", b)
	case b.kind == kindExponential && b.initial == 0:
		bad("WithBackoff(%v): the initial wait must be positive; 0 never grows (use Constant(0) for no wait)", b)
	case b.kind == kindExponential && b.multiplier < 1:
		bad("WithBackoff(%v): the multiplier must be at least 1", b)
	}
	if c.jitter > DecorrelatedJitter {
		bad("WithJitter(%v): unknown jitter", c.jitter)
	}
	return errors.Join(errs...)
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
	return optionFunc(func(c *config) { c.maxAttempts = n })
}

// WithMaxElapsedTime bounds the time from the start of the first attempt to
// the start of the last: the retrier gives up rather than wait past it. The
// default, 0, sets no bound besides the context's deadline, which is always
// respected. Setting it costs a clock read on every call.
func WithMaxElapsedTime(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxElapsed = d })
}

// WithBackoff sets the waits between attempts, before jitter. The default
// is Exponential(100ms, 2, 10s).
func WithBackoff(b Backoff) Option {
	return optionFunc(func(c *config) { c.backoff = b })
}

// WithJitter sets how the waits are randomised. The default is
// [FullJitter].
func WithJitter(j Jitter) Option {
	return optionFunc(func(c *config) { c.jitter = j })
}

// WithRetryIf sets which errors are worth retrying; the retrier gives up at
// once on an error for which f returns false. The default retries every
// error except those marked with [Permanent], rejections by an open or
// saturated circuit breaker (circuitbreaker.ErrOpen, ErrTooManyRequests),
// and the context's own error once it is done; f is asked only about the
// errors the default would retry.
func WithRetryIf(f func(err error) bool) Option {
	return optionFunc(func(c *config) { c.retryIf = f })
}

// WithOnRetry registers f to be called before each wait, with the number of
// the attempt that failed (1 for the first), its error and the wait before
// the next attempt. f runs on the caller's goroutine.
func WithOnRetry(f func(ctx context.Context, attempt int, err error, delay time.Duration)) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.onRetry = append(c.onRetry, f)
		}
	})
}

// WithBudget makes retries spend from b, shared with other retriers, so that
// retries stay a bounded fraction of the traffic during an outage. With an
// exhausted budget the retrier gives up at once with [ErrBudgetExhausted].
// The default is no budget.
func WithBudget(b *Budget) Option {
	return optionFunc(func(c *config) { c.budget = b })
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
