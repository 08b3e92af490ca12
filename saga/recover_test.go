package saga_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/saga"
)

// blocking returns a step whose action signals started and then waits for
// release or for its context to end.
func blocking(j *journal, name string, idempotent bool, started chan<- struct{}, release <-chan struct{}) saga.Step[order] {
	s := step(j, name, nil)
	s.Idempotent = idempotent
	var once sync.Once
	s.Action = func(ctx context.Context, o order) (func(*order), error) {
		first := false
		once.Do(func() { first = true })
		if first {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				j.add("cut %s", name)
				return nil, ctx.Err()
			}
		}
		j.add("do %s", name)
		return nil, nil
	}
	return s
}

// closeNow closes o with an expired context: attempts in flight are cut
// short, as by a crash.
func closeNow(t *testing.T, o *saga.Orchestrator) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, o.Close(ctx), context.Canceled)
}

func TestRecoverAfterInterruption(t *testing.T) {
	for _, tc := range []struct {
		name       string
		idempotent bool
		want       saga.Status
		journal    []string
	}{
		// The interrupted attempt's outcome is unknown: an idempotent
		// step runs again...
		{"idempotent step runs again", true, saga.Completed, []string{"do pay", "cut reserve", "do reserve", "do ship"}},
		// ...and a non-idempotent one is compensated, with the others.
		{"other step is compensated", false, saga.Compensated, []string{"do pay", "cut reserve", "undo reserve", "undo pay"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var j journal
			started, release := make(chan struct{}, 1), make(chan struct{})
			def, err := saga.Define("order", 1, step(&j, "pay", nil), blocking(&j, "reserve", tc.idempotent, started, release), step(&j, "ship", nil))
			require.NoError(t, err)
			log := &saga.MemoryLog{}
			ctx := ctxWithin(t, 10*time.Second)

			first, err := saga.NewOrchestrator(log, saga.WithOwner("first"))
			require.NoError(t, err)
			id, err := first.Start(ctx, def, order{ID: "o-1"})
			require.NoError(t, err)
			<-started
			closeNow(t, first)
			rec, _, err := log.Load(ctx, id)
			require.NoError(t, err)
			require.Equal(t, saga.Running, rec.Status)

			second := newOrchestrator(t, log, saga.WithOwner("second"), saga.WithDefinitions(def))
			n, err := second.Recover(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			st, _ := second.Wait(ctx, id)
			assert.Equal(t, tc.want, st)
			assert.Equal(t, tc.journal, j.list())
			n, err = second.Recover(ctx)
			require.NoError(t, err)
			assert.Zero(t, n, "a finished saga is not recovered")
		})
	}
}

// A graceful Close lets the attempt in flight finish and records it; the
// saga goes on from the next step after Recover, without running the
// finished step again.
func TestGracefulCloseFinishesTheAttempt(t *testing.T) {
	var j journal
	started, release := make(chan struct{}, 1), make(chan struct{})
	def, err := saga.Define("order", 1, step(&j, "pay", nil), blocking(&j, "reserve", false, started, release), step(&j, "ship", nil))
	require.NoError(t, err)
	log := &saga.MemoryLog{}
	ctx := ctxWithin(t, 10*time.Second)
	first, err := saga.NewOrchestrator(log)
	require.NoError(t, err)
	id, err := first.Start(ctx, def, order{})
	require.NoError(t, err)
	<-started
	closed := make(chan error, 1)
	go func() { closed <- first.Close(ctx) }()
	time.Sleep(20 * time.Millisecond) // Close is waiting for the attempt
	close(release)
	require.NoError(t, <-closed)
	_, err = first.Start(ctx, def, order{})
	require.ErrorIs(t, err, saga.ErrClosed)

	second := newOrchestrator(t, log, saga.WithDefinitions(def))
	n, err := second.Recover(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	st, err := second.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, st)
	assert.Equal(t, []string{"do pay", "do reserve", "do ship"}, j.list())
}

// A saga whose orchestrator died keeps its lease until it expires; then
// Recover takes it over.
func TestRecoverWaitsForTheLeaseToExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		def, err := saga.Define("order", 1, step(&j, "pay", nil), step(&j, "ship", nil))
		require.NoError(t, err)
		log := &saga.MemoryLog{}
		ctx := context.Background()
		// A dead orchestrator's saga: created and started, never finished.
		require.NoError(t, log.Create(ctx, saga.Record{ID: "s-1", Name: "order", Version: 1, Data: []byte(`{}`)}, "dead", 10*time.Second))
		require.NoError(t, log.Append(ctx, "s-1", "dead", saga.Transition{Seq: 1, Step: "pay", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}))
		require.NoError(t, log.Append(ctx, "s-1", "dead", saga.Transition{Seq: 2, Step: "pay", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1}))

		o, err := saga.NewOrchestrator(log, saga.WithDefinitions(def), saga.WithRecoverInterval(time.Second))
		require.NoError(t, err)
		defer o.Close(ctx)
		n, err := o.Recover(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "the lease has not expired")
		time.Sleep(11 * time.Second) // the interval's Recover takes it over
		synctest.Wait()
		rec, _, err := log.Load(ctx, "s-1")
		require.NoError(t, err)
		assert.Equal(t, saga.Completed, rec.Status)
		assert.Equal(t, []string{"do ship"}, j.list(), "pay succeeded before the crash")
	})
}

