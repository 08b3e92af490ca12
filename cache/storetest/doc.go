// Package storetest holds the conformance tests of [cache.Store] and
// [cache.Invalidator], in the manner of testing/slogtest: every L2 backend
// runs the same suite, so that the cache above can rely on the behaviour the
// interfaces' documentation promises, whatever the backend.
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
// that implement [cache.Invalidator] also get the invalidation subtests; the
// key namespace and the invalidation channel should still be private to the
// test run, as other tests may be publishing on a shared server. The whole
// suite takes about a second against a local server.
package storetest
