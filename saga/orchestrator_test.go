package saga_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// order is the saga data of the tests.
type order struct {
	ID        string
	PaymentID string
	Reserved  []string
}

// journal records what the steps did, in order.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// step returns a compensatable step that journals its action and
// compensation, and fails its action with fail (if not nil).
func step(j *journal, name string, fail error, after ...string) saga.Step[order] {
	return saga.Step[order]{
		Name:  name,
		After: after,
		Action: func(ctx context.Context, o order) (func(*order), error) {
			if fail != nil {
				j.add("fail %s", name)
				return nil, fail
			}
			j.add("do %s", name)
			return func(o *order) { o.Reserved = append(o.Reserved, name) }, nil
		},
		Compensate: func(ctx context.Context, o order) error {
			j.add("undo %s", name)
			return nil
		},
		Retry: retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(retry.Constant(time.Millisecond))),
	}
}

func newOrchestrator(t *testing.T, log saga.Log, opts ...saga.Option) *saga.Orchestrator {
	t.Helper()
	o, err := saga.NewOrchestrator(log, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, o.Close(context.Background())) })
	return o
}

func ctxWithin(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSequenceCompletes(t *testing.T) {
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil), step(&j, "reserve", nil), step(&j, "ship", nil))
	require.NoError(t, err)
	log := &saga.MemoryLog{}
	o := newOrchestrator(t, log)
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{ID: "o-1"})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, st)
	assert.Equal(t, []string{"do pay", "do reserve", "do ship"}, j.list())

	rec, ts, err := log.Load(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, rec.Status)
	assert.Len(t, ts, 7, "started and succeeded per step, then completed")
	assert.JSONEq(t, `{"ID":"o-1","PaymentID":"","Reserved":["pay","reserve","ship"]}`, string(ts[len(ts)-2].Data))
}

func TestFailureCompensatesInReverse(t *testing.T) {
	var j journal
	boom := retry.Permanent(errors.New("out of stock"))
	def, err := saga.Define("order", 1, step(&j, "pay", nil), step(&j, "reserve", nil), step(&j, "ship", boom))
	require.NoError(t, err)
	o := newOrchestrator(t, &saga.MemoryLog{})
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{ID: "o-1"})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.Compensated, st)
	require.ErrorContains(t, err, "out of stock")
	assert.Equal(t, []string{"do pay", "do reserve", "fail ship", "undo reserve", "undo pay"}, j.list())
}

func TestTransientFailureIsRetried(t *testing.T) {
	var j journal
	var calls atomic.Int32
	s := step(&j, "pay", nil)
	s.Action = func(ctx context.Context, o order) (func(*order), error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("timeout talking to the bank")
		}
		info, ok := saga.StepFromContext(ctx)
		if !ok || info.Attempt != 2 || saga.IdempotencyKey(ctx) != info.SagaID+"/pay/forward" {
			return nil, retry.Permanent(fmt.Errorf("bad step info %+v", info))
		}
		return func(o *order) { o.PaymentID = "p-1" }, nil
	}
	def, err := saga.Define("order", 1, s)
	require.NoError(t, err)
	o := newOrchestrator(t, &saga.MemoryLog{})
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{ID: "o-1"})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, st)
	assert.Equal(t, int32(2), calls.Load())
}

// Parallel steps run at once; compensations wait for the steps after
// them.
func TestDAGRunsInParallelAndCompensatesInReverseOrder(t *testing.T) {
	var j journal
	both := make(chan struct{})
	var arrived atomic.Int32
	meet := func(name string) saga.Step[order] {
		s := step(&j, name, nil)
		s.After = []string{}
		s.Action = func(ctx context.Context, o order) (func(*order), error) {
			if arrived.Add(1) == 2 {
				close(both)
			}
			select {
			case <-both:
			case <-time.After(5 * time.Second):
				return nil, retry.Permanent(errors.New("the other parallel step never started"))
			}
			j.add("do %s", name)
			return nil, nil
		}
		return s
	}
	fail := step(&j, "ship", retry.Permanent(errors.New("no courier")), "pay", "reserve")
	def, err := saga.Define("order", 1, meet("pay"), meet("reserve"), fail)
	require.NoError(t, err)
	o := newOrchestrator(t, &saga.MemoryLog{})
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, _ := o.Wait(ctx, id)
	assert.Equal(t, saga.Compensated, st)
	got := j.list()
	assert.ElementsMatch(t, []string{"do pay", "do reserve"}, got[:2])
	assert.Equal(t, "fail ship", got[2])
	assert.ElementsMatch(t, []string{"undo pay", "undo reserve"}, got[3:])
}

