package saga_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// documentedMetrics are the package's metrics as doc.go describes them.
var documentedMetrics = []telemetrytest.Instrument{
	{Name: "saga.executions", Kind: telemetrytest.Counter, Unit: "{saga}",
		Required: []attribute.Key{saga.AttrName, saga.AttrOutcome}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "saga.duration", Kind: telemetrytest.Histogram, Unit: "s",
		Required: []attribute.Key{saga.AttrName, saga.AttrOutcome}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "saga.steps", Kind: telemetrytest.Counter, Unit: "{attempt}",
		Required: []attribute.Key{saga.AttrName, saga.AttrStep, saga.AttrPhase, saga.AttrOutcome},
		Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "saga.active", Kind: telemetrytest.UpDownCounter, Unit: "{saga}", Required: []attribute.Key{saga.AttrName}},
	{Name: "saga.needs_attention", Kind: telemetrytest.Counter, Unit: "{saga}",
		Required: []attribute.Key{saga.AttrName}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "saga.leases.claimed", Kind: telemetrytest.Counter, Unit: "{lease}", Required: []attribute.Key{saga.AttrName}},
	{Name: "saga.leases.lost", Kind: telemetrytest.Counter, Unit: "{lease}", Required: []attribute.Key{saga.AttrName}},
	{Name: "saga.lease.operation.duration", Kind: telemetrytest.Histogram, Unit: "s",
		Required: []attribute.Key{saga.AttrOperation}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
}

// documentedSpans are the package's spans as doc.go describes them.
var documentedSpans = []telemetrytest.Span{
	{Name: "saga {name}", Kind: trace.SpanKindInternal,
		Required: []attribute.Key{saga.AttrName, saga.AttrID, saga.AttrVersion},
		Optional: []attribute.Key{saga.AttrResumed, saga.AttrOutcome, semconv.ErrorTypeKey}},
	{Name: "step {step}", Kind: trace.SpanKindInternal, Parented: true,
		Required: []attribute.Key{saga.AttrName, saga.AttrID, saga.AttrStep, saga.AttrPhase, saga.AttrAttempt, saga.AttrOutcome},
		Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "compensate {step}", Kind: trace.SpanKindInternal, Parented: true,
		Required: []attribute.Key{saga.AttrName, saga.AttrID, saga.AttrStep, saga.AttrPhase, saga.AttrAttempt, saga.AttrOutcome},
		Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "saga.retry {name}", Kind: trace.SpanKindInternal, Parented: true,
		Required: []attribute.Key{saga.AttrName, saga.AttrID, saga.AttrVersion},
		Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "saga.resolve {name}", Kind: trace.SpanKindInternal, Parented: true,
		Required: []attribute.Key{saga.AttrName, saga.AttrID, saga.AttrVersion, saga.AttrReason},
		Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "saga.react {reaction}", Kind: trace.SpanKindInternal, Parented: true,
		Required: []attribute.Key{saga.AttrName, saga.AttrID, saga.AttrStep, saga.AttrPhase, saga.AttrOutcome},
		Optional: []attribute.Key{semconv.ErrorTypeKey}},
}

// retrySpans is the span of the orchestrator's default retry policies,
// from package retry, as the saga's doc.go describes it.
var retrySpans = []telemetrytest.Span{
	{Name: "retry", Kind: trace.SpanKindInternal, Parented: true,
		Required: []attribute.Key{retry.AttrName},
		Optional: []attribute.Key{retry.AttrAttempts, retry.AttrOutcome, semconv.ErrorTypeKey}},
}

// logScope is the scope of tracedLog's spans.
const logScope = "github.com/otelpatterns/patterns/saga/tracedlog_test"

// logSpans are tracedLog's spans: those of a saga's run have a parent
// (its span). There is no renew span: renewals are untraced.
var logSpans = []telemetrytest.Span{
	{Name: "create", Kind: trace.SpanKindClient, Required: []attribute.Key{saga.AttrID}, Parented: true},
	{Name: "append", Kind: trace.SpanKindClient, Required: []attribute.Key{saga.AttrID}, Parented: true},
	{Name: "load", Kind: trace.SpanKindClient, Required: []attribute.Key{saga.AttrID}, Parented: true},
	{Name: "release", Kind: trace.SpanKindClient, Required: []attribute.Key{saga.AttrID}, Parented: true},
	{Name: "claim", Kind: trace.SpanKindClient, Parented: true},
	{Name: "reopen", Kind: trace.SpanKindClient, Required: []attribute.Key{saga.AttrID}, Parented: true},
}

// tracedLog is a Log that starts a span for each call, as saga/pglog
// does (none under a context marked untraced), and fails calls on
// demand.
type tracedLog struct {
	saga.Log
	tracer     trace.Tracer
	failRenew  atomic.Bool  // Renew fails, as with the log out of reach
	failAppend atomic.Int32 // so many Appends fail, writing nothing
}

func newTracedLog(tp trace.TracerProvider) *tracedLog {
	return &tracedLog{Log: &saga.MemoryLog{}, tracer: tp.Tracer(logScope)}
}

func (l *tracedLog) start(ctx context.Context, name, id string) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	if id != "" {
		opts = append(opts, trace.WithAttributes(saga.AttrID.String(id)))
	}
	if telemetry.IsUntraced(ctx) {
		return ctx, trace.SpanFromContext(context.Background()) // a span that records nothing
	}
	return l.tracer.Start(ctx, name, opts...)
}

