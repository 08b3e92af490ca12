// Package logtest holds the conformance tests of [saga.Log], in the manner
// of [testing/slogtest]: every log runs the same suite, so that the
// orchestrator can rely on what the interface's documentation promises
// (records and transitions kept as given, leases that fence a stale owner,
// claims that never hand one saga to two owners), whatever the backend.
//
// A log's test calls [Run] with a function that returns a log (the tests
// of [saga.MemoryLog] and of
// [github.com/otelpatterns/patterns/saga/pglog] do):
//
//	func TestConformance(t *testing.T) {
//		logtest.Run(t, func(t *testing.T) saga.Log {
//			return newLogForTest(t) // cleaned up with t.Cleanup
//		})
//	}
//
// Besides the methods of [saga.Log], the suite checks that text with NUL
// bytes or invalid UTF-8 (an error's message, a trace context) is stored
// without failing, as given or through [saga.ValidText], and, for a log
// that is a [saga.Reopener], its Reopen (the subtests Reopen/... are
// skipped for a log that is not one).
//
// newLog is called once per subtest. Subtests run one after another and
// use only saga ids and saga names made of their own name and an id unique
// to the call of Run, so a backend may hand every subtest the same
// underlying database, and one that holds sagas from earlier runs: no
// subtest assumes an empty log, and every Claim names only the subtest's
// own sagas.
//
// # Time
//
// Leases expire by the log's clock, which for a database is the server's,
// not the test's. The suite never sleeps for a lease to pass: to know that
// the leases it gave before some moment have expired, it creates a probe
// saga with the same lease and polls Claim until the probe is handed out.
// Leases that must not expire during a subtest last a minute. The whole
// suite takes one or two seconds against [saga.MemoryLog], and a few
// against a local PostgreSQL (1.4s and 3.6s on a busy 2-core machine).
//
// Times set by the log (Record.CreatedAt, Transition.At) are checked to be
// within five minutes of the test's clock, for logs whose clock is a
// database server's.
package logtest
