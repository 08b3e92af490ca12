// Package retry calls an operation again when it fails with an error that
// may go away: a dropped connection, a dependency restarting, a server
// asking the client to slow down.
//
// A [Retrier] holds the policy: how many attempts ([WithMaxAttempts]), how
// long to wait between them ([WithBackoff]: [Constant], [Linear] or
// [Exponential], built on [github.com/cenkalti/backoff/v4]) and how to spread
// the waits ([WithJitter]), and for how long in all ([WithMaxElapsedTime]).
// It is safe for concurrent use, so one Retrier serves a whole client.
//
//	r := retry.New(retry.WithMaxAttempts(4))
//	err := r.Do(ctx, func(ctx context.Context) error {
//		return inventory.Reserve(ctx, item)
//	})
//
// [Do] does the same for an operation that returns a value.
//
// # What is retried
//
// Every error is retried except:
//
//   - an error marked with [Permanent]: the operation knows that trying
//     again is pointless (a validation error, a 404);
//   - an error for which the [WithRetryIf] predicate says no;
//   - a rejection by an open circuit breaker ([circuitbreaker.ErrOpen] or
//     [circuitbreaker.ErrTooManyRequests]): the breaker already knows the
//     dependency is down;
//   - any error once the caller's context is done.
//
// An error wrapped with [After] carries its own wait, for a server that
// said when to come back. The retrier never sleeps past the context's
// deadline or after the last attempt; it gives up with an [*Error] that
// holds every attempt's error and why it stopped ([ErrExhausted],
// [ErrBudgetExhausted] or the context's error).
//
// # Budgets
//
// Retries multiply load on a dependency that is already failing: three
// attempts at each of three layers make 27 calls for one. A [Budget],
// shared by the retriers that call one dependency, caps their retries at a
// fraction of their calls plus a small floor for quiet services: by
// default 20% of the calls, plus 10 retries a second, plus 20 at once when
// the outage starts (see [Budget] for the exact bound). At high traffic
// that is about 20% more load; at low traffic the floor lets every call
// retry.
//
//	budget := retry.NewBudget() // one per dependency, shared
//	r := retry.New(retry.WithBudget(budget))
//
// # Bad input
//
// [New], [NewTransport] and [NewBudget] panic on an invalid option, naming
// every one that is invalid: options are usually written in code. For
// options built from configuration, [Validate] and [ValidateBudget] return
// the same faults as an error instead. At call time nothing panics: a nil
// operation gets [ErrNilFunc], a nil [*Retrier] [ErrNilRetrier].
//
// # HTTP
//
// [NewTransport] retries HTTP requests that are safe to send again:
// idempotent methods or requests with an Idempotency-Key header, with a body
// it can replay, on transport errors and 429, 502, 503 and 504 responses,
// honouring Retry-After. Compose it with the circuit breaker inside:
//
//	attempt := otelhttp.NewTransport(http.DefaultTransport,
//		otelhttp.WithClientTrace(retry.ClientTrace))
//	client := &http.Client{
//		Transport: retry.NewTransport(circuitbreaker.NewTransport(attempt)),
//	}
//
// so that each attempt is judged by the breaker, an open breaker ends the
// retries at once, and each attempt gets an HTTP client span carrying
// http.request.resend_count.
//
// # Cost
//
// A first attempt that succeeds costs one atomic add, which counts the
// call, its outcome and its attempt, whatever the providers, and
// allocates nothing; a budget adds an atomic load (and a compare-and-swap
// while it is not full). Only when a retry happens
// does the retrier start a span, read the clock and build its backoff. A
// failure that is not retried (a rejection by an open breaker) costs an
// [*Error], its error.type and a count under a read lock.
//
// # Telemetry
//
// Metrics come from the meter named [ScopeName] of the [WithMeterProvider]
// provider (the global one by default). Every data point carries
// retry.name ([WithName]; empty by default).
//
//   - retry.calls (counter, {call}): calls of [Retrier.Do], by
//     retry.outcome: success (at the first attempt), success_after_retry,
//     exhausted, permanent (an error not worth retrying),
//     budget_exhausted or canceled. Calls that gave up also carry
//     error.type, as the retry span does: retry.exhausted,
//     retry.budget_exhausted, the context's error, or the error.type of
//     the error not retried (circuitbreaker.open, a status code...).
//   - retry.attempts (counter, {attempt}): calls of the operation, first
//     attempts and retries.
//   - retry.delay (histogram, s): the waits before retries.
//
// Calls and attempts are counted in memory and reported by asynchronous
// (observable) instruments when the SDK collects: a synchronous SDK
// counter would cost many times a first attempt. What that trades: these
// counts carry no exemplars (retry.delay does), they reach the SDK only
// at collection, and series that never moved are not reported. A retrier
// reports while it is reachable, and once more at the first collection
// after it is garbage-collected, so that no count is lost; then its series
// end. It reports at most 64 (retry.outcome, error.type) pairs of calls
// that gave up; later ones count under error.type _OTHER.
//
// Spans come from the tracer named [ScopeName] of the [WithTracerProvider]
// provider (the global one by default):
//
//   - retry (internal): from the moment the first attempt has failed and
//     another will be made, to the end of Do; the attempts after the
//     first run inside it. Attributes: retry.name, retry.attempts (how
//     many were made), retry.outcome, and on failure error.type with
//     status Error; an attempt that panics ends it with error.type
//     panic, without retry.outcome, and the panic goes on to the
//     caller. A call that succeeds at once, or gives up without
//     retrying, starts none.
//
// Span events:
//
//   - retry.attempt_failed, on the retry span, for each failed attempt
//     that is retried: retry.attempt (1 for the first), error.type and
//     retry.delay (the wait before the next attempt, in seconds).
//   - retry.gave_up, on the caller's span, when [NewTransport] gives up
//     after more than one attempt and hands back the last response:
//     retry.attempts.
//
// With [ClientTrace], otelhttp's span of each retried HTTP attempt
// carries http.request.resend_count.
package retry
