package retry_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/retry"
)

// documented is the package's telemetry as doc.go describes it.
var (
	documented = []telemetrytest.Instrument{
		{Name: "retry.calls", Kind: telemetrytest.Counter, Unit: "{call}",
			Required: []attribute.Key{retry.AttrName, retry.AttrOutcome}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
		{Name: "retry.attempts", Kind: telemetrytest.Counter, Unit: "{attempt}",
			Required: []attribute.Key{retry.AttrName}},
		{Name: "retry.delay", Kind: telemetrytest.Histogram, Unit: "s",
			Required: []attribute.Key{retry.AttrName}},
	}
	documentedSpans = []telemetrytest.Span{
		{Name: "retry", Kind: trace.SpanKindInternal,
			Required: []attribute.Key{retry.AttrName, retry.AttrAttempts, retry.AttrOutcome},
			Optional: []attribute.Key{semconv.ErrorTypeKey}},
	}
	// documentedEvents are the span events and their attributes.
	documentedEvents = []telemetrytest.Instrument{
		{Name: "retry.attempt_failed", Required: []attribute.Key{retry.AttrAttempt, semconv.ErrorTypeKey, retry.AttrDelay}},
		{Name: "retry.gave_up", Required: []attribute.Key{retry.AttrAttempts}},
		{Name: string(semconv.HTTPRequestResendCountKey)},
	}
)

// TestTelemetryConforms runs a retrier through every outcome and checks
// every data point and span against the documented ones, and doc.go
// against them.
func TestTelemetryConforms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := telemetrytest.New(t)
		budget := retry.NewBudget(retry.WithRatio(0), retry.WithMinRetriesPerSecond(0), retry.WithBurst(1))
		r := retry.New(retry.WithName("inventory"), retry.WithTracerProvider(tel.TracerProvider),
			retry.WithMeterProvider(tel.MeterProvider), retry.WithBackoff(retry.Constant(time.Second)),
			retry.WithJitter(retry.NoJitter), retry.WithMaxAttempts(2), retry.WithBudget(budget))
		ctx := context.Background()
		fail := func(context.Context) error { return errBoom }

		require.NoError(t, r.Do(ctx, func(context.Context) error { return nil })) // success
		op, _ := failing(1, errBoom)
		require.NoError(t, r.Do(ctx, op))                             // success_after_retry, spends the budget
		require.ErrorIs(t, r.Do(ctx, fail), retry.ErrBudgetExhausted) // budget_exhausted
		open := func(context.Context) error { return circuitbreaker.ErrOpen }
		require.ErrorIs(t, r.Do(ctx, open), circuitbreaker.ErrOpen) // permanent
		canceled, cancel := context.WithCancel(ctx)
		require.ErrorIs(t, r.Do(canceled, func(context.Context) error { cancel(); return errBoom }), context.Canceled)

		r2 := retry.New(retry.WithName("inventory"), retry.WithTracerProvider(tel.TracerProvider),
			retry.WithMeterProvider(tel.MeterProvider), retry.WithBackoff(retry.Constant(time.Second)),
			retry.WithMaxAttempts(2))
		require.ErrorIs(t, r2.Do(ctx, fail), retry.ErrExhausted) // exhausted, with a span

		tel.CheckMetrics(t, retry.ScopeName, documented, "retry.calls", "retry.attempts", "retry.delay")
		tel.CheckSpans(t, retry.ScopeName, documentedSpans, "retry")
		tel.CheckEvents(t, documentedEvents, "retry.attempt_failed")
		names := slices.Concat(documented, documentedEvents)
		for _, outcome := range []string{"success", "success_after_retry", "exhausted", "permanent", "budget_exhausted", "canceled"} {
			names = append(names, telemetrytest.Instrument{Name: outcome})
		}
		telemetrytest.CheckDoc(t, "doc.go", names, documentedSpans)
	})
}

// TestCallsThatGiveUpCarryErrorType protects the rule that a metric whose
// operation's span carries error.type carries it too: every retry.calls
// point of a call that gave up has the error.type its span would have,
// from the module's one rule (never a Go type name such as
// *retry.permanentError), and successes have none.
func TestCallsThatGiveUpCarryErrorType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := telemetrytest.New(t)
		r := retry.New(retry.WithTracerProvider(tel.TracerProvider), retry.WithMeterProvider(tel.MeterProvider),
			retry.WithBackoff(retry.Constant(time.Second)), retry.WithMaxAttempts(2))
		ctx := context.Background()
		_ = r.Do(ctx, func(context.Context) error { return nil })
		_ = r.Do(ctx, func(context.Context) error { return errBoom })
		_ = r.Do(ctx, func(context.Context) error { return retry.Permanent(errBoom) })
		_ = r.Do(ctx, func(context.Context) error { return circuitbreaker.ErrOpen })
		_ = r.Do(ctx, func(context.Context) error {
			return retry.Permanent(&retry.StatusError{Response: &http.Response{StatusCode: 404}})
		})
		dl, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		_ = r.Do(dl, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })

		name := retry.AttrName.String("")
		calls := func(outcome string, kv ...attribute.KeyValue) int64 {
			return tel.Int64(t, "retry.calls", append([]attribute.KeyValue{name, retry.AttrOutcome.String(outcome)}, kv...)...)
		}
		assert.Equal(t, int64(1), calls("success"))
		assert.Equal(t, int64(1), calls("exhausted", semconv.ErrorTypeKey.String("retry.exhausted")))
		assert.Equal(t, int64(1), calls("permanent", semconv.ErrorTypeOther))
		assert.Equal(t, int64(1), calls("permanent", semconv.ErrorTypeKey.String("circuitbreaker.open")))
		assert.Equal(t, int64(1), calls("permanent", semconv.ErrorTypeKey.String("404")))
		assert.Equal(t, int64(1), calls("canceled", semconv.ErrorTypeKey.String("context.DeadlineExceeded")))
		assert.Equal(t, int64(2+1+1+1+1+1), tel.Int64(t, "retry.attempts", name))

		// The exhausted call's span says the same.
		spans := tel.SpansNamed("retry")
		require.Len(t, spans, 1)
		assert.Equal(t, codes.Error, spans[0].Status().Code)
		assert.Equal(t, "retry.exhausted", telemetrytest.Attrs(spans[0])[semconv.ErrorTypeKey].AsString())
	})
}

