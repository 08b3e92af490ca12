// Package circuitbreaker stops calling a dependency that keeps failing, so
// that a service fails fast instead of piling up requests on a dependency
// that cannot answer them, and gives the dependency room to recover.
//
// A [Breaker] watches the outcomes of the calls made through it. While it is
// closed every call goes through. When, over a window of recent calls, too
// many fail (or are too slow) it opens: calls are rejected at once with an
// error wrapping [ErrOpen], without being made. After the open duration it
// turns half-open and lets a few probe calls through: if they succeed it
// closes, and if one fails it opens again.
//
//	b := circuitbreaker.New("payments")
//	err := b.Execute(ctx, func(ctx context.Context) error {
//		return payments.Charge(ctx, order)
//	})
//	if errors.Is(err, circuitbreaker.ErrOpen) {
//		// payments is down: answer from a fallback, or tell the user to retry
//	}
//
// [Do] does the same for a call that returns a value, and [Breaker.Allow]
// is the two-step form for calls that cannot be wrapped in a function.
//
// # States
//
// A breaker moves between its three states ([StateClosed], [StateOpen],
// [StateHalfOpen]) on the outcomes of calls and the passing of time, and
// by hand with [Breaker.Trip] and [Breaker.Reset]:
//
//	               the window's failure rate, slow-call rate or
//	               run of failures reaches its threshold
//	+--------+ ----------------------------------------> +--------+
//	| closed |                                           |  open  |
//	+--------+ <-----+                          +------> +--------+
//	                 |                          |            |
//	   enough probes |                          | a probe    | the open
//	       succeeded |                          | failed,    | duration
//	                 |     +-------------+      | was slow   | passed
//	                 +---- |  half-open  | -----+ or timed   |
//	                       +-------------+        out        |
//	                              ^                          |
//	                              +--------------------------+
//
//	Trip:  any state -> open, until Reset (no probes meanwhile)
//	Reset: any state -> closed, with an empty window
//
// An open breaker rejects calls for [WithOpenDuration], lengthened at random
// by [WithOpenJitter] so that a fleet that tripped together does not probe
// together. The rejection error is a [*RejectedError] saying which breaker
// rejected the call and how long it has left to wait, as of when the
// message is read. Half-open, the breaker admits up to
// [WithHalfOpenProbes] calls at once, but never more than the successes it
// still needs, turns away the others with [ErrTooManyRequests], and closes
// after [WithHalfOpenSuccesses] successes. A probe that never returns does
// not wedge it: after [WithProbeTimeout] it counts as failed.
//
// [WithOnStateChange] is told of every change, with the window that caused
// it, outside any lock and in order.
//
// # Deciding to trip
//
// By default a breaker keeps the last 100 outcomes ([WithCountWindow]) and
// trips when at least 20 of them are in ([WithMinimumCalls]) and half of
// them failed ([WithFailureRate]). [WithTimeWindow] keeps the calls of the
// last few seconds instead. [WithSlowCalls] also trips on the share of slow
// calls, which catches a dependency that is up but drowning before it starts
// to time out. [WithConsecutiveFailures] is the simple rule of
// sony/gobreaker: trip after n failures in a row.
//
// Which errors are failures is up to [WithClassifier]. By default every
// error is, except [context.Canceled]: the caller giving up says nothing
// about the dependency.
//
// A call counts in the state it was admitted in: one that was admitted
// before the breaker tripped and finishes after it does not count towards
// the probes, and one admitted before a [Breaker.Reset] does not count in the
// fresh window.
//
// # Bad input
//
// Options are checked when the breaker is built. [New], [NewGroup],
// [NewTransport] and [Middleware] panic on a bad one, naming every bad
// option at once, since options are normally written in code. Where their
// values come from a configuration file, check them with [Validate] first,
// which returns the same faults as an error. A nil function passed to
// [Breaker.Execute] or [Do] is refused with [ErrNilFunc], not a panic, and
// a call through a nil or zero Breaker with [ErrNilBreaker].
//
// # Many dependencies, and HTTP
//
// A [Group] holds one breaker per key (per host, per route), created on
// demand from one set of options, with a bound on how many it keeps.
// [NewTransport] puts a group in front of an [http.RoundTripper], one
// breaker per host and port; 5xx and 429 responses count as failures and a
// rejected request never reaches the network. [Middleware] protects a
// server's own handler, answering 503 with Retry-After while open.
//
// Combined with retries, put the breaker inside them, so that each attempt
// is judged on its own and an open breaker ends the retries at once (treat
// [ErrOpen] as not worth retrying).
//
// # Cost
//
// In the closed state admission is one atomic load and recording a success
// in a window of successes another load plus one atomic add to the
// success counter: no lock, no allocation, no clock read. Rejection is as
// cheap. Timing calls (for slow-call detection or [WithDurationHistogram])
// adds two reads of the monotonic clock. The breaker starts no span:
// rejections and state changes are events on the caller's span, and only
// when that span is recording.
//
// # Telemetry
//
// Metrics come from the meter named [ScopeName] of the [WithMeterProvider]
// provider (the global one by default). Every data point carries
// circuitbreaker.name.
//
//   - circuitbreaker.calls (counter, {call}): calls through the breaker,
//     by circuitbreaker.outcome: success, failure, slow (a success slower
//     than the slow-call threshold), ignored or rejected.
//   - circuitbreaker.state (gauge, {state}): 1 for the
//     circuitbreaker.state the breaker is in (closed, open or half-open),
//     0 for the others.
//   - circuitbreaker.state.transitions (counter, {transition}): changes
//     of state, by circuitbreaker.previous_state and circuitbreaker.state.
//   - circuitbreaker.call.duration (histogram, s): the duration of calls,
//     by circuitbreaker.outcome; only when calls are timed
//     ([WithSlowCalls], [WithDurationHistogram]).
//
// Calls and transitions are counted in memory and reported by asynchronous
// (observable) instruments when the SDK collects, with the state: a
// synchronous SDK counter would cost several times the breaker itself.
// What that trades: these counts carry no exemplars (the duration
// histogram does), and only outcomes and transitions that happened are
// reported. A breaker reports its series while it is reachable and a
// [Group] drops an evicted (or [Group.Remove]d) breaker's series with
// it, so a group (and so
// [NewTransport], whose breakers are named by host) reports at most
// [WithMaxBreakers] breakers: at most 5 call, 9 transition and 3 state
// series each. The synchronous duration histogram keeps the series of
// evicted breakers, up to the SDK's cardinality limit (2,000 series per
// instrument by default, then one overflow series).
//
// A key that comes back to a group gets a breaker whose calls and
// transitions count on from those of the breaker the group let go, so that
// the counters, reported under the same attributes, do not go backwards.
// The group remembers the counts of as many gone keys as it holds
// breakers, at most [DefaultMaxBreakers], forgetting the oldest first: a
// key forgotten starts again from zero, which a backend sees as a counter
// reset. With delta temporality the SDK forgets a series that a collection
// did not report, so if one ran while the key was gone, the first
// collection after it comes back reports all its counts as new.
//
// Span events, added to the span in the call's context when it is
// recording:
//
//   - circuitbreaker.rejected: circuitbreaker.name, circuitbreaker.state
//     and error.type (circuitbreaker.open or
//     circuitbreaker.too_many_requests).
//   - circuitbreaker.state_change: circuitbreaker.name,
//     circuitbreaker.previous_state and circuitbreaker.state.
package circuitbreaker
