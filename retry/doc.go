// Package retry calls an operation again when it fails with an error that
// may go away: a dropped connection, a dependency restarting, a server
// asking the client to slow down.
//
// A [Retrier] holds the policy: how many attempts ([WithMaxAttempts]), how
// long to wait between them ([WithBackoff]: [Constant], [Linear] or
// [Exponential], built on github.com/cenkalti/backoff/v4) and how to spread
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
//   - a rejection by an open circuit breaker (circuitbreaker.ErrOpen or
//     ErrTooManyRequests): the breaker already knows the dependency is down;
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
// attempts at each of three layers make nine calls for one. A [Budget],
// shared by the retriers that call one dependency, caps retries at a
// fraction of first attempts (20% by default), so an outage adds at most
// that much load.
//
// # HTTP
//
// [NewTransport] retries HTTP requests that are safe to send again:
// idempotent methods or requests with an Idempotency-Key header, with a body
// it can replay, on transport errors and 429, 502, 503 and 504 responses,
// honouring Retry-After. Compose it with the circuit breaker inside:
//
//	client := &http.Client{Transport: retry.NewTransport(
//		circuitbreaker.NewTransport(otelhttp.NewTransport(http.DefaultTransport,
//			otelhttp.WithClientTrace(retry.ClientTrace))))}
//
// so that each attempt is judged by the breaker, an open breaker ends the
// retries at once, and each attempt gets an HTTP client span carrying
// http.request.resend_count.
//
// # Cost
//
// A first attempt that succeeds costs two counter increments (free with
// the default no-op providers) and allocates nothing; a budget adds one
// atomic load. Only when a retry happens does the retrier start a span,
// read the clock and build its backoff: a failure that is not retried (a
// rejection by an open breaker) costs an [*Error] and nothing more.
//
// # Telemetry
//
// Metrics, from the meter named [ScopeName] of the [WithMeterProvider]
// provider (the global one by default):
//
//	| name           | kind      | unit      | attributes                 |
//	|----------------|-----------|-----------|----------------------------|
//	| retry.attempts | counter   | {attempt} | retry.name                 |
//	| retry.calls    | counter   | {call}    | retry.name, retry.outcome  |
//	| retry.delay    | histogram | s         | retry.name                 |
//
// retry.outcome is success, success_after_retry, exhausted, permanent,
// budget_exhausted or canceled. retry.name is set with [WithName].
//
// Spans, from the tracer named [ScopeName] of the [WithTracerProvider]
// provider:
//
//	| span  | when                                    | attributes                                                   |
//	|-------|-----------------------------------------|--------------------------------------------------------------|
//	| retry | from the first retry to the end of Do   | retry.name, retry.attempts, retry.outcome, error.type on failure |
//
// The retry span starts when the first attempt has failed and another will
// be made; it has a retry.attempt_failed event per failed attempt
// (retry.attempt, error.type, retry.delay in seconds), and the attempts after
// the first run inside it. With [ClientTrace], otelhttp's span for each
// retried HTTP attempt carries http.request.resend_count; a transport that
// hands back a response after giving up adds a retry.gave_up event to the
// caller's span.
package retry