// TestErrorTypesAreBounded protects the cardinality promise of doc.go: a
// retrier reports at most 64 (outcome, error.type) pairs of calls that
// gave up, then counts the others under _OTHER.
func TestErrorTypesAreBounded(t *testing.T) {
	tel := telemetrytest.New(t)
	r := retry.New(retry.WithMeterProvider(tel.MeterProvider))
	ctx := context.Background()
	for i := range 100 {
		_ = r.Do(ctx, func(context.Context) error { return retry.Permanent(typedError(fmt.Sprint("t", i))) })
	}
	var series int
	var total int64
	for _, sm := range tel.Collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "retry.calls" {
				series = len(telemetrytest.AttributeSets(m))
			}
		}
	}
	total = tel.Int64(t, "retry.calls", retry.AttrName.String(""), retry.AttrOutcome.String("permanent"), semconv.ErrorTypeOther)
	assert.Equal(t, 65, series, "retry.calls series: 64 error types and _OTHER")
	assert.Equal(t, int64(100-64), total, "calls counted under _OTHER")
}

type typedError string

func (e typedError) Error() string     { return string(e) }
func (e typedError) ErrorType() string { return string(e) }

// TestTransportTelemetryConforms runs the retrying transport to a server
// that keeps answering 503 under a recording caller span, and checks the
// retrier's metrics and spans, and the span events, against the
// documented ones.
func TestTransportTelemetryConforms(t *testing.T) {
	t.Parallel()
	tel := telemetrytest.New(t)
	steps := make([]httpStep, 3)
	for i := range steps {
		steps[i] = srvReply(http.StatusServiceUnavailable, "busy")
	}
	s := newScriptedHTTPServer(t, steps...)
	rt := s.transport(t, retry.WithName("api"), retry.WithTracerProvider(tel.TracerProvider), retry.WithMeterProvider(tel.MeterProvider))
	ctx, caller := tel.TracerProvider.Tracer("test").Start(t.Context(), "caller")
	resp, err := rt.RoundTrip(newRequest(t, ctx, http.MethodGet, s.URL, nil))
	require.NoError(t, err)
	closeResp(resp)
	caller.End()

	tel.CheckMetrics(t, retry.ScopeName, documented, "retry.calls", "retry.attempts", "retry.delay")
	tel.CheckSpans(t, retry.ScopeName, documentedSpans, "retry")
	tel.CheckEvents(t, documentedEvents, "retry.attempt_failed", "retry.gave_up")
	assert.Equal(t, int64(1), tel.Int64(t, "retry.calls", retry.AttrName.String("api"),
		retry.AttrOutcome.String("exhausted"), semconv.ErrorTypeKey.String("retry.exhausted")))
	failed := tel.SpansNamed("retry")[0].Events()[0]
	assert.Contains(t, failed.Attributes, semconv.ErrorTypeKey.String("503"), "a retried status's error.type is the code")
}

// TestDroppedRetrierTakesItsSeries protects the promise that a retrier's
// counts are not lost when it is dropped before the next collection (as
// at the end of a program), and that its series end after that.
func TestDroppedRetrierTakesItsSeries(t *testing.T) {
	tel := telemetrytest.New(t)
	func() {
		r := retry.New(retry.WithName("short-lived"), retry.WithMeterProvider(tel.MeterProvider))
		_ = r.Do(context.Background(), func(context.Context) error { return nil })
	}()
	kept := retry.New(retry.WithName("kept"), retry.WithMeterProvider(tel.MeterProvider))
	_ = kept.Do(context.Background(), func(context.Context) error { return nil })
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	assert.Equal(t, map[string]bool{"kept": true, "short-lived": true}, tel.AttributeValues(t, retry.AttrName),
		"the dropped retrier's last counts reach the next collection")
	assert.Eventually(t, func() bool {
		runtime.GC()
		return !tel.AttributeValues(t, retry.AttrName)["short-lived"]
	}, 5*time.Second, 10*time.Millisecond, "the dropped retrier's series end")
	assert.Equal(t, map[string]bool{"kept": true}, tel.AttributeValues(t, retry.AttrName))
	runtime.KeepAlive(kept)
}
