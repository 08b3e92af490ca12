package retry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/retry"
)

var errBoom = errors.New("boom")

// failing returns an operation that fails n times with err, then succeeds,
// and counts its calls.
func failing(n int, err error) (func(context.Context) error, *atomic.Int32) {
	var calls atomic.Int32
	return func(context.Context) error {
		if int(calls.Add(1)) <= n {
			return err
		}
		return nil
	}, &calls
}

// delaysOf records the waits a retrier announces.
func delaysOf(got *[]time.Duration) retry.Option {
	return retry.WithOnRetry(func(_ context.Context, _ int, _ error, d time.Duration) { *got = append(*got, d) })
}

func TestBackoffWaits(t *testing.T) {
	tests := []struct {
		name string
		b    retry.Backoff
		want []time.Duration
	}{
		{"constant", retry.Constant(time.Second), []time.Duration{time.Second, time.Second, time.Second, time.Second}},
		{"linear", retry.Linear(time.Second, 2*time.Second, 6*time.Second), []time.Duration{time.Second, 3 * time.Second, 5 * time.Second, 6 * time.Second}},
		{"linear from 0", retry.Linear(0, time.Second, 2*time.Second), []time.Duration{0, time.Second, 2 * time.Second, 2 * time.Second}},
		{"exponential", retry.Exponential(100*time.Millisecond, 3, time.Second), []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var got []time.Duration
				r := retry.New(retry.WithBackoff(tt.b), retry.WithJitter(retry.NoJitter), retry.WithMaxAttempts(5), delaysOf(&got))
				op, calls := failing(10, errBoom)
				start := time.Now()
				err := r.Do(context.Background(), op)
				require.ErrorIs(t, err, retry.ErrExhausted)
				assert.Equal(t, tt.want, got)
				var total time.Duration
				for _, d := range tt.want {
					total += d
				}
				assert.Equal(t, total, time.Since(start), "the waits are slept, and none after the last attempt")
				assert.Equal(t, int32(5), calls.Load())
			})
		})
	}
}

func TestJitter(t *testing.T) {
	b := retry.Exponential(100*time.Millisecond, 2, 800*time.Millisecond)
	base := []time.Duration{100, 200, 400, 800, 800, 800}
	for i := range base {
		base[i] *= time.Millisecond
	}
	tests := []struct {
		jitter retry.Jitter
		check  func(t *testing.T, got []time.Duration)
	}{
		{retry.FullJitter, func(t *testing.T, got []time.Duration) {
			for i, d := range got {
				assert.True(t, d >= 0 && d <= base[i], "full jitter wait %d = %v; want in [0, %v]", i, d, base[i])
			}
		}},
		{retry.EqualJitter, func(t *testing.T, got []time.Duration) {
			for i, d := range got {
				assert.True(t, d >= base[i]/2 && d <= base[i], "equal jitter wait %d = %v; want in [%v, %v]", i, d, base[i]/2, base[i])
			}
		}},
		{retry.DecorrelatedJitter, func(t *testing.T, got []time.Duration) {
			prev := 100 * time.Millisecond
			for i, d := range got {
				hi := min(3*prev, 800*time.Millisecond)
				assert.True(t, d >= 100*time.Millisecond && d <= hi, "decorrelated wait %d = %v; want in [100ms, %v]", i, d, hi)
				prev = d
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.jitter.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				distinct := map[time.Duration]bool{}
				for range 50 {
					var got []time.Duration
					r := retry.New(retry.WithBackoff(b), retry.WithJitter(tt.jitter), retry.WithMaxAttempts(len(base)+1), delaysOf(&got))
					op, _ := failing(100, errBoom)
					_ = r.Do(context.Background(), op)
					require.Len(t, got, len(base))
					tt.check(t, got)
					for _, d := range got {
						distinct[d] = true
					}
				}
				assert.Greater(t, len(distinct), 100, "jitter must spread the waits")
			})
		})
	}
}

// A decorrelated sequence whose first wait is 0 must still grow: its upper
// bound follows the backoff's own wait when three times the previous is 0.
func TestDecorrelatedJitterFromZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []time.Duration
		r := retry.New(retry.WithBackoff(retry.Linear(0, 100*time.Millisecond, time.Second)),
			retry.WithJitter(retry.DecorrelatedJitter), retry.WithMaxAttempts(30), delaysOf(&got))
		op, _ := failing(100, errBoom)
		_ = r.Do(context.Background(), op)
		require.Len(t, got, 29)
		var nonZero int
		for _, d := range got {
			assert.LessOrEqual(t, d, time.Second)
			if d > 0 {
				nonZero++
			}
		}
		assert.Greater(t, nonZero, 20, "waits %v", got)
	})
}

