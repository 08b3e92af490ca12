package retry_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/retry"
)

// panicOf returns what f panics with, as a string, or "" if it returns.
func panicOf(f func()) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			msg = fmt.Sprint(v)
		}
	}()
	f()
	return ""
}

func noRetryHook(context.Context, int, error, time.Duration) {}

// TestInvalidOptions walks the options New, Validate and NewTransport
// reject: each fault names its option, and every fault is listed at once.
func TestInvalidOptions(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		opts []retry.Option
		want []string // every fault, each naming its option
	}{
		{"nil option", []retry.Option{nil}, []string{"opts[0] is nil"}},
		{"nil option among good ones", []retry.Option{retry.WithMaxAttempts(2), nil, retry.WithName("x")}, []string{"opts[1] is nil"}},
		{"no attempts", []retry.Option{retry.WithMaxAttempts(0)}, []string{"WithMaxAttempts(0): must be at least 1"}},
		{"negative attempts", []retry.Option{retry.WithMaxAttempts(-1)}, []string{"WithMaxAttempts(-1)"}},
		{"negative elapsed time", []retry.Option{retry.WithMaxElapsedTime(-time.Second)}, []string{"WithMaxElapsedTime(-1s): must not be negative"}},
		{"zero backoff", []retry.Option{retry.WithBackoff(retry.Backoff{})}, []string{"WithBackoff(Backoff{}): use Constant, Linear or Exponential"}},
		{"negative constant", []retry.Option{retry.WithBackoff(retry.Constant(-time.Second))}, []string{"WithBackoff(Constant(-1s)): durations must not be negative"}},
		{"negative linear step", []retry.Option{retry.WithBackoff(retry.Linear(time.Second, -time.Second, time.Minute))}, []string{"WithBackoff(Linear(1s, -1s, 1m0s)): durations must not be negative"}},
		{"linear max below initial", []retry.Option{retry.WithBackoff(retry.Linear(time.Minute, time.Second, time.Second))}, []string{"WithBackoff(Linear(1m0s, 1s, 1s)): the maximum must be at least the initial wait"}},
		{"negative exponential max", []retry.Option{retry.WithBackoff(retry.Exponential(time.Second, 2, -time.Second))}, []string{"WithBackoff(Exponential(1s, 2, -1s)): durations must not be negative"}},
		{"exponential from 0", []retry.Option{retry.WithBackoff(retry.Exponential(0, 2, time.Minute))}, []string{"WithBackoff(Exponential(0s, 2, 1m0s)): the initial wait must be positive"}},
		{"shrinking multiplier", []retry.Option{retry.WithBackoff(retry.Exponential(time.Second, 0.5, time.Minute))}, []string{"WithBackoff(Exponential(1s, 0.5, 1m0s)): the multiplier must be at least 1 and finite"}},
		{"NaN multiplier", []retry.Option{retry.WithBackoff(retry.Exponential(time.Second, nan, time.Minute))}, []string{"WithBackoff(Exponential(1s, NaN, 1m0s)): the multiplier"}},
		{"infinite multiplier", []retry.Option{retry.WithBackoff(retry.Exponential(time.Second, inf, time.Minute))}, []string{"WithBackoff(Exponential(1s, +Inf, 1m0s)): the multiplier"}},
		{"unknown jitter", []retry.Option{retry.WithJitter(retry.Jitter(4))}, []string{"WithJitter(Jitter(4)): unknown jitter"}},
		{"nil predicate", []retry.Option{retry.WithRetryIf(nil)}, []string{"WithRetryIf(nil): predicate must not be nil"}},
		{"nil hook", []retry.Option{retry.WithOnRetry(nil)}, []string{"WithOnRetry(nil): hook must not be nil"}},
		{"nil budget", []retry.Option{retry.WithBudget(nil)}, []string{"WithBudget(nil): budget must not be nil"}},
		{"a bad option overridden by a good one", []retry.Option{retry.WithMaxAttempts(0), retry.WithMaxAttempts(3)}, []string{"WithMaxAttempts(0)"}},
		{"every fault at once", []retry.Option{
			retry.WithMaxAttempts(0), nil, retry.WithMaxElapsedTime(-time.Second), retry.WithBackoff(retry.Backoff{}),
			retry.WithJitter(retry.Jitter(9)), retry.WithRetryIf(nil), retry.WithOnRetry(nil), retry.WithBudget(nil),
		}, []string{
			"WithMaxAttempts(0)", "opts[1] is nil", "WithMaxElapsedTime(-1s)", "WithBackoff(Backoff{})",
			"WithJitter(Jitter(9))", "WithRetryIf(nil)", "WithOnRetry(nil)", "WithBudget(nil)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := retry.Validate(tt.opts...)
			require.Error(t, err, "Validate() = nil; want an error")
			faults := strings.TrimPrefix(err.Error(), "retry: ")
			require.NotEqual(t, err.Error(), faults, "Validate() = %q; want the package prefix", err)
			assert.Len(t, strings.Split(faults, "\n"), len(tt.want), "Validate() = %q; want one line per fault", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w, "Validate() = %q; want it to name %q", err, w)
			}

			assert.Equal(t, "retry: New: "+faults, panicOf(func() { retry.New(tt.opts...) }),
				"New panics with the faults Validate returns")

			topts := make([]retry.TransportOption, len(tt.opts))
			for i, o := range tt.opts {
				if o != nil {
					topts[i] = o
				}
			}
			assert.Equal(t, "retry: NewTransport: "+faults, panicOf(func() { retry.NewTransport(nil, topts...) }),
				"NewTransport panics with the retrier's faults")
		})
	}
}

