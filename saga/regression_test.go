package saga_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// The regression tests of issue 14's saga items, each named after what
// it protects.

// dirty is an error message as a failing service may return it: with a
// NUL byte and bytes that are not UTF-8.
const dirty = "card declined\x00 by \xff\xfe issuer"

// dirtySaga defines a saga whose step "charge" succeeds (its compensation
// failing with compErr, if not nil) and whose step "ship" fails for good
// with the dirty message; version 1, or 2 with compErr.
func dirtySaga(t *testing.T, j *journal, compErr error) *saga.Definition[order] {
	t.Helper()
	charge := step(j, "charge", nil)
	if compErr != nil {
		charge.Compensate = func(context.Context, order) error {
			j.add("undo charge")
			return compErr
		}
	}
	version := 1
	if compErr != nil {
		version = 2
	}
	def, err := saga.Define("order", version, charge, step(j, "ship", retry.Permanent(errors.New(dirty))))
	require.NoError(t, err)
	return def
}

// An error message with a NUL byte or invalid UTF-8 is written to the log
// as valid text: a log that refuses such text (PostgreSQL's text columns)
// failed the write, and the saga was never compensated, re-running the
// declined step at every recovery; a compensation's such error left the
// saga compensating for good. Issue 14 item 1.
func TestDirtyErrorTextDoesNotWedgeTheSaga(t *testing.T) {
	t.Run("compensated", func(t *testing.T) {
		var j journal
		log := &faultLog{Log: &saga.MemoryLog{}, strict: true}
		o := newOrchestrator(t, log, saga.WithRecoverInterval(0))
		ctx := ctxWithin(t, 10*time.Second)
		id, err := o.Start(ctx, dirtySaga(t, &j, nil), order{})
		require.NoError(t, err)
		st, err := o.Wait(ctx, id)
		assert.Equal(t, saga.Compensated, st)
		require.ErrorContains(t, err, "card declined") // as it was, or from the log
		assert.Equal(t, []string{"do charge", "fail ship", "undo charge"}, j.list())
		_, ts, err := log.Load(ctx, id)
		require.NoError(t, err)
		assert.Contains(t, ts[len(ts)-1].Error, saga.ValidText(dirty), "the log has the error as valid text")
	})
	t.Run("needs attention", func(t *testing.T) {
		var j journal
		var told atomic.Int32
		log := &faultLog{Log: &saga.MemoryLog{}, strict: true}
		o := newOrchestrator(t, log, saga.WithRecoverInterval(0),
			saga.WithNeedsAttention(func(context.Context, string, string, error) { told.Add(1) }))
		ctx := ctxWithin(t, 10*time.Second)
		id, err := o.Start(ctx, dirtySaga(t, &j, retry.Permanent(errors.New("refund refused\x00"))), order{})
		require.NoError(t, err)
		st, err := o.Wait(ctx, id)
		assert.Equal(t, saga.NeedsAttention, st)
		require.ErrorContains(t, err, "refund refused")
		assert.Equal(t, int32(1), told.Load())
	})
}

// The same, against PostgreSQL through saga/pglog, where it was found.
func TestDirtyErrorTextOnPostgres(t *testing.T) {
	pool := testenv.PostgresPool(t, 4)
	ctx := ctxWithin(t, 20*time.Second)
	log, err := pglog.New(pool, pglog.WithSchema(testenv.Schema(t, "saga_text_")))
	require.NoError(t, err)
	require.NoError(t, log.Migrate(ctx))
	var j journal
	var told atomic.Int32
	o := newOrchestrator(t, log, saga.WithRecoverInterval(0),
		saga.WithNeedsAttention(func(context.Context, string, string, error) { told.Add(1) }))
	id, err := o.Start(ctx, dirtySaga(t, &j, nil), order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	assert.Equal(t, saga.Compensated, st, "Wait() error: %v", err)

	id, err = o.Start(ctx, dirtySaga(t, &j, retry.Permanent(errors.New("refund refused\x00"))), order{})
	require.NoError(t, err)
	st, err = o.Wait(ctx, id)
	assert.Equal(t, saga.NeedsAttention, st, "Wait() error: %v", err)
	assert.Equal(t, int32(1), told.Load())
	assert.Equal(t, []string{"do charge", "fail ship", "undo charge", "do charge", "fail ship", "undo charge"}, j.list())
}

// A trace context with text a log refuses (a propagator may inject
// anything) does not fail Start.
func TestDirtyTraceContextDoesNotFailStart(t *testing.T) { // not parallel: it sets a global
	setGlobalPropagator(t, dirtyPropagator{})
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	log := &faultLog{Log: &saga.MemoryLog{}, strict: true}
	o := newOrchestrator(t, log)
	ctx := ctxWithin(t, 10*time.Second)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, st)
}

// dirtyPropagator is W3C trace context with a field whose key and value a
// log refuses.
type dirtyPropagator struct{ propagation.TraceContext }