func (l *tracedLog) Create(ctx context.Context, rec saga.Record, owner string, lease time.Duration) error {
	ctx, span := l.start(ctx, "create", rec.ID)
	defer span.End()
	return l.Log.Create(ctx, rec, owner, lease)
}

func (l *tracedLog) Append(ctx context.Context, id, owner string, ts ...saga.Transition) error {
	ctx, span := l.start(ctx, "append", id)
	defer span.End()
	if l.failAppend.Add(-1) >= 0 {
		return errors.New("connection reset by peer")
	}
	return l.Log.Append(ctx, id, owner, ts...)
}

func (l *tracedLog) Renew(ctx context.Context, owner string, lease time.Duration, ids []string) ([]string, error) {
	ctx, span := l.start(ctx, "renew", "")
	defer span.End()
	if l.failRenew.Load() {
		return nil, errors.New("connection refused")
	}
	return l.Log.Renew(ctx, owner, lease, ids)
}

func (l *tracedLog) Claim(ctx context.Context, owner string, names []string, lease time.Duration, limit int) ([]saga.Record, error) {
	ctx, span := l.start(ctx, "claim", "")
	defer span.End()
	return l.Log.Claim(ctx, owner, names, lease, limit)
}

func (l *tracedLog) Release(ctx context.Context, id, owner string) error {
	ctx, span := l.start(ctx, "release", id)
	defer span.End()
	return l.Log.Release(ctx, id, owner)
}

func (l *tracedLog) Load(ctx context.Context, id string) (saga.Record, []saga.Transition, error) {
	ctx, span := l.start(ctx, "load", id)
	defer span.End()
	return l.Log.Load(ctx, id)
}

func (l *tracedLog) Reopen(ctx context.Context, id, owner string, lease time.Duration) error {
	ctx, span := l.start(ctx, "reopen", id)
	defer span.End()
	return l.Log.(saga.Reopener).Reopen(ctx, id, owner, lease)
}

// sdkDefaults returns test providers whose tracer provider samples as the
// SDK does by default, ParentBased(AlwaysSample), as a service's does:
// under an unsampled parent, nothing is recorded.
func sdkDefaults(t testing.TB) *telemetrytest.Providers {
	p := telemetrytest.New(t)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p.Spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p.TracerProvider = tp
	return p
}

// spanIndex indexes ended spans by their ID.
type spanIndex map[trace.SpanID]sdktrace.ReadOnlySpan