func TestMaxAttempts(t *testing.T) {
	for _, n := range []int{1, 2, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				op, calls := failing(100, errBoom)
				err := retry.New(retry.WithMaxAttempts(n)).Do(context.Background(), op)
				var e *retry.Error
				require.ErrorAs(t, err, &e)
				assert.Equal(t, n, e.Attempts)
				assert.Equal(t, int32(n), calls.Load())
				assert.Equal(t, retry.ErrExhausted, e.Reason)
			})
		})
	}
}

func TestSucceedsAfterFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		op, calls := failing(2, errBoom)
		require.NoError(t, retry.New().Do(context.Background(), op))
		assert.Equal(t, int32(3), calls.Load())
	})
}

func TestMaxElapsedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := retry.New(retry.WithBackoff(retry.Constant(time.Second)), retry.WithJitter(retry.NoJitter),
			retry.WithMaxAttempts(100), retry.WithMaxElapsedTime(3500*time.Millisecond))
		op, calls := failing(100, errBoom)
		start := time.Now()
		err := r.Do(context.Background(), op)
		require.ErrorIs(t, err, retry.ErrExhausted)
		assert.Equal(t, int32(4), calls.Load(), "attempts at 0s, 1s, 2s and 3s; one at 4s would pass 3.5s")
		assert.Equal(t, 3*time.Second, time.Since(start), "no wait that would pass the limit")
	})
}

func TestContextDeadlineIsNotOverrun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := retry.New(retry.WithBackoff(retry.Constant(time.Second)), retry.WithJitter(retry.NoJitter), retry.WithMaxAttempts(100))
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		op, calls := failing(100, errBoom)
		start := time.Now()
		err := r.Do(ctx, op)
		require.ErrorIs(t, err, retry.ErrExhausted)
		require.ErrorIs(t, err, errBoom)
		assert.Equal(t, int32(3), calls.Load())
		assert.Equal(t, 2*time.Second, time.Since(start), "gives up at once rather than sleep past the deadline")
	})
}

func TestCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := retry.New(retry.WithBackoff(retry.Constant(time.Hour)), retry.WithJitter(retry.NoJitter))
		ctx, cancel := context.WithCancel(context.Background())
		op, calls := failing(100, errBoom)
		go func() {
			time.Sleep(time.Minute)
			cancel()
		}()
		start := time.Now()
		err := r.Do(ctx, op)
		assert.Equal(t, time.Minute, time.Since(start), "Do returns as soon as the context is done")
		require.ErrorIs(t, err, context.Canceled, "the context's error")
		require.ErrorIs(t, err, errBoom, "and the last attempt's")
		assert.Equal(t, int32(1), calls.Load())
		assert.Equal(t, "retry: context canceled after 1 attempt: boom", err.Error())
	})
}

func TestCancelledByTheOperation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls int
	err := retry.New().Do(ctx, func(ctx context.Context) error {
		calls++
		cancel()
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, calls, "no retry once the caller's context is done")
}

func TestNotRetried(t *testing.T) {
	errBad := errors.New("bad request")
	tests := []struct {
		name string
		err  error
		opts []retry.Option
		want error
	}{
		{"permanent", retry.Permanent(errBad), nil, errBad},
		{"wrapped permanent", fmt.Errorf("call: %w", retry.Permanent(errBad)), nil, errBad},
		{"retry-if", errBad, []retry.Option{retry.WithRetryIf(func(err error) bool { return !errors.Is(err, errBad) })}, errBad},
		{"breaker open", fmt.Errorf("dep: %w", circuitbreaker.ErrOpen), nil, circuitbreaker.ErrOpen},
		{"breaker saturated", circuitbreaker.ErrTooManyRequests, nil, circuitbreaker.ErrTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int
			err := retry.New(tt.opts...).Do(context.Background(), func(context.Context) error { calls++; return tt.err })
			assert.Equal(t, 1, calls)
			var e *retry.Error
			require.ErrorAs(t, err, &e)
			assert.Nil(t, e.Reason)
			assert.NotErrorIs(t, err, retry.ErrExhausted)
			assert.ErrorIs(t, err, tt.want)
		})
	}
	assert.Nil(t, retry.Permanent(nil))
	assert.Nil(t, retry.After(time.Second, nil))
}