const dirtyField = "x-\x00key"

func (p dirtyPropagator) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	p.TraceContext.Inject(ctx, c)
	c.Set(dirtyField, "\xffvalue\x00")
}

func (p dirtyPropagator) Fields() []string { return append(p.TraceContext.Fields(), dirtyField) }

// Start returns the id of a saga it wrote to the log when Close comes
// between the write and the run: it returned ("", ErrClosed), and a
// caller that started it again under a new id ran the business
// transaction twice, once here and once by the recovery. Issue 14 item 2.
func TestStartReturnsTheIDOfASagaItWroteWhenClosing(t *testing.T) {
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	ctx := ctxWithin(t, 10*time.Second)
	log := &faultLog{Log: &saga.MemoryLog{}}
	o, err := saga.NewOrchestrator(log, saga.WithRecoverInterval(0))
	require.NoError(t, err)
	log.afterCreate = func() { require.NoError(t, o.Close(ctx)) }
	id, err := o.Start(ctx, def, order{}, saga.WithID("order-1"))
	require.NoError(t, err, "Start of a saga in the log")
	assert.Equal(t, "order-1", id)
	assert.Empty(t, j.list(), "the closed orchestrator ran the saga")

	// Its lease was released: the next recovery runs it, at once.
	log.afterCreate = nil
	other := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithRecoverInterval(0))
	n, err := other.Recover(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	st, err := other.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, st)
	assert.Equal(t, []string{"do pay"}, j.list())
}

// outageSaga defines a saga of two steps whose first signals started and
// waits for release on its first call.
func outageSaga(t *testing.T, j *journal, idempotent bool, started chan<- struct{}, release <-chan struct{}) *saga.Definition[order] {
	t.Helper()
	def, err := saga.Define("order", 1, blocking(j, "pay", idempotent, started, release), step(j, "ship", nil))
	require.NoError(t, err)
	return def
}

// A log out of reach for two seconds, under the default options, does not
// stop a saga in flight: its writes are tried again while the lease
// holds. (After five tries the run stopped, released nothing, and only a
// call of Recover resumed the saga.) Issue 14 item 3.
func TestShortLogOutageDoesNotStopTheSaga(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		started, release := make(chan struct{}, 1), make(chan struct{})
		log := &faultLog{Log: &saga.MemoryLog{}}
		o := newOrchestrator(t, log)
		ctx := context.Background()
		id, err := o.Start(ctx, outageSaga(t, &j, false, started, release), order{})
		require.NoError(t, err)
		<-started
		log.down.Store(true)
		close(release) // pay's success is written during the outage
		time.Sleep(2 * time.Second)
		log.down.Store(false)
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := o.Wait(waitCtx, id)
		require.NoError(t, err)
		assert.Equal(t, saga.Completed, st)
		assert.Equal(t, []string{"do pay", "do ship"}, j.list(), "each step once")
	})
}

// A log out of reach for longer than the lease stops the run (its writes
// give up when the lease expires), and the orchestrator's recovery in the
// background, on by default, resumes the saga once the log is back.
// Issue 14 item 3.
func TestLongLogOutageIsRecoveredInTheBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		started, release := make(chan struct{}, 1), make(chan struct{})
		log := &faultLog{Log: &saga.MemoryLog{}}
		o := newOrchestrator(t, log, saga.WithLease(3*time.Second))
		ctx := context.Background()
		id, err := o.Start(ctx, outageSaga(t, &j, true, started, release), order{})
		require.NoError(t, err)
		<-started
		log.down.Store(true)
		close(release) // pay's success is never written
		time.Sleep(time.Minute)
		synctest.Wait()
		log.down.Store(false)
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := o.Wait(waitCtx, id)
		require.NoError(t, err)
		assert.Equal(t, saga.Completed, st)
		// pay's outcome is unknown to the log, and pay is idempotent: the
		// recovery makes it again.
		assert.Equal(t, []string{"do pay", "do pay", "do ship"}, j.list())
	})
}

// Recover releases the lease of a saga it claimed but could not load, so
// that the next recovery takes it at once: it released the saga "" (the
// record it had claimed was overwritten by the failed load's), and the
// saga stayed leased, and idle, for a whole lease. Issue 14 item 4.
func TestRecoverReleasesASagaItCouldNotLoad(t *testing.T) {
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	ctx := ctxWithin(t, 10*time.Second)
	log := &faultLog{Log: &saga.MemoryLog{}}
	require.NoError(t, log.Create(ctx, saga.Record{ID: "s-1", Name: "order", Version: 1, Data: []byte(`{}`)}, "", time.Minute))
	o := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithRecoverInterval(0))
	log.failLoads.Store(1)
	n, err := o.Recover(ctx)
	require.ErrorContains(t, err, "connection reset by peer")
	require.Zero(t, n)
	n, err = o.Recover(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the saga whose load failed was not released")
	st, err := o.Wait(ctx, "s-1")
	require.NoError(t, err)
	assert.Equal(t, saga.Completed, st)
}