func indexSpans(spans []sdktrace.ReadOnlySpan) spanIndex {
	byID := spanIndex{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	return byID
}

// waitFor waits for saga id with a context whose span is called "wait":
// Wait may load the saga from the log, and the load's span, a child of
// that span, is none of the saga's run.
func waitFor(t testing.TB, tp trace.TracerProvider, o *saga.Orchestrator, id string) (saga.Status, error) {
	t.Helper()
	ctx, span := tp.Tracer("test").Start(context.Background(), "wait")
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return o.Wait(ctx, id)
}

// parentName names s's parent, for failure messages.
func (x spanIndex) parentName(s sdktrace.ReadOnlySpan) string {
	if p, ok := x[s.Parent().SpanID()]; ok {
		return strconv.Quote(p.Name())
	}
	if s.Parent().IsValid() {
		return "(not recorded)"
	}
	return "(none)"
}

// ofWait reports whether s is a child of a span of waitFor.
func (x spanIndex) ofWait(s sdktrace.ReadOnlySpan) bool {
	p, ok := x[s.Parent().SpanID()]
	return ok && p.Name() == "wait"
}

// ofOperator reports whether s is a child of a span of Retry or Resolve,
// or of the test's span "operator" (their first load, which finds the
// saga's name for their spans').
func (x spanIndex) ofOperator(s sdktrace.ReadOnlySpan) bool {
	p, ok := x[s.Parent().SpanID()]
	return ok && (p.Name() == "operator" || strings.HasPrefix(p.Name(), "saga.retry ") || strings.HasPrefix(p.Name(), "saga.resolve "))
}

// sagaParent returns the run span of saga id that s is a child of, or of
// a retry span that is the run span's child; nil if there is none.
func (x spanIndex) sagaParent(s sdktrace.ReadOnlySpan, id string) sdktrace.ReadOnlySpan {
	p, ok := x[s.Parent().SpanID()]
	if ok && p.Name() == "retry" {
		p, ok = x[p.Parent().SpanID()]
	}
	if !ok || !strings.HasPrefix(p.Name(), "saga ") || telemetrytest.Attrs(p)[saga.AttrID].AsString() != id {
		return nil
	}
	return p
}

// TestTelemetryConforms runs sagas through every outcome, a recovery, a
// lost lease, a closed orchestrator and a choreography, then checks every
// span and data point against the documented ones, the parents of the
// spans of steps, compensations, retries and the log's calls, and doc.go
// against them all.
func TestTelemetryConforms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := sdkDefaults(t)
		log := newTracedLog(p.TracerProvider)
		ctx := context.Background()
		opts := func(more ...saga.Option) []saga.Option {
			// No recovery in the background: o2's Recover takes s-1 over.
			return append([]saga.Option{saga.WithTracerProvider(p.TracerProvider), saga.WithMeterProvider(p.MeterProvider),
				saga.WithLease(3 * time.Second), saga.WithRecoverInterval(0)}, more...)
		}
		first := func(ctx context.Context) bool {
			info, _ := saga.StepFromContext(ctx)
			return info.Attempt == 1
		}
		// pay's first attempt and its compensation's fail, so that the
		// default policies retry them; ship fails for good in saga o-fail.
		shop, err := saga.Define("shop", 1,
			saga.Step[order]{Name: "pay",
				Action: func(ctx context.Context, _ order) (func(*order), error) {
					if first(ctx) {
						return nil, errors.New("gateway busy")
					}
					return nil, nil
				},
				Compensate: func(ctx context.Context, _ order) error {
					if first(ctx) {
						return errors.New("gateway busy")
					}
					return nil
				}},
			saga.Step[order]{Name: "ship", Compensate: func(context.Context, order) error { return nil },
				Action: func(_ context.Context, o order) (func(*order), error) {
					if o.ID == "o-fail" {
						return nil, retry.Permanent(errors.New("no courier"))
					}
					return nil, nil
				}},
		)
		require.NoError(t, err)
		doomed, err := saga.Define("doomed", 1,
			saga.Step[order]{Name: "pay", Action: func(context.Context, order) (func(*order), error) { return nil, nil },
				Compensate: func(context.Context, order) error { return retry.Permanent(errors.New("refund refused")) }},
			saga.Step[order]{Name: "ship", Compensate: func(context.Context, order) error { return nil },
				Action: func(context.Context, order) (func(*order), error) {
					return nil, retry.Permanent(errors.New("no courier"))
				}},
		)
		require.NoError(t, err)
		// wait's first attempt waits for its context to end.
		started := make(chan struct{}, 2)
		slow, err := saga.Define("slow", 1, saga.Step[order]{Name: "wait", Idempotent: true,
			Action: func(ctx context.Context, _ order) (func(*order), error) {
				if first(ctx) {
					started <- struct{}{}
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return nil, nil
			},
			Compensate: func(context.Context, order) error { return nil }})
		require.NoError(t, err)

		o1, err := saga.NewOrchestrator(log, opts(saga.WithOwner("o1"))...)
		require.NoError(t, err)
		defer o1.Close(ctx)
		log.failAppend.Store(1) // the saga's first write is tried again
		for _, tc := range []struct {
			def  saga.Definer
			id   string
			want saga.Status
		}{
			{shop, "o-ok", saga.Completed},
			{shop, "o-fail", saga.Compensated},
			{doomed, "o-doomed", saga.NeedsAttention},
			{doomed, "o-doomed-2", saga.NeedsAttention},
		} {
			id, err := o1.Start(ctx, tc.def, order{ID: tc.id}, saga.WithID(tc.id))
			require.NoError(t, err)
			st, _ := waitFor(t, p.TracerProvider, o1, id)
			require.Equal(t, tc.want, st, "saga %s", tc.id)
		}
		// An operator retries one (it needs attention again) and
		// resolves the other.
		opCtx, op := p.TracerProvider.Tracer("test").Start(ctx, "operator")
		require.NoError(t, o1.Retry(opCtx, "o-doomed"))
		st, _ := waitFor(t, p.TracerProvider, o1, "o-doomed")
		require.Equal(t, saga.NeedsAttention, st)
		require.NoError(t, o1.Resolve(opCtx, "o-doomed-2", "refunded by hand"))
		require.ErrorIs(t, o1.Resolve(opCtx, "o-doomed-2", "again"), saga.ErrNotNeedsAttention)
		op.End()

		// o1 runs s-1 but cannot renew its lease, which expires: o2
		// recovers the saga. Once o1 renews again it finds the lease
		// lost and stops.
		_, err = o1.Start(ctx, slow, order{}, saga.WithID("s-1"))
		require.NoError(t, err)
		<-started
		log.failRenew.Store(true)
		time.Sleep(4 * time.Second)
		o2, err := saga.NewOrchestrator(log, opts(saga.WithOwner("o2"), saga.WithDefinitions(slow))...)
		require.NoError(t, err)
		rctx, rspan := p.TracerProvider.Tracer("test").Start(ctx, "start-up")
		n, err := o2.Recover(rctx)
		rspan.End()
		require.NoError(t, err)
		require.Equal(t, 1, n)
		st, err = waitFor(t, p.TracerProvider, o2, "s-1")
		require.NoError(t, err)
		require.Equal(t, saga.Completed, st)
		log.failRenew.Store(false)
		time.Sleep(2 * time.Second)
		synctest.Wait()

		// o2 closes while running s-2: the run is interrupted and
		// releases the lease.
		_, err = o2.Start(ctx, slow, order{}, saga.WithID("s-2"))
		require.NoError(t, err)
		<-started
		closeNow(t, o2)
		require.NoError(t, o1.Close(ctx))

		// A choreography: a reaction that keeps failing gives up and
		// compensates.
		bus := cqrs.NewMemoryBus(cqrs.WithTracerProvider(p.TracerProvider))
		defer bus.Close()
		s := newShop(true)
		s.reserveFn = func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
			s.record("reserve", m)
			return saga.Outcome{}, errors.New("inventory service down")
		}
		c := s.start(t, bus, []saga.ChoreographyOption{saga.WithTracerProvider(p.TracerProvider), saga.WithMeterProvider(p.MeterProvider)},
			cqrs.WithMaxDeliver(2), cqrs.WithRedeliveryBackoff(func(int) time.Duration { return 0 }))
		placeOrder(t, bus, "c-1")
		require.Equal(t, "cancelled", s.wait(t))
		require.NoError(t, c.Close())

		names := make([]string, len(documentedMetrics))
		for i, m := range documentedMetrics {
			names[i] = m.Name
		}
		p.CheckMetrics(t, saga.ScopeName, documentedMetrics, names...)
		p.CheckSpans(t, saga.ScopeName, documentedSpans, "saga {name}", "step {step}", "compensate {step}",
			"saga.retry {name}", "saga.resolve {name}", "saga.react {reaction}")
		p.CheckSpans(t, retry.ScopeName, retrySpans, "retry")
		p.CheckSpans(t, logScope, logSpans, "create", "append", "load", "release", "claim", "reopen")

		// The spans of a saga's run are its span's children (through a
		// retry span for the attempts after the first).
		ended := p.Spans.Ended()
		x := indexSpans(ended)
		retryNames := map[string]bool{}
		for _, sp := range ended {
			attrs := telemetrytest.Attrs(sp)
			switch scope := sp.InstrumentationScope().Name; {
			case scope == retry.ScopeName:
				retryNames[attrs[retry.AttrName].AsString()] = true
				parent := x[sp.Parent().SpanID()]
				if assert.NotNil(t, parent, "the parent of a retry span") {
					assert.True(t, strings.HasPrefix(parent.Name(), "saga "), "retry span's parent: %q; want a saga's", parent.Name())
				}
			case scope == logScope && x.ofWait(sp):
			case scope == logScope && x.ofOperator(sp):
			case scope == logScope && sp.Name() != "claim",
				scope == saga.ScopeName && (strings.HasPrefix(sp.Name(), "step ") || strings.HasPrefix(sp.Name(), "compensate ")):
				id := attrs[saga.AttrID].AsString()
				assert.NotNil(t, x.sagaParent(sp, id), "span %q of saga %s is not a child of the saga's span", sp.Name(), id)
			case scope == logScope && sp.Name() == "claim":
				assert.Equal(t, rspan.SpanContext().SpanID(), sp.Parent().SpanID(), "Recover's claim is a child of its context's span")
			}
		}
		assert.Equal(t, map[string]bool{"saga.step": true, "saga.compensation": true, "saga.log": true}, retryNames,
			"retry.name of the retry spans")

		// The run that lost its lease and the one closed say so.
		reasons := map[string]string{}
		for _, sp := range p.SpansNamed("saga slow") {
			for _, e := range sp.Events() {
				if e.Name == "saga.interrupted" {
					set := attribute.NewSet(e.Attributes...)
					why, _ := set.Value(saga.AttrReason)
					reasons[telemetrytest.Attrs(sp)[saga.AttrID].AsString()] = why.AsString()
				}
			}
		}
		assert.Equal(t, map[string]string{"s-1": "lease_lost", "s-2": "closed"}, reasons)
		slowName := saga.AttrName.String("slow")
		assert.Equal(t, int64(1), p.Int64(t, "saga.leases.claimed", slowName))
		assert.Equal(t, int64(1), p.Int64(t, "saga.leases.lost", slowName))
		assert.NotZero(t, p.HistogramCount(t, "saga.lease.operation.duration", saga.AttrOperation.String("renew")))
		assert.NotZero(t, p.HistogramCount(t, "saga.lease.operation.duration", saga.AttrOperation.String("renew"), semconv.ErrorTypeOther),
			"failed renewals carry error.type")

		telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, append(append([]telemetrytest.Span(nil), documentedSpans...), retrySpans...))
		for _, word := range []string{"saga.interrupted", string(saga.AttrReason), "lease_lost", "log_failed", "saga.step", "saga.compensation",
			"saga.log", "retry.attempts", "retry.calls", "retry.delay", "interrupted"} {
			telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: word}}, nil)
		}
	})
}

