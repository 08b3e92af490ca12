// Package bustest holds the conformance tests of [cqrs.EventBus], in the
// manner of testing/slogtest: every event bus runs the same suite, so that
// projections and sagas can rely on the behaviour the interface's
// documentation promises, whatever the bus.
//
// A bus's test calls [Run] with a function that returns a bus:
//
//	func TestConformance(t *testing.T) {
//		bustest.Run(t, func(t *testing.T) cqrs.EventBus {
//			b := cqrs.NewMemoryBus()
//			t.Cleanup(func() { _ = b.Close() })
//			return b
//		})
//	}
//
// Subtests run one after another, each with topic and group names of its
// own (letters, digits, '-' and '_' only, so that they are valid NATS
// subject tokens), so a bus may hand every subtest the same server. One
// subtest sets the global text map propagator to W3C trace context for its
// duration, and restores it after: do not run Run in parallel with tests
// that depend on the global propagator. Handlers are given redelivery
// backoffs of 10ms, and every wait is bounded by a few seconds; the suite
// takes well under a second against the in-memory bus.
package bustest