// The context of the WithNeedsAttention function lasts as long as the
// function: it was cancelled about a third of the lease after the saga
// needed attention (the renewal found the lease, ended by the final
// status, gone, and took the saga for taken over), cutting a slow
// notification short, and counting a lost lease. Issue 14 item 5.
func TestNeedsAttentionFunctionKeepsItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := telemetrytest.New(t)
		var j journal
		var notified atomic.Bool
		var ctxErr atomic.Value
		o := newOrchestrator(t, &saga.MemoryLog{}, saga.WithLease(3*time.Second), saga.WithMeterProvider(tel.MeterProvider),
			saga.WithNeedsAttention(func(ctx context.Context, id, name string, err error) {
				time.Sleep(10 * time.Second) // a slow notification: more than the lease
				if err := ctx.Err(); err != nil {
					ctxErr.Store(err)
				}
				notified.Store(true)
			}))
		ctx := context.Background()
		id, err := o.Start(ctx, dirtySaga(t, &j, retry.Permanent(errors.New("refund refused"))), order{})
		require.NoError(t, err)
		st, _ := o.Wait(ctx, id)
		require.Equal(t, saga.NeedsAttention, st)
		require.True(t, notified.Load())
		assert.Nil(t, ctxErr.Load(), "the function's context ended while it ran")
		assert.False(t, tel.HasMetric(t, "saga.leases.lost"), "a lease was counted lost")
	})
}

// Define rejects a data type that is an interface: Define[any] succeeded,
// and then every Start failed. Issue 14 item 9.
func TestDefineRejectsAnInterfaceDataType(t *testing.T) {
	noop := func(context.Context, any) (func(*any), error) { return nil, nil }
	_, err := saga.Define("order", 1, saga.Step[any]{Name: "pay", Action: noop, Compensate: func(context.Context, any) error { return nil }})
	require.ErrorIs(t, err, saga.ErrInvalidDefinition)
	assert.ErrorContains(t, err, "interface")
}

// When ctx ends during a load from the log, Wait returns the status so
// far: it returned "". Issue 14 item 9.
func TestWaitReturnsTheStatusSoFarWhenALoadIsCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		started := make(chan struct{}, 1)
		log := &faultLog{Log: &saga.MemoryLog{}}
		first, err := saga.NewOrchestrator(log, saga.WithRecoverInterval(0))
		require.NoError(t, err)
		ctx := context.Background()
		id, err := first.Start(ctx, outageSaga(t, &j, false, started, make(chan struct{})), order{})
		require.NoError(t, err)
		<-started
		closeNow(t, first) // the saga is left running, for a recovery

		// Waiting on the closed orchestrator polls the log; the second
		// load never answers.
		waitCtx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		go func() {
			time.Sleep(150 * time.Millisecond)
			log.blockLoads.Store(true)
		}()
		st, err := first.Wait(waitCtx, id)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, saga.Running, st)
	})
}

// A compensation that fails for good holds back only the compensations of
// the steps before it: the independent branch is undone too, and the
// error names every step left in effect. (The first failure stopped all
// compensation: one branch of two was undone, and the error named only
// the failing step.) Issue 14 item 7.
func TestFailedCompensationDoesNotStopTheOtherBranches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		// Two branches, card → charge and stock → reserve, both before
		// ship, which fails. charge's compensation fails for good at once;
		// reserve's takes a second, so that the failure comes first.
		card, charge := step(&j, "card", nil), step(&j, "charge", nil, "card")
		stock, reserve := step(&j, "stock", nil), step(&j, "reserve", nil, "stock")
		card.After, stock.After = []string{}, []string{}
		charge.Compensate = func(context.Context, order) error {
			j.add("undo charge")
			return retry.Permanent(errors.New("refund refused"))
		}
		reserve.Compensate = func(context.Context, order) error {
			time.Sleep(time.Second)
			j.add("undo reserve")
			return nil
		}
		ship := step(&j, "ship", retry.Permanent(errors.New("no courier")), "charge", "reserve")
		def, err := saga.Define("order", 1, card, charge, stock, reserve, ship)
		require.NoError(t, err)
		o := newOrchestrator(t, &saga.MemoryLog{})
		ctx := context.Background()
		id, err := o.Start(ctx, def, order{})
		require.NoError(t, err)
		st, err := o.Wait(ctx, id)
		assert.Equal(t, saga.NeedsAttention, st)
		require.Error(t, err)
		assert.Equal(t, `compensation of step "charge": retry: not retryable after 1 attempt: refund refused; left in effect: steps ["card" "charge"]`, err.Error())
		undone := slices.DeleteFunc(j.list(), func(e string) bool { return !strings.HasPrefix(e, "undo ") })
		assert.ElementsMatch(t, []string{"undo charge", "undo reserve", "undo stock"}, undone,
			"the branch of stock and reserve is undone; card, before the failed charge, is not")
	})
}