// The default retry policies of steps, compensations and log writes
// report to the orchestrator's providers (they reported to the global
// ones); a step's own policy keeps its own providers.
func TestDefaultRetriesReportToTheOrchestratorsProviders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := telemetrytest.New(t)
		log := newTracedLog(p.TracerProvider)
		failFirst := func(ctx context.Context) error {
			if info, _ := saga.StepFromContext(ctx); info.Attempt == 1 {
				return errors.New("busy")
			}
			return nil
		}
		def, err := saga.Define("order", 1,
			saga.Step[order]{Name: "pay", // the default policy
				Action:     func(ctx context.Context, _ order) (func(*order), error) { return nil, failFirst(ctx) },
				Compensate: func(ctx context.Context, _ order) error { return failFirst(ctx) }},
			saga.Step[order]{Name: "ship", Retry: retry.New(retry.WithName("own")),
				Action: func(ctx context.Context, o order) (func(*order), error) {
					if o.ID == "fail" {
						return nil, retry.Permanent(errors.New("no courier"))
					}
					return nil, failFirst(ctx)
				},
				Compensate: func(context.Context, order) error { return nil }},
		)
		require.NoError(t, err)
		o := newOrchestrator(t, log, saga.WithTracerProvider(p.TracerProvider), saga.WithMeterProvider(p.MeterProvider))
		ctx := context.Background()
		log.failAppend.Store(1)
		for _, tc := range []struct {
			id   string
			want saga.Status
		}{{"ok", saga.Completed}, {"fail", saga.Compensated}} {
			id, err := o.Start(ctx, def, order{ID: tc.id})
			require.NoError(t, err)
			st, err := waitFor(t, p.TracerProvider, o, id)
			require.Equal(t, tc.want, st, "saga %s: %v", tc.id, err)
		}

		spans := map[string]int{}
		for _, sp := range p.SpansNamed("retry") {
			spans[telemetrytest.Attrs(sp)[retry.AttrName].AsString()]++
		}
		assert.Equal(t, map[string]int{"saga.step": 2, "saga.compensation": 1, "saga.log": 1}, spans,
			"retry spans by retry.name; the step's own policy (own) reports to the global provider")
		metrics := map[string]bool{}
		for _, sm := range p.Collect(t).ScopeMetrics {
			if sm.Scope.Name != retry.ScopeName {
				continue
			}
			for _, m := range sm.Metrics {
				for _, set := range telemetrytest.AttributeSets(m) {
					v, _ := set.Value(retry.AttrName)
					metrics[m.Name+" "+v.AsString()] = true
				}
			}
		}
		for _, want := range []string{"retry.attempts saga.step", "retry.attempts saga.compensation", "retry.attempts saga.log"} {
			assert.True(t, metrics[want], "no %s in the orchestrator's meter provider; got %v", want, metrics)
		}
		assert.False(t, metrics["retry.attempts own"], "the step's own policy reported to the orchestrator's provider")
	})
}

