package retry_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/retry"
)

func TestTelemetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := telemetrytest.New(t)
		r := retry.New(retry.WithName("inventory"), retry.WithTracerProvider(tel.TracerProvider), retry.WithMeterProvider(tel.MeterProvider),
			retry.WithBackoff(retry.Constant(time.Second)), retry.WithJitter(retry.NoJitter))
		name := retry.AttrName.String("inventory")
		outcome := func(o string) []attribute.KeyValue { return []attribute.KeyValue{name, retry.AttrOutcome.String(o)} }
		tracer := tel.TracerProvider.Tracer("test")

		// A first-attempt success: counted, no span.
		require.NoError(t, r.Do(context.Background(), func(context.Context) error { return nil }))
		assert.Empty(t, tel.Spans.Ended(), "no span unless a retry happens")

		// Two failures then a success, under a parent span.
		ctx, parent := tracer.Start(context.Background(), "checkout")
		op, _ := failing(2, errBoom)
		require.NoError(t, r.Do(ctx, func(ctx context.Context) error {
			_, s := tracer.Start(ctx, "attempt")
			defer s.End()
			return op(ctx)
		}))
		parent.End()

		// Exhausted.
		_ = r.Do(context.Background(), func(context.Context) error { return errBoom })

		assert.Equal(t, int64(1+3+3), tel.Int64(t, "retry.attempts", name))
		assert.Equal(t, int64(1), tel.Int64(t, "retry.calls", outcome("success")...))
		assert.Equal(t, int64(1), tel.Int64(t, "retry.calls", outcome("success_after_retry")...))
		assert.Equal(t, int64(1), tel.Int64(t, "retry.calls", append(outcome("exhausted"), semconv.ErrorTypeKey.String("retry.exhausted"))...))
		assert.Equal(t, uint64(4), tel.HistogramCount(t, "retry.delay", name))
		assert.Equal(t, "s", tel.Metric(t, "retry.delay").Unit)

		var retrySpans []string
		var parentID, okRetryID = parent.SpanContext().SpanID(), [8]byte{}
		for _, s := range tel.Spans.Ended() {
			if s.Name() == "retry" {
				retrySpans = append(retrySpans, s.Status().Code.String())
				if s.Parent().SpanID() == parentID {
					okRetryID = s.SpanContext().SpanID()
					assert.Contains(t, s.Attributes(), retry.AttrAttempts.Int(3))
					assert.Contains(t, s.Attributes(), retry.AttrOutcome.String("success_after_retry"))
					require.Len(t, s.Events(), 2)
					assert.Equal(t, "retry.attempt_failed", s.Events()[0].Name)
					assert.Contains(t, s.Events()[0].Attributes, retry.AttrAttempt.Int(1))
					assert.Contains(t, s.Events()[1].Attributes, retry.AttrDelay.Float64(1))
				} else {
					assert.Equal(t, codes.Error, s.Status().Code)
					assert.Contains(t, s.Attributes(), semconv.ErrorTypeKey.String("retry.exhausted"))
					assert.Contains(t, s.Attributes(), retry.AttrOutcome.String("exhausted"))
				}
			}
		}
		assert.Len(t, retrySpans, 2)
		var attemptParents []string
		for _, s := range tel.Spans.Ended() {
			if s.Name() == "attempt" {
				switch s.Parent().SpanID() {
				case parentID:
					attemptParents = append(attemptParents, "checkout")
				case okRetryID:
					attemptParents = append(attemptParents, "retry")
				}
			}
		}
		assert.Equal(t, []string{"checkout", "retry", "retry"}, attemptParents, "retries run inside the retry span")
	})
}

// TestFirstSuccessAllocatesNothing protects the hot path: a first attempt
// that succeeds allocates nothing, with no-op and with SDK providers.
func TestFirstSuccessAllocatesNothing(t *testing.T) {
	tel := telemetrytest.New(t)
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	for name, r := range map[string]*retry.Retrier{
		"noop":   retry.New(),
		"sdk":    retry.New(retry.WithTracerProvider(tel.TracerProvider), retry.WithMeterProvider(tel.MeterProvider)),
		"budget": retry.New(retry.WithBudget(retry.NewBudget())),
	} {
		if n := testing.AllocsPerRun(1000, func() { _ = r.Do(ctx, ok) }); n != 0 {
			t.Errorf("%s: Do() allocates %v times on a first-attempt success; want 0", name, n)
		}
		if n := testing.AllocsPerRun(1000, func() {
			_, _ = retry.Do(ctx, r, func(context.Context) (int, error) { return 1, nil })
		}); n != 0 {
			t.Errorf("%s: generic Do() allocates %v times on a first-attempt success; want 0", name, n)
		}
	}
}

// TestNoSpanWithoutRetry protects outages from paying for spans: an error
// that is not retried starts no span.
func TestNoSpanWithoutRetry(t *testing.T) {
	tel := telemetrytest.New(t)
	r := retry.New(retry.WithTracerProvider(tel.TracerProvider), retry.WithMeterProvider(tel.MeterProvider))
	err := r.Do(context.Background(), func(context.Context) error { return retry.Permanent(errBoom) })
	require.ErrorIs(t, err, errBoom)
	assert.Empty(t, tel.Spans.Ended())
	assert.Equal(t, int64(1), tel.Int64(t, "retry.calls", retry.AttrName.String(""), retry.AttrOutcome.String("permanent"),
		semconv.ErrorTypeOther))
}
