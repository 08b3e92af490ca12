// Package eventsource keeps the state of aggregates as the sequence of
// events that changed them: an append-only [Store] of streams, a
// [Registry] that maps event type names to Go types (with upcasters for old
// versions), and a generic [Repository] that loads aggregates from their
// events (and snapshots) and saves new events with optimistic concurrency.
//
//	reg := eventsource.NewRegistry()
//	eventsource.Register[Deposited](reg, "account.deposited.v1")
//	repo, _ := eventsource.NewRepository(store, reg, func() *Account { return &Account{} })
//
//	acc, err := repo.Load(ctx, "acc-42")
//	if err := acc.Withdraw(30); err != nil { ... } // checks rules, raises Withdrawn
//	err = repo.Save(ctx, acc) // ErrConcurrencyConflict if someone else changed it
//
// # Stores
//
// [MemoryStore] is in the package; eventsource/pgstore keeps events in
// PostgreSQL. Both pass the conformance suite in eventsource/storetest, and
// so must any other implementation. Every store:
//
//   - appends a batch atomically, checking the stream's version against an
//     [ExpectedVersion] ([Any], [NoStream] or [Exact]);
//   - skips events whose ID is already stored, so a retried append does not
//     duplicate them;
//   - records the command ID of the context ([WithCommandID]) with the
//     events, in the same transaction, and refuses a second append of one
//     command to one stream with [ErrDuplicateCommand], so that a command
//     redelivered after a crash takes effect once (cqrs.Deduplication
//     builds on it);
//   - gives each event a version in its stream and a position in a global
//     order that readers can follow without ever missing an event: a
//     position a reader has passed is never filled in later;
//   - reads streams and the global order as iterators that stream rather
//     than load everything, and subscribes to the global order (catch-up,
//     then live, at least once);
//   - records the W3C trace context of the append in each event's metadata
//     ([PrepareAppend]), so that a projection can link its span to the
//     request that caused the event ([TraceContext]).
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
// # Telemetry
//
// This package records no telemetry of its own: the in-memory store does
// no I/O. eventsource/pgstore traces its database calls and records
// eventsource.events.appended, eventsource.append.duration,
// eventsource.conflicts and eventsource.subscription.lag.
package eventsource