// markedPropagator is W3C trace context with a field of its own, and
// counts the extractions that found it.
type markedPropagator struct {
	propagation.TraceContext
	extracted atomic.Int32
}

const markField = "x-saga-test"

func (p *markedPropagator) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	p.TraceContext.Inject(ctx, c)
	c.Set(markField, "1")
}

func (p *markedPropagator) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	if c.Get(markField) == "1" {
		p.extracted.Add(1)
	}
	return p.TraceContext.Extract(ctx, c)
}

func (p *markedPropagator) Fields() []string { return append(p.TraceContext.Fields(), markField) }

// setGlobalPropagator makes p the global propagator until the test ends.
// The otel package binds its default propagator for good to the first one
// set; setting an empty one first keeps that default a no-op once the
// test restores it. Tests that call it must not run in parallel.
func setGlobalPropagator(t *testing.T, p propagation.TextMapPropagator) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	otel.SetTextMapPropagator(p)
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
}

// The trace context a saga's record keeps goes through the global
// propagator (it was always W3C trace context); the resumed run still
// links to the original one.
func TestRecordTraceUsesTheGlobalPropagator(t *testing.T) { // not parallel: it sets a global
	prop := &markedPropagator{}
	setGlobalPropagator(t, prop)
	tel := telemetrytest.New(t)
	var j journal
	started, release := make(chan struct{}, 1), make(chan struct{})
	def, err := saga.Define("order", 1, blocking(&j, "pay", true, started, release))
	require.NoError(t, err)
	log := &saga.MemoryLog{}
	ctx := ctxWithin(t, 10*time.Second)
	first, err := saga.NewOrchestrator(log, saga.WithTracerProvider(tel.TracerProvider))
	require.NoError(t, err)
	id, err := first.Start(ctx, def, order{})
	require.NoError(t, err)
	<-started
	closeNow(t, first)
	rec, _, err := log.Load(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "1", rec.Trace[markField], "the record's trace context was not injected by the global propagator: %v", rec.Trace)

	second := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithTracerProvider(tel.TracerProvider))
	_, err = second.Recover(ctx)
	require.NoError(t, err)
	_, err = second.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, int32(1), prop.extracted.Load(), "extractions by the global propagator")
	runs := tel.SpansNamed("saga order")
	require.Len(t, runs, 2)
	require.Len(t, runs[1].Links(), 1)
	assert.Equal(t, runs[0].SpanContext(), runs[1].Links()[0].SpanContext.WithRemote(false), "the resumed run links to the first")
}

