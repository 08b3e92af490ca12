// Package load drives an HTTP system at a fixed rate and reports its
// latencies, its answers and what the library's patterns did meanwhile:
// the load test of examples/ecommerce (its -load and -rate flags).
//
//	rep, err := load.Run(ctx, load.Config{
//		Rate:     500,
//		Duration: 30 * time.Second,
//		Client:   client,
//		Next: func(ctx context.Context, i int) (*http.Request, error) {
//			return http.NewRequestWithContext(ctx, "GET", gateway+"/api/products", nil)
//		},
//		MetricsURL: admin + "/metrics",
//		Progress:   os.Stderr,
//	})
//	rep.Print(os.Stdout)
//
// # Open loop
//
// [Run] sends on a schedule, not in answer to answers: the k-th request
// goes at k/Rate after the start, however long earlier ones take, as
// real users keep arriving when a service slows down. A closed loop (a
// fixed number of workers, each sending when its last answer came) slows
// down with the server and so hides the queueing it causes: the
// "coordinated omission" of load tests. Here a slow server means more
// requests in flight, and their latencies show it.
//
// Requests in flight are capped ([Config.MaxInFlight], 1000 by default)
// so that a server that stops answering cannot make the load test itself
// run out of sockets or memory. A request whose time comes while the cap
// is reached is not sent and not postponed: it is counted in
// [Report.Dropped], and the schedule goes on. Postponing it would turn the
// test back into a closed loop, and its latency, measured from a late
// send, would hide the wait. A run with drops did not offer the asked
// rate: read Report.Achieved and Report.Dropped before its percentiles.
//
// When the sender itself falls behind (a busy machine), the requests whose
// time has passed go at once, so the run still sends Rate×Duration
// requests; Report.Elapsed then exceeds Duration and Report.Achieved is
// below Rate.
//
// # What is measured
//
// A request's latency runs from its send to the last byte of its body.
// Percentiles come from a log-linear histogram (an HDR histogram's idea:
// 128 buckets per power of two of nanoseconds, so a percentile is at most
// 0.8% above the true value, in fixed memory, whatever the run's length).
// Every answer counts, whatever its status: a fast 429 is an answer, and
// the status counts say how many there were. Requests without an answer
// count as errors, by kind.
//
// [Config.Progress] gets one plain line a second: the requests sent and
// the rate that makes, those in flight, the p99 so far, the answers by
// status, errors and drops.
//
// # What the patterns did
//
// With [Config.MetricsURL], Run scrapes that Prometheus text endpoint (as
// served by go.opentelemetry.io/otel/exporters/prometheus with its default
// options) before and after the run, and reports in [Patterns] the
// increase of the library's counters in between, as the exporter names
// them (dots to underscores, _total on counters):
//
//   - breaker rejections: circuitbreaker_calls_total, outcome rejected,
//     by circuitbreaker_name;
//   - retries: retry_attempts_total less retry_calls_total, by
//     retry_name;
//   - rate-limited requests: gateway_ratelimit_decisions_total, decision
//     limited;
//   - cache hit ratio per level: cache_requests_total, hits over all
//     lookups, by cache_level (l1, l2);
//   - sagas completed and compensated: saga_executions_total, by
//     saga_outcome.
//
// The page is parsed with github.com/prometheus/common/expfmt.
//
// Run is safe to call from several goroutines at once; each run has its own
// schedule and counts.
package load