func TestFailingCompensationNeedsAttention(t *testing.T) {
	tel := telemetrytest.New(t)
	var j journal
	s := step(&j, "pay", nil)
	s.Compensate = func(ctx context.Context, o order) error { return errors.New("bank down") }
	var called atomic.Int32
	var hookErr error
	o := newOrchestrator(t, &saga.MemoryLog{},
		saga.WithMeterProvider(tel.MeterProvider), saga.WithTracerProvider(tel.TracerProvider),
		saga.WithCompensationRetry(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(retry.Constant(time.Millisecond)))),
		saga.WithNeedsAttention(func(ctx context.Context, id, name string, err error) {
			called.Add(1)
			hookErr = err
		}))
	def, err := saga.Define("order", 1, s, step(&j, "ship", retry.Permanent(errors.New("no courier"))))
	require.NoError(t, err)
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.NeedsAttention, st)
	require.ErrorContains(t, err, "bank down")
	assert.Equal(t, int32(1), called.Load())
	assert.ErrorContains(t, hookErr, "bank down")
	// The failures carry error.type, as their spans do: the compensation's
	// own error (an errors.New one) on its attempts, the compensation
	// policy's on the saga.
	name := saga.AttrName.String("order")
	exhausted := semconv.ErrorTypeKey.String("retry.exhausted")
	assert.Equal(t, int64(1), tel.Int64(t, "saga.needs_attention", name, exhausted))
	assert.Equal(t, int64(1), tel.Int64(t, "saga.executions", name, saga.AttrOutcome.String("needs_attention"), exhausted))
	assert.Equal(t, uint64(1), tel.HistogramCount(t, "saga.duration", name, saga.AttrOutcome.String("needs_attention"), exhausted))
	assert.Equal(t, int64(3), tel.Int64(t, "saga.steps", name, saga.AttrStep.String("pay"),
		saga.AttrPhase.String("compensate"), saga.AttrOutcome.String("failed"), semconv.ErrorTypeOther))
}

// A non-idempotent step that times out may have taken effect: it is
// compensated along with the others.
func TestTimedOutStepIsCompensated(t *testing.T) {
	var j journal
	slow := step(&j, "charge", nil)
	slow.Timeout = 20 * time.Millisecond
	slow.Action = func(ctx context.Context, o order) (func(*order), error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	def, err := saga.Define("order", 1, step(&j, "reserve", nil), slow)
	require.NoError(t, err)
	o := newOrchestrator(t, &saga.MemoryLog{})
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.Compensated, st)
	require.ErrorContains(t, err, "outcome is unknown")
	assert.Equal(t, []string{"do reserve", "undo charge", "undo reserve"}, j.list())
}

// An idempotent step that times out is tried again.
func TestTimedOutIdempotentStepIsRetried(t *testing.T) {
	var j journal
	var calls atomic.Int32
	slow := step(&j, "charge", nil)
	slow.Idempotent = true
	slow.Timeout = 20 * time.Millisecond
	slow.Action = func(ctx context.Context, o order) (func(*order), error) {
		if calls.Add(1) == 1 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, nil
	}
	def, err := saga.Define("order", 1, slow)
	require.NoError(t, err)
	o := newOrchestrator(t, &saga.MemoryLog{})
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, st)
	assert.Equal(t, int32(2), calls.Load())
}