// An orchestrator that recovers in the background and renews leases
// records its upkeep in metrics, not spans: idle, it makes no span at all
// (it made a root claim span at every tick, and a root renew span every
// third of the lease).
func TestUpkeepIsMeasuredNotTraced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := sdkDefaults(t)
		log := newTracedLog(p.TracerProvider)
		started := make(chan struct{}, 1)
		def, err := saga.Define("slow", 1, saga.Step[order]{Name: "wait", Idempotent: true,
			Action: func(ctx context.Context, _ order) (func(*order), error) {
				started <- struct{}{}
				<-ctx.Done()
				return nil, ctx.Err()
			},
			Compensate: func(context.Context, order) error { return nil }})
		require.NoError(t, err)
		o, err := saga.NewOrchestrator(log, saga.WithDefinitions(def), saga.WithRecoverInterval(time.Second),
			saga.WithLease(3*time.Second), saga.WithTracerProvider(p.TracerProvider), saga.WithMeterProvider(p.MeterProvider))
		require.NoError(t, err)
		defer o.Close(context.Background())
		claims := func() uint64 {
			return p.HistogramCount(t, "saga.lease.operation.duration", saga.AttrOperation.String("claim"))
		}

		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		assert.Empty(t, p.Spans.Ended(), "spans of an idle orchestrator")
		assert.Equal(t, uint64(10), claims(), "claims in 10s, one a second")

		// A saga running: its lease is renewed every second, untraced.
		_, err = o.Start(context.Background(), def, order{}, saga.WithID("s-1"))
		require.NoError(t, err)
		<-started
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.GreaterOrEqual(t, p.HistogramCount(t, "saga.lease.operation.duration", saga.AttrOperation.String("renew")), uint64(9))
		for _, sp := range p.Spans.Ended() {
			if sp.InstrumentationScope().Name == logScope {
				assert.Contains(t, []string{"create", "append"}, sp.Name(), "the log's only spans are the saga's writes")
			}
		}

		// A saga left by a crashed orchestrator is resumed at the next
		// tick: its run is traced, with its load, while the claim is not.
		ctx := context.Background()
		require.NoError(t, log.Log.Create(ctx, saga.Record{ID: "s-2", Name: "slow", Version: 1, Data: []byte(`{}`)}, "dead", time.Second))
		require.NoError(t, log.Log.Release(ctx, "s-2", "dead"))
		<-started
		synctest.Wait()
		closeNow(t, o)
		x := indexSpans(p.Spans.Ended())
		var resumed, loads int
		for _, sp := range p.Spans.Ended() {
			switch {
			case sp.Name() == "saga slow" && telemetrytest.Attrs(sp)[saga.AttrResumed].AsBool():
				resumed++
				assert.False(t, sp.Parent().IsValid(), "the background recovery's run is a root span")
			case sp.Name() == "load":
				loads++
				assert.NotNil(t, x.sagaParent(sp, "s-2"), "the resumed run's load is its span's child")
			case sp.Name() == "claim" || sp.Name() == "renew":
				t.Errorf("span %q of the orchestrator's upkeep", sp.Name())
			}
		}
		assert.Equal(t, 1, resumed, "resumed runs traced")
		assert.Equal(t, 1, loads, "loads traced")
		assert.Equal(t, int64(1), p.Int64(t, "saga.leases.claimed", saga.AttrName.String("slow")))
	})
}