// TestValidOptionEdges walks the edge values the options' docs accept:
// they must not be rejected.
func TestValidOptionEdges(t *testing.T) {
	tests := []struct {
		name string
		opts []retry.Option
	}{
		{"none", nil},
		{"one attempt", []retry.Option{retry.WithMaxAttempts(1)}},
		{"no elapsed-time bound", []retry.Option{retry.WithMaxElapsedTime(0)}},
		{"no wait", []retry.Option{retry.WithBackoff(retry.Constant(0))}},
		{"linear from 0", []retry.Option{retry.WithBackoff(retry.Linear(0, 0, 0))}},
		{"exponential that stays put", []retry.Option{retry.WithBackoff(retry.Exponential(time.Nanosecond, 1, time.Nanosecond))}},
		{"longest constant", []retry.Option{retry.WithBackoff(retry.Constant(math.MaxInt64))}},
		{"every jitter", []retry.Option{retry.WithJitter(retry.NoJitter), retry.WithJitter(retry.EqualJitter), retry.WithJitter(retry.DecorrelatedJitter), retry.WithJitter(retry.FullJitter)}},
		{"nil providers mean the global ones", []retry.Option{retry.WithTracerProvider(nil), retry.WithMeterProvider(nil)}},
		{"empty name", []retry.Option{retry.WithName("")}},
		{"functions", []retry.Option{retry.WithRetryIf(func(error) bool { return true }), retry.WithOnRetry(noRetryHook), retry.WithBudget(retry.NewBudget())}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, retry.Validate(tt.opts...))
			assert.NotNil(t, retry.New(tt.opts...))
		})
	}
}

func TestInvalidTransportOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []retry.TransportOption
		want []string
	}{
		{"nil option", []retry.TransportOption{nil}, []string{"opts[0] is nil"}},
		{"nil status predicate", []retry.TransportOption{retry.WithRetryStatus(nil)}, []string{"WithRetryStatus(nil): function must not be nil"}},
		{"negative max Retry-After", []retry.TransportOption{retry.WithMaxRetryAfter(-time.Second)}, []string{"WithMaxRetryAfter(-1s): must not be negative"}},
		{"transport and retrier faults at once", []retry.TransportOption{
			retry.WithAnyMethod(), nil, retry.WithRetryStatus(nil), retry.WithMaxAttempts(0), retry.WithMaxRetryAfter(-time.Second), retry.WithOnRetry(nil),
		}, []string{"opts[1] is nil", "WithRetryStatus(nil)", "WithMaxRetryAfter(-1s)", "WithMaxAttempts(0)", "WithOnRetry(nil)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := panicOf(func() { retry.NewTransport(http.DefaultTransport, tt.opts...) })
			require.True(t, strings.HasPrefix(msg, "retry: NewTransport: "), "NewTransport() panicked with %q; want the prefix", msg)
			assert.Len(t, strings.Split(msg, "\n"), len(tt.want), "NewTransport() panicked with %q; want one line per fault", msg)
			for _, w := range tt.want {
				assert.Contains(t, msg, w, "NewTransport() panicked with %q; want it to name %q", msg, w)
			}
		})
	}
}

