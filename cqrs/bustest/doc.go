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
// [RunTelemetry] runs the tests of the telemetry every bus of this module
// records (the messaging metrics, cqrs.redeliveries and cqrs.dead_letters,
// span names, and process spans parented and linked to the message's
// creation context), on a bus built with SDK providers of its own:
//
//	func TestTelemetryConformance(t *testing.T) {
//		bustest.RunTelemetry(t, func(t *testing.T,
//			tp trace.TracerProvider, mp metric.MeterProvider) cqrs.EventBus {
//			b := cqrs.NewMemoryBus(cqrs.WithTracerProvider(tp),
//				cqrs.WithMeterProvider(mp))
//			t.Cleanup(func() { _ = b.Close() })
//			return b
//		})
//	}
//
// Subtests run one after another, each with topic and group names of its
// own (letters, digits, '-' and '_' only, so that they are valid NATS
// subject tokens), so a bus may hand every subtest the same server. Some
// subtests set the global text map propagator to W3C trace context for
// their duration, and restore it after: do not run Run or RunTelemetry in
// parallel with tests that depend on the global propagator. Handlers are
// given redelivery backoffs of 10ms, and every wait is bounded by a few
// seconds; the suites take well under a second against the in-memory bus.
package bustest
