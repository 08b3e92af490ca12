package circuitbreaker_test

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

	"github.com/otelpatterns/patterns/circuitbreaker"
)

var errBoom = errors.New("boom")

func succeed(context.Context) error { return nil }

func failWith(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

// run sends outcomes through b: 's' success, 'f' failure, 'i' ignored.
func run(t *testing.T, b *circuitbreaker.Breaker, outcomes string) {
	t.Helper()
	for _, c := range outcomes {
		var err error
		switch c {
		case 'f':
			err = errBoom
		case 'i':
			err = context.Canceled
		}
		_ = b.Execute(context.Background(), failWith(err))
	}
}

func TestDefaults(t *testing.T) {
	b := circuitbreaker.New("dep")
	assert.Equal(t, "dep", b.Name())
	assert.Equal(t, circuitbreaker.StateClosed, b.State())
	// 19 failures are below the minimum of 20 calls.
	run(t, b, strings.Repeat("f", 19))
	assert.Equal(t, circuitbreaker.StateClosed, b.State())
	run(t, b, "f")
	assert.Equal(t, circuitbreaker.StateOpen, b.State())
}

func TestCountWindowTrips(t *testing.T) {
	tests := []struct {
		name     string
		opts     []circuitbreaker.Option
		outcomes string
		want     circuitbreaker.State
	}{
		{"below minimum", nil, "fffff", circuitbreaker.StateClosed},
		{"at rate", []circuitbreaker.Option{circuitbreaker.WithMinimumCalls(4)}, "sfsf", circuitbreaker.StateOpen},
		{"below rate", []circuitbreaker.Option{circuitbreaker.WithMinimumCalls(4)}, "ssfsf", circuitbreaker.StateClosed},
		{"old failures slide out", []circuitbreaker.Option{circuitbreaker.WithCountWindow(4), circuitbreaker.WithMinimumCalls(4), circuitbreaker.WithFailureRate(75)},
			"ffssssfsf", circuitbreaker.StateClosed},
		{"window smaller than minimum", []circuitbreaker.Option{circuitbreaker.WithCountWindow(3)}, "fff", circuitbreaker.StateOpen},
		{"ignored do not count", []circuitbreaker.Option{circuitbreaker.WithMinimumCalls(3)}, "ffiii", circuitbreaker.StateClosed},
		{"rate 100", []circuitbreaker.Option{circuitbreaker.WithMinimumCalls(3), circuitbreaker.WithFailureRate(100)}, "ffsff", circuitbreaker.StateClosed},
		{"rate 100 trips", []circuitbreaker.Option{circuitbreaker.WithCountWindow(3), circuitbreaker.WithFailureRate(100)}, "sfff", circuitbreaker.StateOpen},
		{"consecutive", []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(3)}, "fsffsff", circuitbreaker.StateClosed},
		{"consecutive trips", []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(3)}, "ssfff", circuitbreaker.StateOpen},
		{"consecutive ignores rate", []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(3), circuitbreaker.WithMinimumCalls(2)}, "fsfsff", circuitbreaker.StateClosed},
		{"consecutive with explicit rate", []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(3), circuitbreaker.WithMinimumCalls(2), circuitbreaker.WithFailureRate(50)}, "fs", circuitbreaker.StateOpen},
		{"ignored keep the run", []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(3)}, "ffif", circuitbreaker.StateOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := circuitbreaker.New("dep", tt.opts...)
			run(t, b, tt.outcomes)
			if got := b.State(); got != tt.want {
				t.Errorf("State() after %q = %v; want %v (snapshot %+v)", tt.outcomes, got, tt.want, b.Snapshot())
			}
		})
	}
}