func TestInvalidBudgetOptions(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		opts []retry.BudgetOption
		want []string
	}{
		{"nil option", []retry.BudgetOption{retry.WithBurst(2), nil}, []string{"opts[1] is nil"}},
		{"ratio above 1", []retry.BudgetOption{retry.WithRatio(1.5)}, []string{"WithRatio(1.5): must be between 0 and 1"}},
		{"negative ratio", []retry.BudgetOption{retry.WithRatio(-0.1)}, []string{"WithRatio(-0.1)"}},
		{"NaN ratio", []retry.BudgetOption{retry.WithRatio(nan)}, []string{"WithRatio(NaN)"}},
		{"infinite ratio", []retry.BudgetOption{retry.WithRatio(inf)}, []string{"WithRatio(+Inf)"}},
		{"negative floor", []retry.BudgetOption{retry.WithMinRetriesPerSecond(-1)}, []string{"WithMinRetriesPerSecond(-1): must be a finite number, at least 0"}},
		{"NaN floor", []retry.BudgetOption{retry.WithMinRetriesPerSecond(nan)}, []string{"WithMinRetriesPerSecond(NaN)"}},
		{"infinite floor", []retry.BudgetOption{retry.WithMinRetriesPerSecond(inf)}, []string{"WithMinRetriesPerSecond(+Inf)"}},
		{"no burst", []retry.BudgetOption{retry.WithBurst(0)}, []string{"WithBurst(0): must be in 1..1000000000"}},
		{"negative burst", []retry.BudgetOption{retry.WithBurst(-1)}, []string{"WithBurst(-1)"}},
		{"burst past the maximum", []retry.BudgetOption{retry.WithBurst(math.MaxInt)}, []string{fmt.Sprintf("WithBurst(%d)", math.MaxInt)}},
		{"every fault at once", []retry.BudgetOption{nil, retry.WithRatio(2), retry.WithMinRetriesPerSecond(nan), retry.WithBurst(0)},
			[]string{"opts[0] is nil", "WithRatio(2)", "WithMinRetriesPerSecond(NaN)", "WithBurst(0)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := retry.ValidateBudget(tt.opts...)
			require.Error(t, err, "ValidateBudget() = nil; want an error")
			faults := strings.TrimPrefix(err.Error(), "retry: ")
			assert.Len(t, strings.Split(faults, "\n"), len(tt.want), "ValidateBudget() = %q; want one line per fault", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w, "ValidateBudget() = %q; want it to name %q", err, w)
			}
			assert.Equal(t, "retry: NewBudget: "+faults, panicOf(func() { retry.NewBudget(tt.opts...) }),
				"NewBudget panics with the faults ValidateBudget returns")
		})
	}
}

func TestValidBudgetEdges(t *testing.T) {
	for _, opts := range [][]retry.BudgetOption{
		nil,
		{retry.WithRatio(0), retry.WithMinRetriesPerSecond(0), retry.WithBurst(1)},
		{retry.WithRatio(1), retry.WithBurst(1_000_000_000)},
		{retry.WithMinRetriesPerSecond(0.5)},
		{retry.WithMinRetriesPerSecond(1e300)}, // finite: a floor that never binds
	} {
		require.NoError(t, retry.ValidateBudget(opts...))
		b := retry.NewBudget(opts...)
		r := retry.New(retry.WithBudget(b), retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(2))
		assert.ErrorIs(t, r.Do(context.Background(), func(context.Context) error { return errBoom }), retry.ErrExhausted,
			"a full budget pays for the first retry")
	}
}