// Every call a saga's run makes to the log is a child of the saga's span:
// Create was the child of the caller's span, a sibling of the saga's.
func TestLogCallsAreChildrenOfTheSagaSpan(t *testing.T) {
	tel := telemetrytest.New(t)
	log := newTracedLog(tel.TracerProvider)
	var j journal
	started, release := make(chan struct{}, 1), make(chan struct{})
	def, err := saga.Define("order", 1, step(&j, "pay", nil), blocking(&j, "ship", true, started, release))
	require.NoError(t, err)
	ctx := ctxWithin(t, 10*time.Second)
	first, err := saga.NewOrchestrator(log, saga.WithTracerProvider(tel.TracerProvider))
	require.NoError(t, err)
	callCtx, call := tel.TracerProvider.Tracer("test").Start(ctx, "request")
	id, err := first.Start(callCtx, def, order{})
	call.End()
	require.NoError(t, err)
	<-started
	closeNow(t, first) // releases the lease under the run's span
	second := newOrchestrator(t, log, saga.WithDefinitions(def), saga.WithTracerProvider(tel.TracerProvider))
	_, err = second.Recover(ctx)
	require.NoError(t, err)
	st, err := waitFor(t, tel.TracerProvider, second, id)
	require.NoError(t, err)
	require.Equal(t, saga.Completed, st)

	x := indexSpans(tel.Spans.Ended())
	seen := map[string]int{}
	for _, sp := range tel.Spans.Ended() {
		if sp.InstrumentationScope().Name != logScope || sp.Name() == "claim" || x.ofWait(sp) {
			continue
		}
		seen[sp.Name()]++
		parent := x.sagaParent(sp, id)
		if assert.NotNil(t, parent, "span %q: parent %s is not the saga's span", sp.Name(), x.parentName(sp)) && sp.Name() == "create" {
			assert.Equal(t, call.SpanContext().SpanID(), parent.Parent().SpanID(), "the saga's span is the caller's child")
		}
	}
	for _, name := range []string{"create", "append", "release", "load"} {
		assert.NotZero(t, seen[name], "no %s span", name)
	}
}