func TestPermanentIsUnwrappedInTheError(t *testing.T) {
	errBad := errors.New("bad")
	err := retry.New().Do(context.Background(), func(context.Context) error { return retry.Permanent(errBad) })
	var e *retry.Error
	require.ErrorAs(t, err, &e)
	assert.Same(t, errBad, e.Last)
	assert.Equal(t, "retry: not retryable after 1 attempt: bad", err.Error())
}

func TestAfterSetsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []time.Duration
		r := retry.New(delaysOf(&got), retry.WithBackoff(retry.Constant(time.Millisecond)), retry.WithJitter(retry.NoJitter))
		var calls int
		start := time.Now()
		err := r.Do(context.Background(), func(context.Context) error {
			calls++
			if calls == 1 {
				return retry.After(7*time.Second, errBoom)
			}
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{7 * time.Second}, got)
		assert.Equal(t, 7*time.Second, time.Since(start))
	})
}

func TestAfterPastTheDeadlineGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := retry.New().Do(ctx, func(context.Context) error { return retry.After(time.Minute, errBoom) })
		require.ErrorIs(t, err, retry.ErrExhausted)
		assert.Zero(t, time.Since(start))
	})
}

func TestErrorKeepsEveryCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errs := []error{errors.New("first"), errors.New("second"), errors.New("third")}
		var calls int
		err := retry.New().Do(context.Background(), func(context.Context) error { calls++; return errs[calls-1] })
		var e *retry.Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, 3, e.Attempts)
		assert.Same(t, errs[2], e.Last)
		for _, want := range errs {
			assert.ErrorIs(t, err, want)
		}
		assert.ErrorIs(t, err, retry.ErrExhausted)
		assert.Equal(t, "retry: gave up after 3 attempts: third", err.Error())
		assert.Equal(t, "retry.exhausted", e.ErrorType())
	})
}

func TestOnRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type call struct {
			attempt int
			err     error
			delay   time.Duration
		}
		var got []call
		r := retry.New(retry.WithBackoff(retry.Constant(time.Second)), retry.WithJitter(retry.NoJitter),
			retry.WithOnRetry(func(ctx context.Context, attempt int, err error, d time.Duration) {
				got = append(got, call{attempt, err, d})
			}))
		op, _ := failing(5, errBoom)
		_ = r.Do(context.Background(), op)
		assert.Equal(t, []call{{1, errBoom, time.Second}, {2, errBoom, time.Second}}, got, "no hook after the last attempt")
	})
}

func TestResendCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []int
		_ = retry.New().Do(context.Background(), func(ctx context.Context) error {
			seen = append(seen, retry.ResendCount(ctx))
			return errBoom
		})
		assert.Equal(t, []int{0, 1, 2}, seen)
	})
}

func TestDoGeneric(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls int
		v, err := retry.Do(context.Background(), retry.New(), func(context.Context) (string, error) {
			calls++
			if calls < 2 {
				return "", errBoom
			}
			return "ok", nil
		})
		require.NoError(t, err)
		assert.Equal(t, "ok", v)
		v, err = retry.Do(context.Background(), retry.New(retry.WithMaxAttempts(1)), func(context.Context) (string, error) { return "partial", errBoom })
		assert.ErrorIs(t, err, errBoom)
		assert.Equal(t, "partial", v, "the last attempt's value comes back with the error")
	})
}