func TestSnapshotCountsTheWindow(t *testing.T) {
	b := circuitbreaker.New("dep", circuitbreaker.WithCountWindow(5), circuitbreaker.WithFailureRate(100), circuitbreaker.WithMinimumCalls(5))
	run(t, b, "fsfs")
	assert.Equal(t, circuitbreaker.Snapshot{State: circuitbreaker.StateClosed, Calls: 4, Failures: 2, FailureRate: 50}, b.Snapshot())
	run(t, b, "ssssf") // the first five slide out
	assert.Equal(t, circuitbreaker.Snapshot{State: circuitbreaker.StateClosed, Calls: 5, Failures: 1, FailureRate: 20}, b.Snapshot())
	run(t, b, "sssss")
	assert.Equal(t, circuitbreaker.Snapshot{State: circuitbreaker.StateClosed, Calls: 5}, b.Snapshot())
	run(t, b, "sssf") // after a run of successes that took no slots
	assert.Equal(t, circuitbreaker.Snapshot{State: circuitbreaker.StateClosed, Calls: 5, Failures: 1, FailureRate: 20}, b.Snapshot())
	run(t, b, "ssss")
	assert.Equal(t, 1, b.Snapshot().Failures, "the failure must stay for 5 calls")
	run(t, b, "s")
	assert.Equal(t, 0, b.Snapshot().Failures)
}

func TestClassifier(t *testing.T) {
	errClient := errors.New("bad request")
	b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(2),
		circuitbreaker.WithClassifier(func(err error) circuitbreaker.Outcome {
			if errors.Is(err, errClient) {
				return circuitbreaker.Success
			}
			return circuitbreaker.DefaultClassifier(err)
		}))
	for range 5 {
		_ = b.Execute(context.Background(), failWith(errClient))
	}
	assert.Equal(t, circuitbreaker.StateClosed, b.State())

	tests := []struct {
		err  error
		want circuitbreaker.Outcome
	}{
		{nil, circuitbreaker.Success},
		{errBoom, circuitbreaker.Failure},
		{context.Canceled, circuitbreaker.Ignored},
		{fmt.Errorf("call: %w", context.Canceled), circuitbreaker.Ignored},
		{context.DeadlineExceeded, circuitbreaker.Failure},
	}
	for _, tt := range tests {
		if got := circuitbreaker.DefaultClassifier(tt.err); got != tt.want {
			t.Errorf("DefaultClassifier(%v) = %v; want %v", tt.err, got, tt.want)
		}
	}
}

func TestCallerCancellationDoesNotTrip(t *testing.T) {
	b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Execute(ctx, func(ctx context.Context) error { return ctx.Err() })
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, circuitbreaker.StateClosed, b.State())
}

func TestOpenRejectsWithDescriptiveError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("payments", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(4*time.Second))
		run(t, b, "f")
		called := false
		err := b.Execute(context.Background(), func(context.Context) error { called = true; return nil })
		require.Error(t, err)
		assert.False(t, called, "a rejected call must not run")
		assert.ErrorIs(t, err, circuitbreaker.ErrOpen)
		assert.NotErrorIs(t, err, circuitbreaker.ErrTooManyRequests)
		var re *circuitbreaker.RejectedError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "payments", re.Breaker)
		assert.Equal(t, circuitbreaker.StateOpen, re.State)
		assert.Equal(t, time.Now().Add(4*time.Second), re.Until)
		assert.Equal(t, 4*time.Second, re.RetryAfter(time.Now()))
		assert.Equal(t, "circuitbreaker.open", re.ErrorType())
		assert.Contains(t, err.Error(), `circuitbreaker: breaker "payments" is open (retry in 4s`)

		err2 := b.Execute(context.Background(), succeed)
		assert.Same(t, re, err2.(*circuitbreaker.RejectedError), "the error is built once per open period")

		v, err := circuitbreaker.Do(context.Background(), b, func(context.Context) (int, error) { return 7, nil })
		assert.ErrorIs(t, err, circuitbreaker.ErrOpen)
		assert.Zero(t, v)
		done, err := b.Allow(context.Background())
		assert.ErrorIs(t, err, circuitbreaker.ErrOpen)
		require.NotNil(t, done, "a rejected Allow returns a done that does nothing")
		done(nil)
		assert.Equal(t, int64(4), b.Snapshot().Rejections)
	})
}

func TestHalfOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Second),
			circuitbreaker.WithHalfOpenProbes(2), circuitbreaker.WithHalfOpenSuccesses(3))
		run(t, b, "f")
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, circuitbreaker.StateOpen, b.State(), "still open just before the open duration")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, circuitbreaker.StateHalfOpen, b.State())

		// Two probes at once; the third caller is turned away.
		done1, err := b.Allow(context.Background())
		require.NoError(t, err)
		done2, err := b.Allow(context.Background())
		require.NoError(t, err)
		_, err = b.Allow(context.Background())
		require.ErrorIs(t, err, circuitbreaker.ErrTooManyRequests)
		var re *circuitbreaker.RejectedError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, circuitbreaker.StateHalfOpen, re.State)
		assert.Equal(t, "circuitbreaker.too_many_requests", re.ErrorType())
		assert.Equal(t, 2, b.Snapshot().ProbesInFlight)

		done1(nil)
		done1(errBoom) // a second call is ignored
		assert.Equal(t, circuitbreaker.StateHalfOpen, b.State())
		// Two successes so far would be needed in flight: one slot free, one more success to go after done2.
		done3, err := b.Allow(context.Background())
		require.NoError(t, err)
		_, err = b.Allow(context.Background())
		require.ErrorIs(t, err, circuitbreaker.ErrTooManyRequests, "no more probes than successes still needed")
		done2(nil)
		assert.Equal(t, circuitbreaker.StateHalfOpen, b.State())
		done3(nil)
		assert.Equal(t, circuitbreaker.StateClosed, b.State())
		assert.Equal(t, circuitbreaker.Snapshot{State: circuitbreaker.StateClosed}, b.Snapshot(), "closing starts an empty window")
	})
}

func TestHalfOpenFailureReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Second))
		run(t, b, "f")
		time.Sleep(time.Second)
		synctest.Wait()
		run(t, b, "f")
		assert.Equal(t, circuitbreaker.StateOpen, b.State())
		start := time.Now()
		_, err := b.Allow(context.Background())
		var re *circuitbreaker.RejectedError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, start.Add(time.Second), re.Until, "a reopened breaker waits a whole open duration again")

		// An ignored probe frees its slot without deciding anything.
		time.Sleep(time.Second)
		synctest.Wait()
		run(t, b, "i")
		assert.Equal(t, circuitbreaker.StateHalfOpen, b.State())
		run(t, b, "s")
		assert.Equal(t, circuitbreaker.StateClosed, b.State())
	})
}

func TestSlowProbeReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Second),
			circuitbreaker.WithSlowCalls(100*time.Millisecond, 100))
		run(t, b, "f")
		time.Sleep(time.Second)
		synctest.Wait()
		_ = b.Execute(context.Background(), func(context.Context) error { time.Sleep(200 * time.Millisecond); return nil })
		assert.Equal(t, circuitbreaker.StateOpen, b.State())
	})
}

// A probe that succeeded but was slow counts as the closed window counts
// it, slow and not failed: Snapshot counts "the finished probes while
// half-open" in Calls, Failures and SlowCalls, and the StateChange
// snapshot is "the window as it was when the change happened". The probe
// still reopens the breaker, as documented.
func TestSlowProbeCountsAsSlowNotFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []circuitbreaker.StateChange
		b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Second),
			circuitbreaker.WithSlowCalls(100*time.Millisecond, 100),
			circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) { got = append(got, c) }))
		run(t, b, "f")
		time.Sleep(time.Second)
		synctest.Wait()
		_ = b.Execute(context.Background(), func(context.Context) error { time.Sleep(200 * time.Millisecond); return nil })
		require.Len(t, got, 3)
		assert.Equal(t, circuitbreaker.StateChange{Breaker: "dep", From: circuitbreaker.StateHalfOpen, To: circuitbreaker.StateOpen,
			Snapshot: circuitbreaker.Snapshot{State: circuitbreaker.StateHalfOpen, Calls: 1, SlowCalls: 1, SlowCallRate: 100}}, got[2])
	})
}

