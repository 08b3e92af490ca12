// Package storetest holds the conformance tests of the cache's L2 stores,
// in the manner of testing/slogtest. Every backend runs the same suite, so
// that the cache above can rely on the behaviour that the documentation of
// [cache.Store], [cache.Adder] and [cache.Invalidator] promises, whatever
// the backend ([cache.MemoryStore],
// [github.com/otelpatterns/patterns/cache/rediscache]).
//
// A backend's test calls [Run] with a function that returns a fresh store:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) cache.Store {
//			return newStoreForTest(t) // closed with t.Cleanup
//		})
//	}
//
// Subtests run one after another and use keys prefixed with their own name,
// so a backend may hand every subtest the same underlying database. Stores
// that implement [cache.Adder] also get the Adder/ subtests, and those that
// implement [cache.Invalidator] the Invalidator/ ones; the
// key namespace and the invalidation channel should still be private to the
// test run, as other tests may be publishing on a shared server. The whole
// suite takes about a second against a local server.
package storetest
