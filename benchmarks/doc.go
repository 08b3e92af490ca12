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
//	./compare.sh                  # 6 runs of every row, then the tables
//	./compare.sh -benchtime 2s    # extra flags go to go test; COUNT=10 runs 10
//	BENCH=Retry ./compare.sh      # only the retry rows
//	BENCH=Cache ./compare.sh      # only the cache rows, and the cache hit ratios
//	go test ./...                 # the sanity tests only (and the hit-ratio check)
//
// compare.sh builds the test binary once and runs it COUNT times, each run
// taking every row once, so that a change in the machine's load weighs on
// every row of a scenario alike. It prints a table per family of
// benchmarks, one line per benchmark with the median ns/op, B/op and
// allocs/op over the runs, and ns/op as a multiple of the family's
// reference row in the same scenario:
// gobreaker for BenchmarkBreaker, backoff (cenkalti/backoff/v4) for
// BenchmarkRetry, raw ristretto for BenchmarkCache (below 1.00x is faster
// than the reference). The raw go test output is kept in a temporary file
// for benchstat. When the cache rows run, the hit ratios of TestHitRatio
// follow the tables.
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
//   - closed-sdk-sampled: closed-sdk, every call in a context holding a
//     sampled, recording span, where a synchronous SDK instrument would
//     record an exemplar.
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
//   - first-success-sdk: first-success, with otelpatterns recording into
//     OpenTelemetry SDK meter and tracer providers; the peers run their
//     first-success row again.
//   - first-success-sdk-sampled: first-success-sdk, every call in a context
//     holding a sampled, recording span.
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
//
// # Cache rows
//
// BenchmarkCache/<scenario>/<impl> runs string keys and values through each
// cache. The keys come from one Zipf trace (s = 1.01, v = 1, 100,000
// distinct keys, a fixed seed), precomputed so that the random number
// generator is not measured:
//
//   - hit-parallel: lookups from GOMAXPROCS goroutines (b.RunParallel) of
//     keys from the trace, in a cache of 200,000 entries filled with every
//     key first, so that every lookup hits (a miss fails the benchmark).
//   - hit-parallel-sdk: hit-parallel, with otelpatterns recording into
//     OpenTelemetry SDK meter and tracer providers; the peers run their
//     hit-parallel row again.
//   - hit-parallel-sdk-sampled: hit-parallel-sdk, every lookup in a context
//     holding a sampled, recording span.
//   - set: sequential writes of keys from the trace into a cache of 10,000
//     entries, a tenth of the keys, each readable by the next lookup when
//     the call returns; admission and eviction included.
//   - miss-load: sequential read-through lookups of keys never seen before,
//     with a loader that returns the key at once, in a cache of 10,000
//     entries: the cost of the miss path. Rows report loads/op, which must
//     be 1.
//
// and the implementations are:
//
//   - bare: a sync.Map, unbounded and without expiry: the floor. In
//     miss-load it is cleared, outside the timer, each time the key sequence
//     starts over.
//   - otelpatterns: [github.com/otelpatterns/patterns/cache] New with
//     default options (a 5-minute TTL), WithMaxEntries of the scenario's
//     size, the global, no-op, OpenTelemetry providers, and WithLoader in
//     miss-load.
//   - ristretto: raw [github.com/dgraph-io/ristretto/v2] configured as New
//     configures its L1 (NumCounters 10 times the entries, MaxCost the
//     entries, BufferItems 64, IgnoreInternalCost) with the same TTL. A write
//     is SetWithTTL then Wait, as in the cache, since ristretto applies
//     writes asynchronously and the next lookup could miss otherwise.
//   - otter: [github.com/maypok86/otter/v2] with MaximumSize and a 5-minute
//     ExpiryWriting, and its read-through Get with a loader in miss-load.
//   - golanglru: [github.com/hashicorp/golang-lru/v2] Cache, an LRU behind
//     one mutex, filled by hand after a load.
//
// eko/gocache is not served by the module proxy these benchmarks build
// against, so otter stands in as the peer with a loader of its own.
// TestCachesBehaveAlike checks that each implementation finds what was set,
// misses what was not, and loads a missing key once and keeps it.
//
// TestHitRatio replays one Zipf trace of 1,000,000 requests over the
// 100,000 keys through each implementation as a cache-aside cache of 10,000
// entries and prints the share of hits (with -v; compare.sh prints it). The
// unbounded bare map is the ceiling. The test fails if otelpatterns' ratio
// is more than one percentage point from raw ristretto's, whose policy and
// configuration it shares.
package benchmarks