func TestPivotAndRetriableSteps(t *testing.T) {
	var j journal
	var failures atomic.Int32
	pivot := saga.Step[order]{Name: "charge", Pivot: true, Action: func(ctx context.Context, o order) (func(*order), error) {
		j.add("do charge")
		return nil, nil
	}}
	notify := saga.Step[order]{Name: "notify", Retriable: true,
		Retry: retry.New(retry.WithMaxAttempts(5), retry.WithBackoff(retry.Constant(time.Millisecond))),
		Action: func(ctx context.Context, o order) (func(*order), error) {
			if failures.Add(1) <= 3 {
				return nil, retry.Permanent(errors.New("mail server down")) // it can never succeed
			}
			j.add("do notify")
			return nil, nil
		}}
	def, err := saga.Define("order", 1, step(&j, "reserve", nil), pivot, notify)
	require.NoError(t, err)
	var attention atomic.Int32
	o := newOrchestrator(t, &saga.MemoryLog{}, saga.WithNeedsAttention(func(context.Context, string, string, error) { attention.Add(1) }))
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.NeedsAttention, st, "a retriable step that fails for good cannot be compensated past the pivot")
	require.ErrorContains(t, err, "mail server down")
	assert.Equal(t, []string{"do reserve", "do charge"}, j.list(), "nothing is compensated after the pivot")
	assert.Equal(t, int32(1), attention.Load())
}

func TestDefineRejectsBadDefinitions(t *testing.T) {
	act := func(context.Context, order) (func(*order), error) { return nil, nil }
	comp := func(context.Context, order) error { return nil }
	s := func(name string, after ...string) saga.Step[order] {
		return saga.Step[order]{Name: name, Action: act, Compensate: comp, After: after}
	}
	for _, tc := range []struct {
		name  string
		steps []saga.Step[order]
		want  []string
	}{
		{"no steps", nil, []string{"no steps"}},
		{"duplicate", []saga.Step[order]{s("a"), s("a")}, []string{`step "a": defined twice`}},
		{"empty name", []saga.Step[order]{s("")}, []string{`step "": name: empty`}},
		{"slash", []saga.Step[order]{s("a/b")}, []string{`step "a/b"`}},
		{"no action", []saga.Step[order]{{Name: "a", Compensate: comp}}, []string{`step "a": no action`}},
		{"unknown after", []saga.Step[order]{s("a", "zz")}, []string{`step "a": After names unknown step "zz"`}},
		{"cycle", []saga.Step[order]{s("a", "b"), s("b", "a"), s("c", "b")}, []string{`step "a"`, `step "b"`, "cycle"}},
		{"self", []saga.Step[order]{s("a", "a")}, []string{`step "a": comes after itself`}},
		{"no compensation", []saga.Step[order]{s("a"), {Name: "b", Action: act}}, []string{`step "b": no compensation`}},
		{"two pivots", []saga.Step[order]{{Name: "a", Action: act, Pivot: true}, {Name: "b", Action: act, Pivot: true}}, []string{`step "b": a second pivot`}},
		{"compensatable after pivot", []saga.Step[order]{{Name: "p", Action: act, Pivot: true}, {Name: "b", Action: act}},
			[]string{`step "b": after the pivot "p", so it must be Retriable`}},
		{"retriable without pivot", []saga.Step[order]{{Name: "r", Action: act, Retriable: true}}, []string{`step "r": Retriable, but not after a pivot`}},
		{"beside the pivot", []saga.Step[order]{{Name: "p", Action: act, Pivot: true}, {Name: "x", Action: act, Compensate: comp, After: []string{}}},
			[]string{`step "x": neither before nor after the pivot`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := saga.Define("order", 1, tc.steps...)
			require.ErrorIs(t, err, saga.ErrInvalidDefinition)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	_, err := saga.Define("", 0, s("a"))
	require.ErrorIs(t, err, saga.ErrInvalidDefinition)
	assert.True(t, strings.Contains(err.Error(), "saga name") && strings.Contains(err.Error(), "version 0"), err.Error())
}

func TestStartRejectsBadInput(t *testing.T) {
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	o := newOrchestrator(t, &saga.MemoryLog{})
	ctx := ctxWithin(t, 10*time.Second)
	_, err = o.Start(ctx, def, "not an order")
	require.ErrorContains(t, err, "data is string")
	_, err = o.Start(ctx, def, order{}, saga.WithID("a/b"))
	require.Error(t, err)
	id, err := o.Start(ctx, def, order{}, saga.WithID("order-7"))
	require.NoError(t, err)
	assert.Equal(t, "order-7", id)
	_, err = o.Start(ctx, def, order{}, saga.WithID("order-7"))
	require.ErrorIs(t, err, saga.ErrExists)
	_, _ = o.Wait(ctx, id)

	_, err = saga.NewOrchestrator(nil, saga.WithLease(time.Millisecond))
	require.ErrorContains(t, err, "nil log")
	require.ErrorContains(t, err, "WithLease")
}