func TestStuckProbeDoesNotWedgeHalfOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []string
		b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Second),
			circuitbreaker.WithProbeTimeout(5*time.Second),
			circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) { changes = append(changes, c.From.String()+">"+c.To.String()) }))
		run(t, b, "f")
		time.Sleep(time.Second)
		synctest.Wait()
		stuckDone, err := b.Allow(context.Background()) // never returns in time
		require.NoError(t, err)
		time.Sleep(5*time.Second - time.Nanosecond)
		_, err = b.Allow(context.Background())
		require.ErrorIs(t, err, circuitbreaker.ErrTooManyRequests, "the probe has not timed out yet")
		time.Sleep(time.Nanosecond)
		_, err = b.Allow(context.Background())
		require.ErrorIs(t, err, circuitbreaker.ErrOpen, "a timed-out probe reopens the breaker")
		time.Sleep(time.Second)
		synctest.Wait()
		run(t, b, "s")
		assert.Equal(t, circuitbreaker.StateClosed, b.State())
		stuckDone(errBoom) // the stale probe's late failure belongs to an old period
		assert.Equal(t, circuitbreaker.StateClosed, b.State())
		assert.Equal(t, []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}, changes)
	})
}

func TestOpenJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seen := map[time.Duration]bool{}
		for range 20 {
			b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(10*time.Second), circuitbreaker.WithOpenJitter(0.5))
			start := time.Now()
			run(t, b, "f")
			var re *circuitbreaker.RejectedError
			require.ErrorAs(t, b.Execute(context.Background(), succeed), &re)
			d := re.Until.Sub(start)
			assert.GreaterOrEqual(t, d, 10*time.Second)
			assert.LessOrEqual(t, d, 15*time.Second)
			seen[d] = true
			time.Sleep(d - time.Nanosecond)
			synctest.Wait()
			assert.Equal(t, circuitbreaker.StateOpen, b.State())
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			assert.Equal(t, circuitbreaker.StateHalfOpen, b.State())
		}
		assert.Greater(t, len(seen), 10, "jitter must spread the open durations")
	})
}

func TestSlowCallsTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("dep", circuitbreaker.WithMinimumCalls(4), circuitbreaker.WithSlowCalls(time.Second, 50))
		slow := func(context.Context) error { time.Sleep(time.Second); return nil }
		fast := func(context.Context) error { time.Sleep(999 * time.Millisecond); return nil }
		for _, f := range []func(context.Context) error{slow, fast, fast} {
			require.NoError(t, b.Execute(context.Background(), f))
		}
		assert.Equal(t, circuitbreaker.Snapshot{State: circuitbreaker.StateClosed, Calls: 3, SlowCalls: 1, SlowCallRate: 100.0 / 3}, b.Snapshot())
		require.NoError(t, b.Execute(context.Background(), slow))
		assert.Equal(t, circuitbreaker.StateOpen, b.State())
	})
}

func TestTimeWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("dep", circuitbreaker.WithTimeWindow(10*time.Second, 10), circuitbreaker.WithMinimumCalls(5), circuitbreaker.WithFailureRate(50))
		run(t, b, "fff")
		assert.Equal(t, 3, b.Snapshot().Failures)
		time.Sleep(5 * time.Second)
		run(t, b, "s")
		time.Sleep(5 * time.Second) // the three failures leave the window
		assert.Equal(t, circuitbreaker.Snapshot{State: circuitbreaker.StateClosed, Calls: 1}, b.Snapshot())
		run(t, b, "fss")
		assert.Equal(t, circuitbreaker.StateClosed, b.State(), "1 failure in 4 calls")
		time.Sleep(time.Hour) // everything expires
		assert.Equal(t, circuitbreaker.Snapshot{State: circuitbreaker.StateClosed}, b.Snapshot())
		run(t, b, "sssff")
		assert.Equal(t, circuitbreaker.StateClosed, b.State(), "2 failures in 5 calls")
		run(t, b, "f")
		assert.Equal(t, circuitbreaker.StateOpen, b.State())
	})
}

func TestTripAndReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("dep", circuitbreaker.WithOpenDuration(time.Second))
		b.Trip()
		err := b.Execute(context.Background(), succeed)
		require.ErrorIs(t, err, circuitbreaker.ErrOpen)
		var re *circuitbreaker.RejectedError
		require.ErrorAs(t, err, &re)
		assert.True(t, re.Until.IsZero())
		assert.Contains(t, err.Error(), "open until reset")
		time.Sleep(time.Hour)
		synctest.Wait()
		assert.Equal(t, circuitbreaker.StateOpen, b.State(), "a tripped breaker stays open")
		b.Trip() // again: no change
		b.Reset()
		assert.Equal(t, circuitbreaker.StateClosed, b.State())
		require.NoError(t, b.Execute(context.Background(), succeed))
		assert.Equal(t, 1, b.Snapshot().Calls)
		b.Reset()
		assert.Equal(t, 0, b.Snapshot().Calls, "Reset empties the window")
	})
}

// Trip on a breaker already open on failures changes no state (no
// StateChange, no transition counted), so Snapshot.Rejections, "the calls
// rejected since the current state began", goes on counting.
func TestTripOnOpenBreakerKeepsRejections(t *testing.T) {
	b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour))
	run(t, b, "f")
	run(t, b, "sss") // three rejections
	require.Equal(t, int64(3), b.Snapshot().Rejections)
	b.Trip() // still open
	s := b.Snapshot()
	assert.Equal(t, circuitbreaker.StateOpen, s.State)
	assert.Equal(t, int64(3), s.Rejections, "the state did not change")
	run(t, b, "s")
	assert.Equal(t, int64(4), b.Snapshot().Rejections)
}

func TestPanicCountsAsFailure(t *testing.T) {
	b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(2))
	for range 2 {
		assert.PanicsWithValue(t, "kaboom", func() {
			_ = b.Execute(context.Background(), func(context.Context) error { panic("kaboom") })
		})
	}
	assert.Equal(t, circuitbreaker.StateOpen, b.State())

	b = circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1))
	assert.Panics(t, func() {
		_, _ = circuitbreaker.Do(context.Background(), b, func(context.Context) (int, error) { panic("kaboom") })
	})
	assert.Equal(t, circuitbreaker.StateOpen, b.State())
}

func TestDo(t *testing.T) {
	b := circuitbreaker.New("dep")
	v, err := circuitbreaker.Do(context.Background(), b, func(context.Context) (string, error) { return "ok", nil })
	require.NoError(t, err)
	assert.Equal(t, "ok", v)
	v, err = circuitbreaker.Do(context.Background(), b, func(context.Context) (string, error) { return "partial", errBoom })
	assert.ErrorIs(t, err, errBoom)
	assert.Equal(t, "partial", v, "Do hands back fn's value with its error")
	assert.Equal(t, 1, b.Snapshot().Failures)
}

// TestStaleResultsDoNotCount protects the generation rule: a call admitted
// before a state change must not count towards the state after it.
func TestStaleResultsDoNotCount(t *testing.T) {
	b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1))
	done, err := b.Allow(context.Background())
	require.NoError(t, err)
	b.Trip()
	b.Reset()
	done(errBoom)
	assert.Equal(t, circuitbreaker.StateClosed, b.State())
	assert.Equal(t, circuitbreaker.Snapshot{State: circuitbreaker.StateClosed}, b.Snapshot())
}

func TestStateChangeListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b *circuitbreaker.Breaker
		var got []circuitbreaker.StateChange
		b = circuitbreaker.New("dep", circuitbreaker.WithCountWindow(4), circuitbreaker.WithMinimumCalls(4), circuitbreaker.WithOpenDuration(time.Second),
			circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
				// The breaker must be usable from the listener: no lock is held.
				assert.Equal(t, c.To, b.State())
				_ = b.Snapshot()
				got = append(got, c)
			}))
		run(t, b, "sfff")
		time.Sleep(time.Second)
		synctest.Wait()
		run(t, b, "s")
		require.Len(t, got, 3)
		assert.Equal(t, circuitbreaker.StateChange{Breaker: "dep", From: circuitbreaker.StateClosed, To: circuitbreaker.StateOpen,
			Snapshot: circuitbreaker.Snapshot{State: circuitbreaker.StateClosed, Calls: 4, Failures: 3, FailureRate: 75}}, got[0])
		assert.Equal(t, circuitbreaker.StateOpen, got[1].From)
		assert.Equal(t, circuitbreaker.StateHalfOpen, got[1].To)
		assert.Equal(t, circuitbreaker.StateChange{Breaker: "dep", From: circuitbreaker.StateHalfOpen, To: circuitbreaker.StateClosed,
			Snapshot: circuitbreaker.Snapshot{State: circuitbreaker.StateHalfOpen, Calls: 1}}, got[2])
	})
}

// TestListenerReentry protects against a listener that changes the breaker
// deadlocking it or seeing changes out of order.
func TestListenerReentry(t *testing.T) {
	var b *circuitbreaker.Breaker
	var got []string
	b = circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			got = append(got, c.To.String())
			if c.To == circuitbreaker.StateOpen {
				b.Reset()
			}
		}))
	run(t, b, "f")
	assert.Equal(t, []string{"open", "closed"}, got)
	assert.Equal(t, circuitbreaker.StateClosed, b.State())
}

func TestListenerPanicDoesNotStopLaterDeliveries(t *testing.T) {
	var n atomic.Int32
	b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			if n.Add(1) == 1 {
				panic("listener bug")
			}
		}))
	assert.Panics(t, func() { run(t, b, "f") })
	b.Reset()
	assert.Equal(t, int32(2), n.Load())
}

// A listener that panics on one change of several queued while an earlier
// one was being delivered loses none of them: the changes queued behind
// the one it panicked on stay pending, and the next change delivers them
// first.
func TestListenerPanicLosesNoQueuedChange(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var got []string
	n := 0
	b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			mu.Lock()
			n++
			k := n
			got = append(got, c.From.String()+">"+c.To.String())
			mu.Unlock()
			switch k {
			case 1: // closed>open: hold the delivery while two more changes queue
				close(entered)
				<-release
			case 2: // open>closed: a buggy listener
				panic("listener bug")
			}
		}))
	done := make(chan any)
	go func() {
		defer func() { done <- recover() }()
		run(t, b, "f") // change 1, delivered on this goroutine
	}()
	<-entered
	b.Reset() // change 2, queued
	b.Trip()  // change 3, queued
	close(release)
	require.NotNil(t, <-done, "the listener's panic must surface")
	b.Reset() // change 4: delivers change 3 first
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"closed>open", "open>closed", "closed>open", "open>closed"}, got)
}

// The listeners after one that panicked still get the change it panicked
// on, when the next change is delivered.
func TestListenersAfterAPanickingOneGetTheChange(t *testing.T) {
	var first, second []string
	b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			first = append(first, c.To.String())
			if len(first) == 1 {
				panic("listener bug")
			}
		}),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) { second = append(second, c.To.String()) }))
	assert.Panics(t, func() { run(t, b, "f") })
	assert.Empty(t, second, "the panic stopped the delivery")
	b.Reset()
	assert.Equal(t, []string{"open", "closed"}, first)
	assert.Equal(t, []string{"open", "closed"}, second)
}