func TestNewPanicsOnInvalidOptions(t *testing.T) {
	tests := []struct {
		opts []retry.Option
		want []string
	}{
		{[]retry.Option{retry.WithMaxAttempts(0)}, []string{"WithMaxAttempts(0)"}},
		{[]retry.Option{retry.WithMaxElapsedTime(-time.Second)}, []string{"WithMaxElapsedTime(-1s)"}},
		{[]retry.Option{retry.WithBackoff(retry.Backoff{})}, []string{"WithBackoff(Backoff{})"}},
		{[]retry.Option{retry.WithBackoff(retry.Constant(-time.Second))}, []string{"WithBackoff(Constant(-1s))"}},
		{[]retry.Option{retry.WithBackoff(retry.Exponential(time.Second, 0.5, time.Minute))}, []string{"multiplier"}},
		{[]retry.Option{retry.WithBackoff(retry.Exponential(0, 2, time.Minute))}, []string{"initial wait must be positive"}},
		{[]retry.Option{retry.WithBackoff(retry.Linear(time.Minute, time.Second, time.Second))}, []string{"maximum"}},
		{[]retry.Option{retry.WithJitter(retry.Jitter(42))}, []string{"WithJitter(Jitter(42))"}},
		{[]retry.Option{retry.WithMaxAttempts(-1), retry.WithJitter(retry.Jitter(9))}, []string{"WithMaxAttempts(-1)", "WithJitter(Jitter(9))"}},
	}
	for _, tt := range tests {
		msg := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			retry.New(tt.opts...)
			return ""
		}()
		assert.True(t, strings.HasPrefix(msg, "retry: New: "), "panic = %q", msg)
		for _, w := range tt.want {
			assert.Contains(t, msg, w)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	r := retry.New(retry.WithBackoff(retry.Constant(0)))
	var wg sync.WaitGroup
	var total atomic.Int32
	for range 16 {
		wg.Go(func() {
			for range 200 {
				op, calls := failing(2, errBoom)
				if err := r.Do(context.Background(), op); err != nil {
					t.Errorf("Do() = %v; want nil", err)
				}
				total.Add(calls.Load())
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(16*200*3), total.Load())
}

// TestMaxElapsedTimeCountsTheFirstAttempt protects the limit's start: a
// slow first attempt uses up the elapsed time too.
func TestMaxElapsedTimeCountsTheFirstAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := retry.New(retry.WithBackoff(retry.Constant(time.Second)), retry.WithJitter(retry.NoJitter),
			retry.WithMaxAttempts(100), retry.WithMaxElapsedTime(5*time.Second))
		var calls int
		err := r.Do(context.Background(), func(context.Context) error {
			calls++
			if calls == 1 {
				time.Sleep(4500 * time.Millisecond)
			}
			return errBoom
		})
		require.ErrorIs(t, err, retry.ErrExhausted)
		assert.Equal(t, 1, calls, "4.5s spent and a 1s wait would end past 5s")
	})
}

// shutdownCause is a context cancellation cause.
type shutdownCause struct{}

func (shutdownCause) Error() string { return "shutting down" }

// A call whose context is cancelled with a cause just before a retry
// ends with that cause as its Reason, whatever the wait: with a wait of 0
// (Constant(0), After(0, err), Retry-After: 0, a full jitter that drew
// 0) it ended with context.Canceled, and error.type lost the cause.
func TestZeroWaitKeepsContextCause(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// The hook runs after the retrier decided to retry and before the
	// wait: the caller's context is cancelled in between.
	r := retry.New(retry.WithBackoff(retry.Constant(0)), retry.WithJitter(retry.NoJitter),
		retry.WithOnRetry(func(context.Context, int, error, time.Duration) { cancel(shutdownCause{}) }))
	err := r.Do(ctx, func(context.Context) error { return errBoom })
	var e *retry.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 1, e.Attempts)
	assert.ErrorIs(t, err, shutdownCause{}, "Reason = %v; want the context's cause, as with a positive wait", e.Reason)
}

// The retry span ends when an attempt after the first panics, with
// error.type panic, and the panic reaches the caller: the span was never
// ended, so never exported.
func TestPanickingAttemptEndsRetrySpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	r := retry.New(retry.WithTracerProvider(tp), retry.WithBackoff(retry.Constant(0)))
	calls := 0
	func() {
		defer func() { require.NotNil(t, recover(), "the panic reaches the caller") }()
		_ = r.Do(context.Background(), func(context.Context) error {
			calls++
			if calls == 2 {
				panic("attempt 2 panics")
			}
			return errBoom
		})
	}()
	require.Len(t, rec.Started(), 1, "the retry span was started for attempt 2")
	require.Len(t, rec.Ended(), 1, "the retry span is ended when Do ends, even by a panic")
	var typ string
	for _, kv := range rec.Ended()[0].Attributes() {
		if kv.Key == semconv.ErrorTypeKey {
			typ = kv.Value.AsString()
		}
	}
	assert.Equal(t, "panic", typ)
}
