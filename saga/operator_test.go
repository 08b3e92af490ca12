package saga_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// The operator's API of issue 14 item 6: a saga that needs attention is
// retried or marked resolved, in the log; before it, setting its status
// back by hand was undone by replay, which told WithNeedsAttention again.

// refundSaga defines a saga whose step "charge" succeeds and whose step
// "ship" fails for good; charge's refund fails for good until fixed is
// set.
func refundSaga(t *testing.T, j *journal, fixed *atomic.Bool) *saga.Definition[order] {
	t.Helper()
	charge := step(j, "charge", nil)
	charge.Compensate = func(context.Context, order) error {
		if !fixed.Load() {
			j.add("refund refused")
			return retry.Permanent(errors.New("refund service down"))
		}
		j.add("undo charge")
		return nil
	}
	def, err := saga.Define("order", 1, charge, step(j, "ship", retry.Permanent(errors.New("no courier"))))
	require.NoError(t, err)
	return def
}

// needingAttention starts a refund saga and waits for it to need
// attention.
func needingAttention(t *testing.T, o *saga.Orchestrator, def saga.Definer) string {
	t.Helper()
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	require.Equal(t, saga.NeedsAttention, st, "Wait() error: %v", err)
	return id
}

// Retry tries the failed compensation again, once its cause is fixed: the
// saga is compensated, with the error that made it compensate, and the
// log has the retry.
func TestRetryCompensatesOnceFixed(t *testing.T) {
	var j journal
	var fixed atomic.Bool
	var told atomic.Int32
	log := &saga.MemoryLog{}
	def := refundSaga(t, &j, &fixed)
	o := newOrchestrator(t, log, saga.WithDefinitions(def),
		saga.WithNeedsAttention(func(context.Context, string, string, error) { told.Add(1) }))
	id := needingAttention(t, o, def)
	ctx := ctxWithin(t, 10*time.Second)

	fixed.Store(true)
	require.NoError(t, o.Retry(ctx, id))
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.Compensated, st)
	require.ErrorContains(t, err, "no courier", "the error that made the saga compensate")
	assert.Equal(t, []string{"do charge", "fail ship", "refund refused", "undo charge"}, j.list())
	assert.Equal(t, int32(1), told.Load(), "WithNeedsAttention's calls")

	rec, ts, err := log.Load(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Compensated, rec.Status)
	var retried []saga.Transition
	for _, tr := range ts {
		if tr.Kind == saga.Retried {
			retried = append(retried, tr)
		}
	}
	require.Len(t, retried, 1)
	assert.Equal(t, saga.Compensating, retried[0].Status)
	assert.Empty(t, retried[0].Step)

	// Another orchestrator that waits reads the same from the log.
	other := newOrchestrator(t, log, saga.WithRecoverInterval(0))
	st, err = other.Wait(ctx, id)
	assert.Equal(t, saga.Compensated, st)
	assert.ErrorContains(t, err, "no courier")
}

// Retry of a saga stopped by a Retriable step after the pivot makes the
// step again.
func TestRetryMakesARetriableStepAgain(t *testing.T) {
	var j journal
	var fixed atomic.Bool
	notify := saga.Step[order]{Name: "notify", Retriable: true,
		Retry: retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(retry.Constant(time.Millisecond))),
		Action: func(context.Context, order) (func(*order), error) {
			if !fixed.Load() {
				j.add("fail notify")
				return nil, errors.New("mail server down")
			}
			j.add("do notify")
			return nil, nil
		}}
	ship := step(&j, "ship", nil)
	ship.Pivot, ship.Compensate = true, nil
	def, err := saga.Define("order", 1, step(&j, "pay", nil), ship, notify)
	require.NoError(t, err)
	o := newOrchestrator(t, &saga.MemoryLog{}, saga.WithDefinitions(def))
	id := needingAttention(t, o, def)
	ctx := ctxWithin(t, 10*time.Second)
	fixed.Store(true)
	require.NoError(t, o.Retry(ctx, id))
	st, err := o.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, st)
	assert.Equal(t, []string{"do pay", "do ship", "fail notify", "fail notify", "do notify"}, j.list())
}

// Retry of a saga whose cause is not fixed needs attention again, and
// says so again.
func TestRetryThatFailsAgainNeedsAttentionAgain(t *testing.T) {
	var j journal
	var fixed atomic.Bool
	var told atomic.Int32
	def := refundSaga(t, &j, &fixed)
	o := newOrchestrator(t, &saga.MemoryLog{}, saga.WithDefinitions(def),
		saga.WithNeedsAttention(func(context.Context, string, string, error) { told.Add(1) }))
	id := needingAttention(t, o, def)
	ctx := ctxWithin(t, 10*time.Second)
	require.NoError(t, o.Retry(ctx, id))
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.NeedsAttention, st)
	assert.ErrorContains(t, err, "refund service down")
	assert.Equal(t, int32(2), told.Load())
	fixed.Store(true)
	require.NoError(t, o.Retry(ctx, id))
	st, _ = o.Wait(ctx, id)
	assert.Equal(t, saga.Compensated, st)
}

