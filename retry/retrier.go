package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Retrier calls an operation again when it fails, waiting longer each time,
// until it succeeds, fails in a way not worth retrying, or the retrier's
// limits run out.
//
// A Retrier is safe for concurrent use: each call of [Retrier.Do] keeps its
// own state. A first attempt that succeeds starts no span and allocates
// nothing.
type Retrier struct {
	cfg config
	tel *instruments
}

// New returns a retrier. With no options it makes at most 3 attempts,
// waiting a random time up to 100ms, then up to 200ms (exponential backoff
// with full jitter), and retries every error except [Permanent] ones,
// circuit-breaker rejections and the context's own cancellation.
//
// New panics if an option is invalid (a nil option among them), naming
// every invalid option, as [time.NewTicker] does for a non-positive
// interval: options are written in code, so a bad one is a programming
// error. For options built from configuration, check them first with
// [Validate], which returns the same faults as an error.
func New(opts ...Option) *Retrier {
	cfg, err := newConfig(opts)
	if err != nil {
		panic(fmt.Sprintf("retry: New: %v", err))
	}
	r := &Retrier{cfg: cfg, tel: newInstruments(cfg.name, cfg.tracerProvider, cfg.meterProvider)}
	r.tel.observe(r, cfg.meterProvider)
	return r
}

// Do calls fn until it returns nil or the retrier gives up, and returns nil
// or an [*Error] that holds every attempt's error.
//
// fn receives ctx (from the second attempt on, with the retry span and the
// resend count, see [ResendCount]). Do stops at once when ctx is done,
// without waiting out the current delay, and never waits after the last
// attempt or past ctx's deadline: when the next wait would end after the
// deadline it gives up at once with [ErrExhausted].
//
// If fn is nil, Do returns [ErrNilFunc], and on a nil *Retrier (or a zero
// Retrier, not made by [New]) it returns [ErrNilRetrier]: in both cases at
// once, without calling anything or counting a call.
func (r *Retrier) Do(ctx context.Context, fn func(context.Context) error) error {
	if r == nil || r.tel == nil || fn == nil {
		return badCall(r, fn)
	}
	if r.cfg.budget != nil {
		r.cfg.budget.recordAttempt()
	}
	// The clock is read up front only for an elapsed-time limit, which
	// counts from the first attempt; otherwise a success never reads it.
	var start time.Time
	if r.cfg.maxElapsed > 0 {
		start = time.Now()
	}
	err := fn(ctx)
	if err == nil {
		// One add counts the call, its outcome and its one attempt.
		r.tel.firstSuccess.Inc()
		return nil
	}
	r.tel.attempts.Inc()
	return r.retry(ctx, fn, err, start)
}

// badCall returns the error of a call of Do that cannot be made.
func badCall(r *Retrier, fn func(context.Context) error) error {
	if r == nil || r.tel == nil {
		return ErrNilRetrier
	}
	return ErrNilFunc
}

// Do is [Retrier.Do] for an operation that returns a value: it returns the
// value of the last attempt along with Retrier.Do's error. If fn is nil it
// returns the zero T and [ErrNilFunc] at once; on a nil *Retrier, the zero
// T and [ErrNilRetrier].
func Do[T any](ctx context.Context, r *Retrier, fn func(context.Context) (T, error)) (T, error) {
	var v T
	if fn == nil {
		return v, badCall(r, nil)
	}
	err := r.Do(ctx, func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	})
	return v, err
}

