package load

import (
	"maps"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// Patterns is what the library's patterns did during a run: the increase
// of their counters between the scrape of [Config.MetricsURL] before the
// run and the one after, summed over every breaker, retrier, cache, rate
// limit and saga the scraped process has. The counts are the process's,
// not only the run's: traffic from elsewhere in the meantime counts too.
type Patterns struct {
	// Measured is false when no MetricsURL was given: then every count
	// below is zero for want of a measure, not because nothing happened.
	Measured bool
	// BreakerRejections counts calls refused by an open or half-open
	// circuit breaker (circuitbreaker.calls with outcome rejected).
	BreakerRejections float64
	// Retries counts attempts beyond the first: retry.attempts less
	// retry.calls, of every retrier, the saga orchestrator's own
	// included (retry.name saga.step, saga.compensation, saga.log). A
	// call retrying across a scrape has its attempts counted before its
	// end: its retries may fall in the next run.
	Retries float64
	// BreakerRejectionsByName and RetriesByName split the two counts
	// above by circuitbreaker.name and retry.name; names with none are
	// left out.
	BreakerRejectionsByName, RetriesByName map[string]float64
	// RateLimited counts requests a rate limit refused (429): the
	// gateway.ratelimit.decisions of decision limited.
	RateLimited float64
	// CacheHitRatio is, per cache.level ("l1", "l2"), the hits over all
	// the level's lookups (hits, misses and errors); a level with no
	// lookup in the run has no entry.
	CacheHitRatio map[string]float64
	// SagasCompleted and SagasCompensated count the sagas that ended
	// completed, or compensated after a failed step (saga.executions).
	SagasCompleted, SagasCompensated float64
}

// The library's instruments read, by their OpenTelemetry names (the
// packages' doc.go tables), and the attribute values read from them.
// promName turns them into the names the Prometheus exporter writes.
const (
	metricBreakerCalls     = "circuitbreaker.calls"
	metricRetryAttempts    = "retry.attempts"
	metricRetryCalls       = "retry.calls"
	metricRateLimitDecided = "gateway.ratelimit.decisions"
	metricCacheRequests    = "cache.requests"
	metricSagaExecutions   = "saga.executions"

	// circuitbreaker and cache keep these values unexported.
	breakerRejected = "rejected"
	cacheHit        = "hit"
)

// promName is the name the OpenTelemetry Prometheus exporter gives a
// counter by default: dots become underscores (the classic Prometheus
// charset), an annotation unit such as {call} adds no suffix, and a
// monotonic sum ends in _total.
func promName(otelName string) string {
	return strings.ReplaceAll(otelName, ".", "_") + "_total"
}

// promLabel is the label the exporter makes of an attribute key.
func promLabel(k attribute.Key) string {
	return strings.ReplaceAll(string(k), ".", "_")
}

// series is one time series of a scrape: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// metricSet is a scrape's counters, by metric family name.
type metricSet map[string][]series

// key identifies a series within its family across two scrapes.
func (s series) key() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(s.labels)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(s.labels[k])
		b.WriteByte(0)
	}
	return b.String()
}

// increase returns the increase of each series of family name from before
// to after, keyed as after has them. A series missing before started in
// between (its value is its increase); one lower after than before was
// reset (a restarted process), so its value after is the increase, as in
// PromQL's increase(). A series gone after is ignored: its last increase
// is unknown.
func increase(before, after metricSet, name string) []series {
	old := map[string]float64{}
	for _, s := range before[name] {
		old[s.key()] = s.value
	}
	var out []series
	for _, s := range after[name] {
		d := s.value
		if v, ok := old[s.key()]; ok && v <= s.value {
			d = s.value - v
		}
		out = append(out, series{labels: s.labels, value: d})
	}
	return out
}

// sum adds the values of the series whose label k has value v (every
// series when k is "").
func sum(ss []series, k attribute.Key, v string) float64 {
	var total float64
	for _, s := range ss {
		if k == "" || s.labels[promLabel(k)] == v {
			total += s.value
		}
	}
	return total
}

// sumBy adds, by the value of label by, the values of the series whose
// label k has value v (every series when k is "").
func sumBy(ss []series, k attribute.Key, v string, by attribute.Key) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ss {
		if k == "" || s.labels[promLabel(k)] == v {
			out[s.labels[promLabel(by)]] += s.value
		}
	}
	return out
}

// patternsBetween reads what the patterns did from two scrapes.
func patternsBetween(before, after metricSet) Patterns {
	p := Patterns{Measured: true}
	p.BreakerRejectionsByName = sumBy(increase(before, after, promName(metricBreakerCalls)),
		circuitbreaker.AttrOutcome, breakerRejected, circuitbreaker.AttrName)
	p.RetriesByName = sumBy(increase(before, after, promName(metricRetryAttempts)), "", "", retry.AttrName)
	for name, calls := range sumBy(increase(before, after, promName(metricRetryCalls)), "", "", retry.AttrName) {
		p.RetriesByName[name] -= calls
	}
	for _, m := range []map[string]float64{p.BreakerRejectionsByName, p.RetriesByName} {
		maps.DeleteFunc(m, func(_ string, n float64) bool { return n <= 0 })
	}
	for _, n := range p.BreakerRejectionsByName {
		p.BreakerRejections += n
	}
	for _, n := range p.RetriesByName {
		p.Retries += n
	}
	p.RateLimited = sum(increase(before, after, promName(metricRateLimitDecided)), ratelimit.AttrDecision, ratelimit.DecisionLimited)
	execs := increase(before, after, promName(metricSagaExecutions))
	p.SagasCompleted = sum(execs, saga.AttrOutcome, string(saga.Completed))
	p.SagasCompensated = sum(execs, saga.AttrOutcome, string(saga.Compensated))

	lookups := map[string]float64{}
	hits := map[string]float64{}
	for _, s := range increase(before, after, promName(metricCacheRequests)) {
		level := s.labels[promLabel(cache.AttrLevel)]
		lookups[level] += s.value
		if s.labels[promLabel(cache.AttrResult)] == cacheHit {
			hits[level] += s.value
		}
	}
	p.CacheHitRatio = map[string]float64{}
	for level, n := range lookups {
		if n > 0 {
			p.CacheHitRatio[level] = hits[level] / n
		}
	}
	return p
}