// Resolve marks the saga resolved, with the reason, for good: a recovery
// and a replay leave it so, and tell no one again.
func TestResolveMarksTheSagaResolved(t *testing.T) {
	var j journal
	var fixed atomic.Bool
	var told atomic.Int32
	log := &saga.MemoryLog{}
	def := refundSaga(t, &j, &fixed)
	notify := saga.WithNeedsAttention(func(context.Context, string, string, error) { told.Add(1) })
	o := newOrchestrator(t, log, saga.WithDefinitions(def), notify)
	id := needingAttention(t, o, def)
	ctx := ctxWithin(t, 10*time.Second)

	require.NoError(t, o.Resolve(ctx, id, "refunded by hand, ticket 4711"))
	rec, ts, err := log.Load(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Resolved, rec.Status)
	last := ts[len(ts)-1]
	assert.Equal(t, saga.Resolved, last.Status)
	assert.Equal(t, "refunded by hand, ticket 4711", last.Error)
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.Resolved, st)
	assert.ErrorContains(t, err, "refund service down", "the error that made the saga need attention")

	other := newOrchestrator(t, log, saga.WithDefinitions(def), notify, saga.WithRecoverInterval(0))
	n, err := other.Recover(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "a resolved saga is not recovered")
	assert.ErrorIs(t, other.Resolve(ctx, id, "again"), saga.ErrNotNeedsAttention)
	assert.ErrorIs(t, other.Retry(ctx, id), saga.ErrNotNeedsAttention)
	assert.Equal(t, int32(1), told.Load(), "WithNeedsAttention's calls")
	assert.Equal(t, []string{"do charge", "fail ship", "refund refused"}, j.list())
}

// Retry and Resolve refuse what they cannot do, saying why.
func TestRetryAndResolveRefuse(t *testing.T) {
	var j journal
	var fixed atomic.Bool
	log := &saga.MemoryLog{}
	def := refundSaga(t, &j, &fixed)
	o := newOrchestrator(t, log, saga.WithDefinitions(def))
	id := needingAttention(t, o, def)
	ctx := ctxWithin(t, 10*time.Second)

	assert.ErrorIs(t, o.Retry(ctx, "unknown"), saga.ErrNotFound)
	assert.ErrorIs(t, o.Resolve(ctx, "unknown", "why"), saga.ErrNotFound)
	assert.ErrorContains(t, o.Resolve(ctx, id, ""), "empty reason")

	// A saga that runs is not theirs to touch.
	started, release := make(chan struct{}, 1), make(chan struct{})
	slow, err := saga.Define("slow", 1, blocking(&j, "wait", true, started, release))
	require.NoError(t, err)
	running, err := o.Start(ctx, slow, order{})
	require.NoError(t, err)
	<-started
	assert.ErrorIs(t, o.Retry(ctx, running), saga.ErrNotNeedsAttention)
	assert.ErrorIs(t, o.Resolve(ctx, running, "why"), saga.ErrNotNeedsAttention)
	close(release)

	// Retry needs the definition; Resolve does not.
	stranger := newOrchestrator(t, log, saga.WithRecoverInterval(0))
	assert.ErrorIs(t, stranger.Retry(ctx, id), saga.ErrUnknownDefinition)

	// A log that cannot reopen a saga.
	plain := newOrchestrator(t, struct{ saga.Log }{log}, saga.WithDefinitions(def))
	assert.ErrorIs(t, plain.Retry(ctx, id), errors.ErrUnsupported)
	assert.ErrorIs(t, plain.Resolve(ctx, id, "why"), errors.ErrUnsupported)

	closed, err := saga.NewOrchestrator(log, saga.WithDefinitions(def))
	require.NoError(t, err)
	require.NoError(t, closed.Close(ctx))
	assert.ErrorIs(t, closed.Retry(ctx, id), saga.ErrClosed)
	assert.ErrorIs(t, closed.Resolve(ctx, id, "why"), saga.ErrClosed)

	// Nothing above changed the saga.
	rec, _, err := log.Load(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.NeedsAttention, rec.Status)
	require.NoError(t, stranger.Resolve(ctx, id, "written off"))
}

// Two operators resolving one saga at once: one wins, the other is told
// the saga no longer needs attention.
func TestConcurrentRetriesResolveOnce(t *testing.T) {
	var j journal
	var fixed atomic.Bool
	log := &saga.MemoryLog{}
	def := refundSaga(t, &j, &fixed)
	o := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithOwner("first"))
	id := needingAttention(t, o, def)
	other := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithOwner("second"))
	fixed.Store(true)
	ctx := ctxWithin(t, 10*time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			oi := []*saga.Orchestrator{o, other}[i%2]
			if i < 2 {
				errs[i] = oi.Retry(ctx, id)
			} else {
				errs[i] = oi.Resolve(ctx, id, "by hand")
			}
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, saga.ErrNotNeedsAttention):
			t.Errorf("Retry or Resolve = %v; want nil or ErrNotNeedsAttention", err)
		}
	}
	assert.Equal(t, 1, wins, "calls that succeeded: %v", errs)
	watcher := newOrchestrator(t, log, saga.WithRecoverInterval(0)) // reads the log
	st, _ := watcher.Wait(ctx, id)
	assert.Contains(t, []saga.Status{saga.Compensated, saga.Resolved}, st)
	undos := 0
	for _, e := range j.list() {
		if e == "undo charge" {
			undos++
		}
	}
	assert.LessOrEqual(t, undos, 1)
}

