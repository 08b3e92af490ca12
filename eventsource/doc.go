// Package eventsource keeps the state of aggregates as the sequence of
// events that changed them, with optimistic concurrency and a global
// order that projections follow.
//
// It has three parts: an append-only [Store] of streams; a [Registry]
// that maps event type names to Go types (with upcasters for old
// versions); and a generic [Repository] that loads aggregates from their
// events (and snapshots) and saves the events they raise, checking that
// no one else changed the aggregate in between.
//
//	reg := eventsource.NewRegistry()
//	eventsource.Register[Deposited](reg, "account.deposited.v1")
//	repo, _ := eventsource.NewRepository(store, reg, func() *Account { return &Account{} })
//
//	acc, err := repo.Load(ctx, "acc-42")
//	if err := acc.Withdraw(30); err != nil { ... } // checks rules, raises Withdrawn
//	err = repo.Save(ctx, acc) // ErrConcurrencyConflict if someone else changed it
//
// A command loads its aggregate, which decides and raises events; the
// save appends them to the aggregate's stream; readers follow the store's
// global order:
//
//	command: withdraw 30 from acc-42
//	   │
//	   ▼
//	Repository.Load ◄──────── ReadStream("acc-42") ──────────┐
//	   │ new aggregate, Apply(each event): v2, balance 100   │
//	   ▼                                                     │
//	aggregate.Withdraw: checks rules, Raise(Withdrawn{30})   │
//	   │                                                     │
//	   ▼                                                     │
//	Repository.Save ─── Append("acc-42", Exact(2), event) ──►│
//	  (ErrConcurrencyConflict if the stream is past v2)      │
//	                                                         │
//	Store ┌──────────────────────────────────────────────────┴───┐
//	      │ stream acc-42: v1 Opened  v2 Deposited  v3 Withdrawn │
//	      │ stream acc-7:  v1 Opened                             │
//	      │ global order:  p1 acc-42/v1  p2 acc-7/v1             │
//	      │                p3 acc-42/v2  p4 acc-42/v3            │
//	      └──────────────────────────┬───────────────────────────┘
//	                                 │ ReadAll / Subscribe (after p)
//	                                 ▼
//	projections, outbox relays: handle each event in position
//	order, then store its position p as their checkpoint
//
// A stream holds one aggregate's events, numbered by version from 1; the
// global order numbers every event of the store by position. A save
// appends to the aggregate's stream expecting the version it loaded
// ([Exact]): if another save got there first, the append fails with
// [ErrConcurrencyConflict] and nothing is written. Readers of the global
// order never miss an event: a position a reader has passed is never
// filled in later.
//
// # Stores
//
// [MemoryStore] is in this package;
// [github.com/otelpatterns/patterns/eventsource/pgstore] keeps events in
// PostgreSQL. Both pass the conformance suite
// [github.com/otelpatterns/patterns/eventsource/storetest], and so must any
// other implementation, which builds on the checks of
// [github.com/otelpatterns/patterns/eventsource/storekit]. Every store:
//
//   - appends a batch atomically, checking the stream's version against an
//     [ExpectedVersion] ([Any], [NoStream] or [Exact]);
//   - skips events whose ID is already stored, so a retried append does not
//     duplicate them;
//   - records the command ID of the context ([WithCommandID]) with the
//     events, in the same transaction, and refuses a second append of one
//     command to one stream with [ErrDuplicateCommand], so that a command
//     redelivered after a crash takes effect once
//     ([github.com/otelpatterns/patterns/cqrs.Deduplication] builds on it);
//   - gives each event a version in its stream and a position in a global
//     order that readers can follow without ever missing an event: a
//     position a reader has passed is never filled in later;
//   - reads streams and the global order as iterators that stream rather
//     than load everything, and subscribes to the global order (catch-up,
//     then live, at least once);
//   - records the W3C trace context of the append in each event's
//     metadata, so that a projection can link its span to the request that
//     caused the event ([TraceContext]).
//
// # Aggregates
//
// An aggregate embeds [Base] and applies events in Apply; its command
// methods check rules against the current state and record facts with
// [Raise]. [Repository.Save] appends the raised events expecting the stream
// version the aggregate was loaded at: two commands racing on one aggregate
// cannot both succeed, and the loser reloads and decides again. Any other
// failure of Save may have saved the events or not: call Save again with
// the same aggregate, whose events keep their IDs until saved, so that a
// Save that did commit is recognised instead of repeated.
// [WithSnapshots] stores the aggregate's state every N events so that loads
// replay only the events after it; [WithSnapshotFormat] versions those
// snapshots, so that a change of the aggregate's fields, or of what old
// events mean, makes loads replay instead of trusting an old snapshot.
//
// # Versions of events
//
// Stored events are never rewritten. When an event's shape changes,
// register the new shape under a new name and an upcaster
// ([Registry.Upcast]) from the old name: reads turn old events into the new
// shape, chaining v1 → v2 → v3.
//
// # Bad input
//
// Calls with bad arguments (a nil aggregate, event, registry or
// repository; an empty stream id; a negative [Exact]) return an error
// matching [ErrInvalidArgument] that names the argument. Constructors
// return one error listing every bad argument ([NewRepository]), and
// registrations, written in code, panic with a message naming the mistake
// ([Register], [Registry.Upcast]).
//
// # Telemetry
//
// This package records no telemetry of its own: the in-memory store does
// no I/O. [github.com/otelpatterns/patterns/eventsource/pgstore] traces
// its database calls and records eventsource.events.appended,
// eventsource.append.duration, eventsource.conflicts and
// eventsource.subscription.lag.
package eventsource
