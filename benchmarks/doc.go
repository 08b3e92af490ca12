// Package benchmarks compares the otelpatterns packages with the peer
// libraries a team would otherwise pick, by running the same work through
// each in one benchmark run.
//
// It is a separate module (with a replace directive pointing at the parent
// directory), so the peers it imports never enter the library's go.mod. It
// holds no code of its own besides tests and the internal/medians command.
//
// # Running
//
// From this directory:
//
//	./compare.sh                  # go test -run '^$' -bench 'Breaker|Retry' -benchmem -count 6, then the tables
//	./compare.sh -benchtime 2s    # extra flags go to go test; COUNT=10 changes -count
//	BENCH=Retry ./compare.sh      # only the retry rows
//	go test ./...                 # the sanity tests only
//
// compare.sh prints a table per family of benchmarks, one line per
// benchmark with the median ns/op, B/op and allocs/op over the runs, and
// ns/op as a multiple of the family's reference row in the same scenario:
// gobreaker for BenchmarkBreaker, backoff (cenkalti/backoff/v4) for
// BenchmarkRetry (below 1.00x is faster than the reference). The raw go test
// output is kept in a temporary file for benchstat.
//
// # Circuit breaker rows
//
// BenchmarkBreaker/<scenario>/<impl> runs a function that returns nil:
//
//   - closed: sequential calls through a closed breaker with default options.
//   - closed-parallel: the same from GOMAXPROCS goroutines sharing one
//     breaker (b.RunParallel), which shows contention.
//   - open: sequential calls rejected by a breaker that was opened by a
//     recorded failure (not forced open) and stays open for an hour. The
//     function is never called.
//   - closed-sdk: closed, with otelpatterns recording its metrics into an
//     OpenTelemetry SDK meter provider with a manual reader. The peers have
//     no telemetry and run their closed row again, so that each scenario has
//     a gobreaker row to compare with.
//
// and the implementations are:
//
//   - bare: the function called directly, with no breaker: the floor.
//   - otelpatterns: [github.com/otelpatterns/patterns/circuitbreaker] with
//     default options and the global, no-op, OpenTelemetry providers.
//   - gobreaker: [github.com/sony/gobreaker/v2] CircuitBreaker[struct{}]
//     with default Settings.
//   - failsafe: a [github.com/failsafe-go/failsafe-go/circuitbreaker] breaker
//     with defaults, run through failsafe.With(cb).Run.
//
// In the open scenario each breaker is set to trip on the first failure and
// to stay open for an hour. TestBreakersBehaveAlike checks that every
// implementation admits every call in the closed scenarios and rejects every
// call, without running the function, in the open one, so the rows measure
// what their names say.
//
// # Retry rows
//
// BenchmarkRetry/<scenario>/<impl> runs an operation through each
// implementation's retry policy:
//
//   - first-success: sequential calls of an operation that returns nil at
//     once, with each implementation's default policy: what every call that
//     needs no retry pays.
//   - first-success-parallel: the same from GOMAXPROCS goroutines
//     (b.RunParallel), sharing one retrier where the implementation allows it.
//   - two-failures: sequential calls of an operation that fails twice, then
//     succeeds, with no wait between attempts and at most 3 attempts: the
//     cost of the retry path itself.
//
// and the implementations are:
//
//   - bare: the operation called directly, or in two-failures a plain loop
//     of at most 3 tries: the floor.
//   - otelpatterns: [github.com/otelpatterns/patterns/retry] New with
//     default options and the global, no-op, OpenTelemetry providers; in
//     two-failures WithBackoff(Constant(0)) and WithMaxAttempts(3).
//   - backoff: [github.com/cenkalti/backoff/v4] Retry with a policy built per
//     call, as its policies keep state: NewExponentialBackOff(), and in
//     two-failures WithMaxRetries(&ZeroBackOff{}, 2).
//   - retrygo: [github.com/avast/retry-go/v4] Do with Attempts(3), and in
//     two-failures Delay(0) and DelayType(FixedDelay).
//   - failsafe: a [github.com/failsafe-go/failsafe-go/retrypolicy] policy
//     with defaults (3 attempts, no delay), and in two-failures
//     WithMaxRetries(2) and WithDelay(0), run through
//     failsafe.With(policy).Run.
//
// What a user can reuse across calls (a Retrier, a failsafe policy and
// executor, a retry-go option slice) is built once, outside the measured
// loop; what the peer's API makes stateful per call (a cenkalti/backoff
// BackOff) is built in the call. TestRetriersBehaveAlike checks that every
// implementation calls the operation once in the first-success scenarios
// and three times in two-failures, and returns nil, and that an operation
// that always fails is called exactly 3 times in the two-failures setup.
package benchmarks
