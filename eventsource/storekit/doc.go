// Package storekit holds what an implementation of [eventsource.Store] or
// [eventsource.SnapshotStore] calls so that it behaves as every other
// store does: the checks of their arguments ([CheckAppend],
// [CheckSnapshot]) and the preparation of the events of an append
// ([PrepareAppend]). Users of stores do not need it.
//
// An Append of a store written with it starts like this (the conformance
// suite, [github.com/otelpatterns/patterns/eventsource/storetest], checks
// the rest):
//
//	func (s *Store) Append(ctx context.Context, streamID string, expected eventsource.ExpectedVersion, events ...eventsource.NewEvent) ([]eventsource.Event, error) {
//		if err := storekit.CheckAppend(streamID, expected, events); err != nil {
//			return nil, err
//		}
//		command, hasCommand := eventsource.CommandID(ctx)
//		if hasCommand {
//			if err := eventsource.CheckCommandID(command); err != nil {
//				return nil, err
//			}
//		}
//		events = storekit.PrepareAppend(ctx, events) // IDs and trace context
//		// One transaction: check the command, the event IDs and the
//		// version, then store the events and the command.
//	}
//
// [eventsource.MemoryStore], [eventsource.MemorySnapshots] and
// [github.com/otelpatterns/patterns/eventsource/pgstore] use the same
// checks.
package storekit
