// Package saga runs sagas: business transactions made of steps that each
// commit on their own, with compensations that undo the completed steps
// when a later one fails. The [Orchestrator] runs inside the service — no
// server, no cluster — records every transition in a durable [Log]
// (saga/pglog keeps it in PostgreSQL; [MemoryLog] in memory), and resumes
// unfinished sagas after a crash with [Orchestrator.Recover]. For teams that
// prefer no central coordinator, [Choreography] wires the same pattern onto
// a cqrs.EventBus.
//
// # Definitions
//
// [Define] builds a named, versioned [Definition] from [Step]s over a typed
// saga data D. Each step has an action, a compensation, a retry policy and
// a timeout; steps may name the steps they come [Step.After], forming a
// graph whose independent steps run in parallel. Define rejects a
// definition with a cycle, a duplicate name, an unknown After, a second
// pivot, or a step that needs a compensation and has none, naming the
// step.
//
// Actions receive a copy of the data and return a function recording their
// result in it, which the orchestrator applies to the current data and
// writes to the log with the step's outcome. Each attempt's context
// carries a [StepInfo]; its [StepInfo.IdempotencyKey] (saga id, step and
// phase) is the key to pass to remote services.
//
// # Outcomes
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
// saga.needs_attention metric counts it. Nothing loops hot, panics or
// swallows the error.
//
// # Durability and leases
//
// Each transition (a step attempt started, succeeded, failed or timed
// out; a change of status) is one small write to the log, made before the
// saga goes on. A saga runs in one orchestrator at a time: the log leases
// it to its orchestrator, which renews the lease while it runs and
// releases it on Close. After a crash, the lease expires and Recover —
// in the restarted process or any other sharing the log — takes the saga
// over and continues from its last transition. An orchestrator whose
// lease was taken over stops writing: the log fences it off.
//
// # Telemetry
//
// Spans, from the tracer named [ScopeName]:
//
//	| span                 | when                                   | attributes                                           |
//	|----------------------|----------------------------------------|------------------------------------------------------|
//	| saga <name>          | each run of a saga (start or resume)   | saga.name, saga.id, saga.version, saga.resumed,      |
//	|                      |                                        | saga.outcome; status Error unless completed          |
//	| step <step>          | each attempt of a step's action        | saga.name, saga.id, saga.step, saga.phase=forward,   |
//	|                      |                                        | saga.attempt, saga.outcome, error.type               |
//	| compensate <step>    | each attempt of a compensation         | as above, with saga.phase=compensate                 |
//	| saga.react <name>    | each reaction of a [Choreography]      | saga.name, saga.id, saga.step, saga.phase,           |
//	|                      |                                        | saga.outcome, error.type                             |
//
// A saga's run span is a child of the span of the context passed to
// [Orchestrator.Start]; a resumed run's span is a child of Recover's
// context and links to the span of the run that started the saga, so the
// whole saga is one readable trace and its resumption is one hop away.
//
// Metrics, from the meter named [ScopeName]:
//
//	| name                  | kind           | unit      | attributes                                    |
//	|-----------------------|----------------|-----------|-----------------------------------------------|
//	| saga.executions       | counter        | {saga}    | saga.name, saga.outcome                       |
//	| saga.steps            | counter        | {attempt} | saga.name, saga.step, saga.phase, saga.outcome|
//	| saga.duration         | histogram      | s         | saga.name, saga.outcome                       |
//	| saga.active           | up-down counter| {saga}    | saga.name                                     |
//	| saga.needs_attention  | counter        | {saga}    | saga.name                                     |
//
// A run that stops before its saga ends (the orchestrator closed, or
// another took the saga over) ends its span with saga.outcome=interrupted
// and a saga.interrupted event whose saga.reason is closed or lease_lost.
//
// saga.outcome is completed, compensated or needs_attention for a saga;
// succeeded, failed or timed_out for an orchestrated step's attempt; next,
// compensation, done, error, gave_up or dead_letter for a reaction.
// saga.duration counts from the saga's creation, across resumptions.
package saga