// Retry and Resolve are traced: each call has a span, the parent of the
// log's calls and, for Retry, of the run it starts.
func TestRetryAndResolveAreTraced(t *testing.T) {
	tel := telemetrytest.New(t)
	tlog := newTracedLog(tel.TracerProvider)
	var j journal
	var fixed atomic.Bool
	def := refundSaga(t, &j, &fixed)
	o := newOrchestrator(t, tlog, saga.WithDefinitions(def), saga.WithTracerProvider(tel.TracerProvider))
	retried := needingAttention(t, o, def)
	resolved := needingAttention(t, o, def)
	ctx := ctxWithin(t, 10*time.Second)
	fixed.Store(true)
	opCtx, op := tel.TracerProvider.Tracer("test").Start(ctx, "operator")
	require.NoError(t, o.Retry(opCtx, retried))
	require.NoError(t, o.Resolve(opCtx, resolved, "refunded by hand"))
	op.End()
	st, err := waitFor(t, tel.TracerProvider, o, retried)
	require.Equal(t, saga.Compensated, st, "Wait() error: %v", err)

	x := indexSpans(tel.Spans.Ended())
	retrySpans := tel.SpansNamed("saga.retry order")
	require.Len(t, retrySpans, 1)
	rs := retrySpans[0]
	assert.Equal(t, op.SpanContext().SpanID(), rs.Parent().SpanID(), "saga.retry is a child of the caller's span")
	assert.Equal(t, retried, telemetrytest.Attrs(rs)[saga.AttrID].AsString())
	resolveSpans := tel.SpansNamed("saga.resolve order")
	require.Len(t, resolveSpans, 1)
	assert.Equal(t, "refunded by hand", telemetrytest.Attrs(resolveSpans[0])[saga.AttrReason].AsString())
	var runs int
	for _, sp := range tel.SpansNamed("saga order") {
		if sp.Parent().SpanID() == rs.SpanContext().SpanID() {
			runs++
			assert.True(t, telemetrytest.Attrs(sp)[saga.AttrResumed].AsBool())
			assert.Len(t, sp.Links(), 1, "the retried run links to the run that started the saga")
		}
	}
	assert.Equal(t, 1, runs, "runs started by Retry")
	ops := map[string]int{}
	for _, sp := range tel.Spans.Ended() {
		if sp.InstrumentationScope().Name != logScope {
			continue
		}
		if p, ok := x[sp.Parent().SpanID()]; ok && (p.Name() == "saga.retry order" || p.Name() == "saga.resolve order") {
			ops[p.Name()+" "+sp.Name()]++
		}
	}
	assert.Equal(t, map[string]int{
		"saga.retry order reopen": 1, "saga.retry order load": 1, "saga.retry order append": 1,
		"saga.resolve order reopen": 1, "saga.resolve order load": 1, "saga.resolve order append": 1,
	}, ops, "the log's calls under the operator's spans")
}

// Retry and Resolve on PostgreSQL, through saga/pglog.
func TestRetryAndResolveOnPostgres(t *testing.T) {
	pool := testenv.PostgresPool(t, 4)
	ctx := ctxWithin(t, 20*time.Second)
	log, err := pglog.New(pool, pglog.WithSchema(testenv.Schema(t, "saga_operator_")))
	require.NoError(t, err)
	if _, ok := any(log).(saga.Reopener); !ok {
		t.Skip("pending in saga/pglog: Log.Reopen (issue 14 item 6; the patch saga2-pglog.patch)")
	}
	require.NoError(t, log.Migrate(ctx))
	var j journal
	var fixed atomic.Bool
	def := refundSaga(t, &j, &fixed)
	o := newOrchestrator(t, log, saga.WithDefinitions(def))
	retried := needingAttention(t, o, def)
	resolved := needingAttention(t, o, def)
	fixed.Store(true)
	require.NoError(t, o.Retry(ctx, retried))
	st, err := o.Wait(ctx, retried)
	assert.Equal(t, saga.Compensated, st)
	assert.ErrorContains(t, err, "no courier")
	require.NoError(t, o.Resolve(ctx, resolved, "refunded by hand"))
	rec, ts, err := log.Load(ctx, resolved)
	require.NoError(t, err)
	assert.Equal(t, saga.Resolved, rec.Status)
	assert.Equal(t, "refunded by hand", ts[len(ts)-1].Error)
	assert.ErrorIs(t, o.Retry(ctx, resolved), saga.ErrNotNeedsAttention)
}