// retry runs the attempts after a failed first one, which started at start
// (zero unless an elapsed-time limit is set).
func (r *Retrier) retry(ctx context.Context, fn func(context.Context) error, err error, start time.Time) error {
	// The span, the clock and the backoff are only for a sequence that
	// really retries: an error not worth retrying (a rejection by an open
	// breaker, during an outage) costs none of them.
	span := trace.SpanFromContext(context.Background()) // non-recording until a retry
	started, ended := false, false
	errs := make([]error, 0, min(r.cfg.maxAttempts, 16))
	var ds *delays
	attempt := 1
	defer func() {
		if started && !ended {
			// An attempt panicked: the span still ends with Do, and
			// says how, rather than never reaching the exporter.
			span.SetAttributes(AttrAttempts.Int(attempt), semconv.ErrorTypeKey.String("panic"))
			span.SetStatus(codes.Error, "retry: an attempt panicked")
			span.End()
		}
	}()
	for {
		errs = append(errs, unwrapMarkers(err))
		permanent, wait, hasWait := markers(err)
		outcome, retryable, reason := r.classify(ctx, err, permanent, attempt)
		var delay time.Duration
		if retryable {
			if start.IsZero() {
				start = time.Now()
			}
			if hasWait {
				delay = wait
			} else {
				if ds == nil {
					ds = newDelays(r.cfg.backoff, r.cfg.jitter)
				}
				delay = ds.next()
			}
			if outcome, reason = r.fits(ctx, start, delay); reason == nil && r.cfg.budget != nil && !r.cfg.budget.withdraw() {
				reason, outcome = ErrBudgetExhausted, outcomeBudgetExhausted
			}
			retryable = reason == nil
		}
		if !retryable {
			ended = true
			return r.giveUp(span, attempt, errs, reason, outcome)
		}
		if !started {
			ctx, span = r.tel.tracer.Start(ctx, "retry", r.tel.spanOpts...)
			started = true
		}

		r.tel.delay.Record(ctx, delay.Seconds(), r.tel.delayOpts...)
		if span.IsRecording() {
			span.AddEvent("retry.attempt_failed", trace.WithAttributes(
				AttrAttempt.Int(attempt), telemetry.ErrorType(err), AttrDelay.Float64(delay.Seconds())))
		}
		for _, f := range r.cfg.onRetry {
			f(ctx, attempt, errs[len(errs)-1], delay)
		}
		if err := sleep(ctx, delay); err != nil {
			ended = true
			return r.giveUp(span, attempt, errs, err, outcomeCanceled)
		}

		attempt++
		err = fn(context.WithValue(ctx, resendKey{}, attempt-1))
		r.tel.attempts.Inc()
		if err == nil {
			r.tel.successAfterRetry.Inc()
			span.SetAttributes(AttrAttempts.Int(attempt), AttrOutcome.String(outcomeNames[outcomeSuccessAfterRetry]))
			ended = true
			span.End()
			return nil
		}
	}
}

// classify decides whether err, from attempt number attempt, is worth
// another attempt, and if not, why. permanent tells whether err carries
// the Permanent marker.
func (r *Retrier) classify(ctx context.Context, err error, permanent bool, attempt int) (outcome int, retryable bool, reason error) {
	switch {
	case ctx.Err() != nil:
		return outcomeCanceled, false, context.Cause(ctx)
	case permanent,
		errors.Is(err, circuitbreaker.ErrOpen),
		errors.Is(err, circuitbreaker.ErrTooManyRequests),
		r.cfg.retryIf != nil && !r.cfg.retryIf(err):
		return outcomePermanent, false, nil
	case attempt >= r.cfg.maxAttempts:
		return outcomeExhausted, false, ErrExhausted
	}
	return 0, true, nil
}

// fits reports why waiting delay is not possible, if it is not: past the
// elapsed-time limit or the context's deadline.
func (r *Retrier) fits(ctx context.Context, start time.Time, delay time.Duration) (outcome int, reason error) {
	now := time.Now()
	if r.cfg.maxElapsed > 0 && now.Add(delay).Sub(start) > r.cfg.maxElapsed {
		return outcomeExhausted, ErrExhausted
	}
	if dl, ok := ctx.Deadline(); ok && !now.Add(delay).Before(dl) {
		return outcomeExhausted, ErrExhausted
	}
	return 0, nil
}

func (r *Retrier) giveUp(span trace.Span, attempts int, errs []error, reason error, outcome int) error {
	e := &Error{Attempts: attempts, Last: errs[len(errs)-1], Reason: reason, errs: errs}
	typ := e.ErrorType()
	r.tel.failures.inc(outcome, typ)
	if span.IsRecording() {
		span.SetAttributes(AttrAttempts.Int(attempts), AttrOutcome.String(outcomeNames[outcome]), semconv.ErrorTypeKey.String(typ))
		span.SetStatus(codes.Error, e.Error())
	}
	span.End()
	return e
}

// sleep waits d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		if ctx.Err() != nil {
			return context.Cause(ctx) // as after a wait
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

type resendKey struct{}

// ResendCount returns how many times the current operation was attempted
// before, as a [Retrier] puts it in the context it passes to a retry: 0 for
// a first attempt (or a context that no retrier made), 1 for the first
// retry. It is the value of the http.request.resend_count attribute.
func ResendCount(ctx context.Context) int {
	n, _ := ctx.Value(resendKey{}).(int)
	return n
}
