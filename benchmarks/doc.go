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
//	./compare.sh                  # go test -run '^$' -bench Breaker -benchmem -count 6, then the table
//	./compare.sh -benchtime 2s    # extra flags go to go test; COUNT=10 changes -count
//	go test ./...                 # the sanity tests only
//
// compare.sh prints one line per benchmark with the median ns/op, B/op and
// allocs/op over the runs, and ns/op as a multiple of the gobreaker row of
// the same scenario (below 1.00x is faster than gobreaker). The raw go test
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
package benchmarks