func TestConcurrentCallsAreAllCounted(t *testing.T) {
	const goroutines, calls = 16, 500
	b := circuitbreaker.New("dep", circuitbreaker.WithCountWindow(goroutines*calls), circuitbreaker.WithFailureRate(100), circuitbreaker.WithMinimumCalls(goroutines*calls))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				var err error
				if (g+i)%4 == 0 {
					err = errBoom
				}
				_ = b.Execute(context.Background(), failWith(err))
			}
		})
	}
	wg.Wait()
	s := b.Snapshot()
	assert.Equal(t, goroutines*calls, s.Calls)
	assert.Equal(t, goroutines*calls/4, s.Failures)
	assert.Equal(t, circuitbreaker.StateClosed, s.State)
}

// TestConcurrentHalfOpenAdmitsAtMostProbes hammers a half-open breaker from
// many goroutines and checks that no more probes than allowed ever run at once.
func TestConcurrentHalfOpenAdmitsAtMostProbes(t *testing.T) {
	const probes = 3
	b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Millisecond),
		circuitbreaker.WithHalfOpenProbes(probes), circuitbreaker.WithHalfOpenSuccesses(1000), circuitbreaker.WithProbeTimeout(time.Hour))
	run(t, b, "f")
	deadline := time.Now().Add(time.Second)
	for b.State() != circuitbreaker.StateHalfOpen && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var inFlight, maxInFlight, admitted atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 200 {
				_ = b.Execute(context.Background(), func(context.Context) error {
					admitted.Add(1)
					n := inFlight.Add(1)
					for {
						m := maxInFlight.Load()
						if n <= m || maxInFlight.CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(10 * time.Microsecond)
					inFlight.Add(-1)
					return nil
				})
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, maxInFlight.Load(), int32(probes))
	assert.Positive(t, admitted.Load())
}

// TestStuckProbeWithSpareSlots protects the probe timeout when the stuck
// probe does not fill every slot: with three slots and one success needed,
// one probe in flight is enough to stop admissions, and must not wedge the
// breaker.
func TestStuckProbeWithSpareSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("dep", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Second),
			circuitbreaker.WithHalfOpenProbes(3), circuitbreaker.WithHalfOpenSuccesses(1))
		run(t, b, "f")
		time.Sleep(time.Second)
		synctest.Wait()
		_, err := b.Allow(context.Background())
		require.NoError(t, err)
		_, err = b.Allow(context.Background())
		require.ErrorIs(t, err, circuitbreaker.ErrTooManyRequests)
		time.Sleep(time.Second)
		_, err = b.Allow(context.Background())
		require.ErrorIs(t, err, circuitbreaker.ErrOpen, "the stuck probe must reopen the breaker")
	})
}

// TestHalfOpenProbesCappedBySuccessesNeeded pins what WithHalfOpenProbes
// documents: no more probes in flight than successes still needed.
func TestHalfOpenProbesCappedBySuccessesNeeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("x", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Second),
			circuitbreaker.WithHalfOpenProbes(5), circuitbreaker.WithHalfOpenSuccesses(1))
		_ = b.Execute(context.Background(), failWith(errBoom))
		time.Sleep(time.Second)
		synctest.Wait() // the open period's timer has fired
		release := make(chan struct{})
		go func() {
			_ = b.Execute(context.Background(), func(context.Context) error { <-release; return nil })
		}()
		synctest.Wait()
		if err := b.Execute(context.Background(), succeed); !errors.Is(err, circuitbreaker.ErrTooManyRequests) {
			t.Errorf("second probe with one success needed: Execute() = %v; want ErrTooManyRequests", err)
		}
		close(release)
		synctest.Wait()
		if got := b.State(); got != circuitbreaker.StateClosed {
			t.Errorf("State() = %v; want closed after the probe succeeded", got)
		}
	})
}
