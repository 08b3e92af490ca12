// Package saga runs sagas: business transactions made of steps that each
// commit on their own, with compensations that undo the completed steps
// when a later one fails. The [Orchestrator] runs inside the service — no
// server, no cluster — records every transition in a durable [Log]
// ([github.com/otelpatterns/patterns/saga/pglog] keeps it in PostgreSQL;
// [MemoryLog] in memory), and resumes unfinished sagas after a crash with
// [Orchestrator.Recover]. For teams that prefer no central coordinator,
// [Choreography] wires the same pattern onto a [cqrs.EventBus].
//
// A saga of two steps, the second the pivot, run and waited for:
//
//	type Order struct{ ID, PaymentID, ShipmentID string }
//
//	def, err := saga.Define("order", 1,
//		saga.Step[Order]{
//			Name: "pay",
//			Action: func(ctx context.Context, o Order) (func(*Order), error) {
//				key := saga.IdempotencyKey(ctx) // for the payment service
//				id, err := payments.Charge(ctx, o.ID, key)
//				if err != nil {
//					return nil, err // retried, then compensated
//				}
//				return func(o *Order) { o.PaymentID = id }, nil
//			},
//			Compensate: func(ctx context.Context, o Order) error {
//				key := saga.IdempotencyKey(ctx)
//				return payments.Refund(ctx, o.PaymentID, key)
//			},
//		},
//		saga.Step[Order]{
//			Name:  "ship",
//			Pivot: true, // once shipped, the order is not undone
//			Action: func(ctx context.Context, o Order) (func(*Order), error) {
//				id, err := shipping.Ship(ctx, o.ID, saga.IdempotencyKey(ctx))
//				if err != nil {
//					return nil, err
//				}
//				return func(o *Order) { o.ShipmentID = id }, nil
//			},
//		},
//	)
//	if err != nil {
//		return err
//	}
//	o, err := saga.NewOrchestrator(sagaLog, saga.WithDefinitions(def))
//	if err != nil {
//		return err
//	}
//	defer o.Close(ctx)
//	if _, err := o.Recover(ctx); err != nil { // what a crash left unfinished
//		return err
//	}
//
//	order := Order{ID: "A-1001"}
//	id, err := saga.Start(ctx, o, def, order, saga.WithID(order.ID))
//	if err != nil {
//		return err
//	}
//	res, err := saga.Wait(ctx, o, def, id)
//	if err != nil {
//		return err // ctx ended, or the log failed
//	}
//	switch res.Status {
//	case saga.Completed:
//		fmt.Println("shipped as", res.Data.ShipmentID)
//	case saga.Compensated:
//		fmt.Println("refunded:", res.Err) // a *saga.StepError naming the step
//	}
//
// [Start] and [Wait] are the typed forms of [Orchestrator.Start] and
// [Orchestrator.Wait]: the compiler checks the data against the
// definition, and Wait decodes the saga's final data into a D and tells
// why it did not complete ([Result], [StepError]), whether the saga ran
// in this process or in another sharing the log.
//
// # Definitions
//
// [Define] builds a named, versioned [Definition] from steps ([Step])
// over a typed saga data D. Each step has an action, a compensation, a
// retry policy and a timeout; steps may name the steps they come after
// ([Step.After]), forming a graph whose independent steps run in
// parallel. Define rejects a definition with a cycle, a duplicate name,
// an unknown After, a second pivot, or a step that needs a compensation
// and has none, naming the step.
//
// Actions receive a copy of the data and return a function recording their
// result in it, which the orchestrator applies to the current data and
// writes to the log with the step's outcome. Data of a plain type (no
// pointer, slice, map, interface or function inside, time.Time allowed) is
// decoded once per change and each attempt gets a copy of that value,
// which costs nothing; other data is decoded for each attempt, so that no
// attempt sees another's changes through shared memory. Each attempt's context
// carries a [StepInfo]; its [StepInfo.IdempotencyKey] (saga id, step and
// phase) is the key to pass to remote services.
//
// # Lifecycle and the pivot
//
// A saga's [Status] moves as follows; completed, compensated and
// resolved are final, and needs_attention waits for a person:
//
//	                       Start / Recover
//	                             |
//	                             v
//	 +-------------------------------------------------------+
//	 | running: the steps run forward, in parallel where     |
//	 | After allows; every attempt is in the log before it   |
//	 | runs, and its outcome after                           |
//	 +-------------------------------------------------------+
//	    |                    |                         |
//	    | every step         | a step before the pivot | a Retriable step
//	    | succeeded          | (or the pivot) failed   | after the pivot
//	    |                    | for good                | gave up
//	    v                    v                         |
//	completed          compensating:                   |
//	                   undo the steps done,            |
//	                   in reverse order                |
//	                    |              |               |
//	         all undone |              | a compensation|
//	                    |              | gave up       |
//	                    v              v               |
//	               compensated   needs_attention <-----+
//	                              |           |
//	              Orchestrator.Retry         Orchestrator.Resolve
//	                              |           |
//	                              v           v
//	          running or compensating,     resolved
//	          where it stopped
//
// The pivot is the point of no return. Until it succeeds, a step that
// fails for good makes the saga compensate: the steps that completed are
// undone, and the saga ends compensated. Once the pivot has succeeded the
// saga only goes forward: the steps after it are Retriable, retried until
// they succeed, never compensated, and one whose retry policy runs out
// stops the saga in status needs_attention instead of undoing the pivot.
// A saga without a pivot is compensatable to its last step.
//
// # Failures, retries and compensation
//
// (How a saga's steps fail; for what a [Reaction] of a choreography
// publishes, see [Outcome].)
//
// An action's error is transient, and retried per the step's policy, unless
// it is a [retry.Permanent] error or the policy runs out: the step fails
// and the saga compensates. An attempt that exceeds the step's Timeout, or
// that a crash interrupts, has an unknown outcome: it is retried if the
// step is Idempotent; otherwise the saga compensates it as if it had taken
// effect. Compensations run in reverse dependency order, only for the
// steps that completed or whose outcome is unknown, on a context the
// caller's cancellation does not reach, and are retried with capped
// backoff ([WithCompensationRetry]). When that runs out — or a Retriable
// step after the pivot keeps failing — the saga stops in status
// [NeedsAttention]: the [WithNeedsAttention] function is called and the
// saga.needs_attention metric counts it. A compensation that fails for
// good holds back those of the steps before it, not those of other
// branches, which are undone; the error names every step left in effect.
// Nothing loops hot, panics or swallows the error.
//
// # Needing attention
//
// A saga in status NeedsAttention waits for a person, who fixes the cause
// and calls [Orchestrator.Retry] to take the saga up where it stopped (the
// failed compensations, or the Retriable step, are tried again), or
// undoes what is left by hand and calls [Orchestrator.Resolve] with the
// reason: the status becomes [Resolved], for good. Either is recorded in
// the log, so a recovery or another orchestrator sees it; the log must be
// a [Reopener], as [MemoryLog] and
// [github.com/otelpatterns/patterns/saga/pglog] are.
//
// # Durability and leases
//
// Each transition (a step attempt started, succeeded, failed or timed
// out; a change of status) is one small write to the log, made before the
// saga goes on. [Orchestrator.Start] returns once the saga is in the log.
// A saga runs in one orchestrator at a time: the log leases it to its
// orchestrator, which renews the lease while it runs and releases it on
// Close. After a crash, the lease expires and a recovery — in the
// restarted process or any other sharing the log — takes the saga over
// and continues from its last transition. An orchestrator whose lease was
// taken over stops writing: the log fences it off.
//
// A write that fails is tried again, backing off, for as long as the
// lease holds. The lease was last renewed up to a third of it before the
// log went out of reach, so an outage of less than two thirds of the
// lease (20s by default) delays the saga and no more; a longer one may
// stop the run, leaving the outcome of an attempt in flight unknown to
// the log (a step that is not Idempotent is then compensated). A run
// stops before its saga ends only when its orchestrator closes, when
// another orchestrator took the saga over, or when the log stayed out of
// reach until the lease expired.
// The saga is then resumed by the next recovery: every orchestrator looks
// for sagas to resume every third of the lease ([WithRecoverInterval]),
// and [Orchestrator.Recover] does it at once.
//
// Text written to the log, such as an error's message, goes through
// [ValidText], so a message with NUL bytes or invalid UTF-8 from a failing
// service cannot fail the write.
//
// # Telemetry
//
// Spans come from the tracer named [ScopeName] of the [WithTracerProvider]
// provider (the global one by default):
//
//   - saga {name} (internal): each run of a saga, started by
//     [Orchestrator.Start] or resumed by [Orchestrator.Recover], with
//     saga.name, saga.id, saga.version, saga.resumed (on a resumed run)
//     and saga.outcome: completed, compensated, needs_attention, or
//     interrupted for a run that stopped before its saga ended, which
//     adds a saga.interrupted event whose saga.reason says why: closed
//     (the orchestrator closed), lease_lost (another took the saga over)
//     or log_failed (the log was out of reach until the lease expired).
//     Status Error and error.type when the saga compensated or needs
//     attention, or a failure of the log stopped the run. A child of the
//     span of Start's, Recover's or Retry's context; a resumed run links
//     to the span of the run that started the saga, so the whole saga is
//     one readable trace and its resumption is one hop away.
//   - step {step} (internal): each attempt of a step's action, with
//     saga.name, saga.id, saga.step, saga.phase (forward), saga.attempt
//     (from 1, counted across resumptions) and saga.outcome: succeeded,
//     failed or timed_out; status Error and error.type on failure. A child
//     of the saga's span, or of its retry span for the attempts after the
//     first.
//   - compensate {step} (internal): each attempt of a compensation, as a
//     step's, with saga.phase compensate.
//   - saga.retry {name} (internal): each call of [Orchestrator.Retry] that
//     found its saga, with saga.name, saga.id and saga.version; status
//     Error and error.type when it failed. A child of the span of its
//     context, and the parent of the run it starts (saga.resumed set).
//   - saga.resolve {name} (internal): each call of [Orchestrator.Resolve]
//     that found its saga, with saga.name, saga.id, saga.version and
//     saga.reason (the reason given); status Error and error.type when it
//     failed. A child of the span of its context.
//   - saga.react {reaction} (internal): each reaction of a [Choreography]
//     to an event, with saga.name, saga.id, saga.step (the reaction's
//     name), saga.phase and saga.outcome: next, compensation, done, error,
//     gave_up or dead_letter; status Error and error.type on error and
//     dead_letter. A child of the bus's span of the event's processing.
//
// An orchestrator whose tracer can only make non-recording spans (a no-op
// provider, or the global one before a provider is set) starts neither
// saga nor step spans under a caller's span that is not recording either:
// the steps' contexts and the record's trace context carry the caller's
// span context as those spans would have, and a saga saves their
// allocations.
//
// The orchestrator's default retry policies (of steps, compensations and
// writes to the log; see [Step.Retry] and [WithCompensationRetry]) are
// built on its providers, so their telemetry, which package retry
// documents, goes where the saga's does:
//
//   - retry (internal), from the tracer of package retry: from the first
//     failed attempt of a step, a compensation or a write to the log to
//     its last attempt, with retry.name saga.step, saga.compensation or
//     saga.log, retry.attempts, retry.outcome, and error.type when it
//     gave up. A child of the saga's span; the attempts after the first
//     run inside it.
//   - retry.attempts, retry.calls and retry.delay, from the meter of
//     package retry, by the same retry.name.
//
// A [Log] that traces its calls, as
// [github.com/otelpatterns/patterns/saga/pglog] does, has the saga's span
// as the parent of the calls of a saga's run (Create, Append, Load and
// Release), or the log's retry span for a write tried again (with, when
// a try finds that an earlier one was written after all, a Load and a
// Renew that checks the lease is still the run's); the claims
// of a call of Recover are children of its context's span, and the calls
// of Retry and Resolve (Reopen, Load, Append) children of their spans,
// but for the first load, which finds the saga (and the name of the span),
// a child of their context's span.
// The orchestrator's upkeep is not traced: the renewals of its leases and
// the claims of its recovery in the background ([WithRecoverInterval])
// run under a span context that is not sampled, so that, with a
// parent-based sampler (the SDK's default), an idle orchestrator sends no
// trace every few seconds (a sampler that ignores the parent records the
// log's spans of them, as children of a span that is not recorded). The
// metrics below measure them, and a run whose lease was lost says so on
// its span.
//
// The trace context that a saga's record keeps, for the link of its
// resumed runs, goes through the global propagator
// ([otel.GetTextMapPropagator]), or W3C trace context while none is set.
//
// Metrics come from the meter named [ScopeName] of the [WithMeterProvider]
// provider (the global one by default):
//
//   - saga.executions (counter, {saga}): sagas that ended, by saga.name
//     and saga.outcome (completed, compensated or needs_attention), with
//     error.type unless completed.
//   - saga.duration (histogram, s): the time from a saga's creation to its
//     end, across resumptions, with the attributes of saga.executions.
//   - saga.steps (counter, {attempt}): attempts of steps and
//     compensations, and reactions of a choreography, by saga.name,
//     saga.step, saga.phase and saga.outcome, with error.type on
//     failures: attempts that failed or timed out (or whose update of the
//     data failed), reactions that ended in error or dead_letter.
//   - saga.active (up-down counter, {saga}): runs in progress, by
//     saga.name.
//   - saga.needs_attention (counter, {saga}): sagas that stopped in status
//     needs_attention, by saga.name and error.type.
//   - saga.leases.claimed (counter, {lease}): unfinished sagas whose lease
//     Recover took over (their orchestrator crashed, hung or closed), by
//     saga.name.
//   - saga.leases.lost (counter, {lease}): runs stopped because another
//     orchestrator took their saga over, by saga.name.
//   - saga.lease.operation.duration (histogram, s): the orchestrator's
//     calls of the log's Claim (by Recover) and Renew, by saga.operation
//     (claim or renew), with error.type when the call failed.
//
// error.type follows the module's rule: the ErrorType method of the
// package's errors (saga.lease_lost for [ErrLeaseLost], saga.panic for a
// [PanicError], retry.exhausted when a retry policy ran out of attempts),
// else the cause's own; "_OTHER" for an error with no type, such as one
// made by errors.New or read back from the log after a resumption.
package saga