// With saga/pglog's own spans: its writes of a saga are children of the
// saga's span.
func TestPostgresLogSpansAreChildrenOfTheSagaSpan(t *testing.T) {
	pool := testenv.PostgresPool(t, 4)
	schema := testenv.Schema(t, "saga_tel_")
	tel := telemetrytest.New(t)
	ctx := ctxWithin(t, 20*time.Second)
	log, err := pglog.New(pool, pglog.WithSchema(schema), pglog.WithTracerProvider(tel.TracerProvider))
	require.NoError(t, err)
	require.NoError(t, log.Migrate(ctx))
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil), step(&j, "ship", nil))
	require.NoError(t, err)
	o := newOrchestrator(t, log, saga.WithTracerProvider(tel.TracerProvider))
	callCtx, call := tel.TracerProvider.Tracer("test").Start(ctx, "request")
	id, err := o.Start(callCtx, def, order{})
	call.End()
	require.NoError(t, err)
	st, err := waitFor(t, tel.TracerProvider, o, id)
	require.NoError(t, err)
	require.Equal(t, saga.Completed, st)

	x := indexSpans(tel.Spans.Ended())
	seen := map[string]int{}
	for _, sp := range tel.Spans.Ended() {
		if sp.InstrumentationScope().Name != pglog.ScopeName || telemetrytest.Attrs(sp)[saga.AttrID].AsString() != id || x.ofWait(sp) {
			continue
		}
		op, _, _ := strings.Cut(sp.Name(), " ")
		seen[op]++
		assert.NotNil(t, x.sagaParent(sp, id), "pglog span %q: parent %s is not the saga's span", sp.Name(), x.parentName(sp))
	}
	assert.NotZero(t, seen["create"], "no create span of pglog: %v", seen)
	assert.NotZero(t, seen["append"], "no append span of pglog: %v", seen)
}

// With a tracer that makes no recording span (here a no-op provider) the
// orchestrator starts none, but the caller's span context still reaches
// the record's trace context, the steps and the log's calls, as a
// non-recording span would have passed it on.
func TestUntracedRunPassesTheCallersSpanContextOn(t *testing.T) {
	t.Parallel()
	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true})
	var seen sync.Map // step name -> the span context its action saw
	stepOf := func(name string) saga.Step[order] {
		return saga.Step[order]{Name: name, Action: func(ctx context.Context, o order) (func(*order), error) {
			seen.Store(name, trace.SpanContextFromContext(ctx))
			return nil, nil
		}, Compensate: func(context.Context, order) error { return nil }}
	}
	def, err := saga.Define("order", 1, stepOf("pay"), stepOf("ship"))
	require.NoError(t, err)
	log := &saga.MemoryLog{}
	o := newOrchestrator(t, log, saga.WithTracerProvider(tracenoop.NewTracerProvider()))
	ctx := trace.ContextWithRemoteSpanContext(ctxWithin(t, 10*time.Second), caller)
	id, err := o.Start(ctx, def, order{})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, saga.Completed, st)
	for _, name := range []string{"pay", "ship"} {
		got, ok := seen.Load(name)
		require.True(t, ok, "step %s did not run", name)
		assert.Equal(t, caller, got, "the span context step %s saw", name)
	}
	rec, _, err := log.Load(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, caller, trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(rec.Trace))),
		"the record's trace context: %v", rec.Trace)
}