// Two orchestrators recovering at once run each saga once.
func TestConcurrentRecoverRunsEachSagaOnce(t *testing.T) {
	var runs sync.Map // saga id -> *atomic.Int32
	var concurrent, maxConcurrent atomic.Int32
	count := saga.Step[order]{Name: "count", Idempotent: true,
		Action: func(ctx context.Context, o order) (func(*order), error) {
			n := concurrent.Add(1)
			defer concurrent.Add(-1)
			for {
				m := maxConcurrent.Load()
				if n <= m || maxConcurrent.CompareAndSwap(m, n) {
					break
				}
			}
			info, _ := saga.StepFromContext(ctx)
			c, _ := runs.LoadOrStore(info.SagaID, new(atomic.Int32))
			c.(*atomic.Int32).Add(1)
			time.Sleep(time.Millisecond)
			return nil, nil
		},
		Compensate: func(context.Context, order) error { return nil }}
	def, err := saga.Define("count", 1, count)
	require.NoError(t, err)
	log := &saga.MemoryLog{}
	ctx := ctxWithin(t, 20*time.Second)
	const sagas = 40
	for i := range sagas {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		require.NoError(t, log.Create(ctx, saga.Record{ID: id, Name: "count", Version: 1, Data: []byte(`{}`)}, "dead", time.Second))
		require.NoError(t, log.Release(ctx, id, "dead"))
	}
	a := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithOwner("a"))
	b := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithOwner("b"))
	var wg sync.WaitGroup
	var total atomic.Int32
	for _, o := range []*saga.Orchestrator{a, b} {
		wg.Go(func() {
			n, err := o.Recover(ctx)
			assert.NoError(t, err)
			total.Add(int32(n))
		})
	}
	wg.Wait()
	assert.Equal(t, int32(sagas), total.Load(), "every saga recovered by exactly one of them")
	for i := range sagas {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		st, err := a.Wait(ctx, id)
		require.NoError(t, err)
		require.Equal(t, saga.Completed, st)
		c, ok := runs.Load(id)
		require.True(t, ok)
		assert.Equal(t, int32(1), c.(*atomic.Int32).Load(), "saga %s", id)
	}
}

// A resumed saga's span links to the span of the run that started it.
func TestResumedSpanLinksToTheOriginalTrace(t *testing.T) {
	tel := telemetrytest.New(t)
	var j journal
	started, release := make(chan struct{}, 1), make(chan struct{})
	def, err := saga.Define("order", 1, step(&j, "pay", nil), blocking(&j, "reserve", true, started, release))
	require.NoError(t, err)
	log := &saga.MemoryLog{}
	ctx := ctxWithin(t, 10*time.Second)
	first, err := saga.NewOrchestrator(log, saga.WithTracerProvider(tel.TracerProvider))
	require.NoError(t, err)
	id, err := first.Start(ctx, def, order{})
	require.NoError(t, err)
	<-started
	closeNow(t, first)

	second := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithTracerProvider(tel.TracerProvider))
	_, err = second.Recover(ctx)
	require.NoError(t, err)
	_, err = second.Wait(ctx, id)
	require.NoError(t, err)

	var runsSeen []string
	var original, resumed []string
	for _, s := range tel.Spans.Ended() {
		if s.Name() != "saga order" {
			continue
		}
		runsSeen = append(runsSeen, s.SpanContext().TraceID().String())
		if len(s.Links()) == 0 {
			original = append(original, s.SpanContext().SpanID().String())
			attrs := attribute.NewSet(s.Attributes()...)
			outcome, _ := attrs.Value("saga.outcome")
			assert.Equal(t, "interrupted", outcome.AsString(), "the closed run's span says it was interrupted")
			require.Len(t, s.Events(), 1)
			assert.Equal(t, "saga.interrupted", s.Events()[0].Name)
			continue
		}
		resumed = append(resumed, s.Links()[0].SpanContext.SpanID().String())
	}
	require.Len(t, runsSeen, 2)
	require.Len(t, original, 1)
	require.Len(t, resumed, 1)
	assert.Equal(t, original[0], resumed[0], "the resumed run links to the original run's span")
}

// lossyLog is a MemoryLog whose Append reports a failure for the nth call
// after writing it, as when a connection drops before the reply.
type lossyLog struct {
	*saga.MemoryLog
	n     int32
	calls atomic.Int32
}

func (l *lossyLog) Append(ctx context.Context, id, owner string, ts ...saga.Transition) error {
	err := l.MemoryLog.Append(ctx, id, owner, ts...)
	if l.calls.Add(1) == l.n && err == nil {
		return errors.New("connection reset by peer")
	}
	return err
}

// A write whose reply was lost is found in the log on the retry, and the
// saga goes on instead of giving up its lease.
func TestLostReplyOfAWriteIsRecognised(t *testing.T) {
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil), step(&j, "ship", nil))
	require.NoError(t, err)
	log := &lossyLog{MemoryLog: &saga.MemoryLog{}, n: 2} // pay's Succeeded
	o := newOrchestrator(t, log)
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, st)
	assert.Equal(t, []string{"do pay", "do ship"}, j.list())
	_, ts, err := log.Load(ctx, id)
	require.NoError(t, err)
	assert.Len(t, ts, 5)
}