// TestBadCallsReturnErrors protects callers from nil-pointer panics at call
// time: a nil operation or a nil Retrier is an error, and nothing is
// called or counted.
func TestBadCallsReturnErrors(t *testing.T) {
	tel := telemetrytest.New(t)
	r := retry.New(retry.WithMeterProvider(tel.MeterProvider), retry.WithTracerProvider(tel.TracerProvider))
	var nilRetrier *retry.Retrier
	called := false
	fn := func(context.Context) error { called = true; return nil }
	fnT := func(context.Context) (int, error) { called = true; return 1, nil }
	ctx := context.Background()

	tests := []struct {
		name string
		call func() error
		want error
		typ  string
	}{
		{"Retrier.Do(nil)", func() error { return r.Do(ctx, nil) }, retry.ErrNilFunc, "retry.nil_function"},
		{"Do(r, nil)", func() error { _, err := retry.Do[int](ctx, r, nil); return err }, retry.ErrNilFunc, "retry.nil_function"},
		{"nil Retrier", func() error { return nilRetrier.Do(ctx, fn) }, retry.ErrNilRetrier, "retry.nil_retrier"},
		{"zero Retrier", func() error { return new(retry.Retrier).Do(ctx, fn) }, retry.ErrNilRetrier, "retry.nil_retrier"},
		{"Do(nil Retrier, fn)", func() error { _, err := retry.Do(ctx, nilRetrier, fnT); return err }, retry.ErrNilRetrier, "retry.nil_retrier"},
		{"Do(nil Retrier, nil)", func() error { _, err := retry.Do[int](ctx, nil, nil); return err }, retry.ErrNilRetrier, "retry.nil_retrier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.ErrorIs(t, err, tt.want)
			var typed interface{ ErrorType() string }
			require.ErrorAs(t, err, &typed)
			assert.Equal(t, tt.typ, typed.ErrorType())
			assert.True(t, strings.HasPrefix(err.Error(), "retry: "), "error = %q; want the package prefix", err)
			assert.False(t, called, "nothing is called")
		})
	}
	assert.False(t, tel.HasMetric(t, "retry.calls"), "nothing is counted")
	assert.False(t, tel.HasMetric(t, "retry.attempts"), "nothing is counted")
}

// TestExtremeWaitsDoNotOverflow protects the backoffs and jitters against
// durations near the largest one: no panic, no negative or shrunken wait.
func TestExtremeWaitsDoNotOverflow(t *testing.T) {
	const longest = time.Duration(math.MaxInt64)
	// firstWaits returns the waits announced before the first n retries.
	// The context is cancelled before the wait after the last, or before
	// any wait of more than a day, which would end after the test.
	firstWaits := func(t *testing.T, n int, opts ...retry.Option) []time.Duration {
		var got []time.Duration
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := retry.New(append(opts, retry.WithMaxAttempts(n+1), retry.WithOnRetry(func(_ context.Context, attempt int, _ error, d time.Duration) {
				got = append(got, d)
				if attempt == n || d > 24*time.Hour {
					cancel()
				}
			}))...)
			err := r.Do(ctx, func(context.Context) error { return errBoom })
			require.ErrorIs(t, err, context.Canceled)
		})
		return got
	}

	t.Run("full jitter of the longest wait", func(t *testing.T) {
		waits := firstWaits(t, 1, retry.WithBackoff(retry.Constant(longest)))
		require.Len(t, waits, 1)
		assert.GreaterOrEqual(t, waits[0], time.Duration(0))
	})
	t.Run("linear step past the maximum", func(t *testing.T) {
		waits := firstWaits(t, 3, retry.WithBackoff(retry.Linear(time.Hour, longest, longest)), retry.WithJitter(retry.NoJitter))
		assert.Equal(t, []time.Duration{time.Hour, longest}, waits, "1h, then 1h plus the step, capped at the maximum")
	})
	t.Run("decorrelated jitter near the maximum", func(t *testing.T) {
		// The first wait is drawn between the initial wait and three times
		// it, capped at the maximum: longest/2 exactly has a chance of 2⁻⁶²,
		// but is what an overflowing three times gave every time.
		waits := firstWaits(t, 1, retry.WithBackoff(retry.Linear(longest/2, 0, longest)), retry.WithJitter(retry.DecorrelatedJitter))
		require.Len(t, waits, 1)
		assert.Greater(t, waits[0], longest/2)
	})
}

// TestValidateUnwrapsToEachFault makes Validate's faults usable one by one.
func TestValidateUnwrapsToEachFault(t *testing.T) {
	err := retry.Validate(retry.WithMaxAttempts(0), retry.WithJitter(retry.Jitter(7)))
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined), "Validate() = %v; want the faults joined", err)
	assert.Len(t, joined.Unwrap(), 2)
}
