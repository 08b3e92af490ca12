// Package storetest holds the conformance tests of [eventsource.Store], in
// the manner of testing/slogtest: every backend runs the same suite, so that
// repositories, projections and subscribers can rely on the behaviour the
// interface's documentation promises, whatever the backend.
//
// A backend's test calls [Run] with a function that returns a store:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) eventsource.Store {
//			return newStoreForTest(t) // closed with t.Cleanup
//		})
//	}
//
// newStore is called once per subtest. Subtests run one after another and
// write only to streams named after themselves (plus an id unique to the
// call of Run), so a backend may hand every subtest the same underlying
// database, and one that already holds events, from earlier runs too: no
// subtest assumes an empty store. Reads of the global order keep only the subtest's own events and
// compare positions relative to them.
//
// [RunSnapshots] is the suite of [eventsource.SnapshotStore] (and of
// [eventsource.SnapshotDeleter], for a store that is one), called the same
// way:
//
//	func TestSnapshots(t *testing.T) {
//		storetest.RunSnapshots(t, func(t *testing.T) eventsource.SnapshotStore {
//			return newSnapshotStoreForTest(t)
//		})
//	}
//
// Stream ids in the suite are valid UTF-8 without NUL bytes, and so are
// metadata keys and values; event data is arbitrary bytes. The whole suite
// takes well under a second against the in-memory store, including one
// append of [eventsource.MaxBatch] events.
package storetest
