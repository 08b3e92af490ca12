package strangler

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/gateway/strangler"

// Attribute keys the package records.
const (
	AttrTarget       = attribute.Key("gateway.strangler.target")
	AttrRule         = attribute.Key("gateway.strangler.rule")
	AttrShadowResult = attribute.Key("gateway.strangler.shadow.result")
	AttrShadowReason = attribute.Key("gateway.strangler.shadow.reason")
	AttrPrimary      = attribute.Key("gateway.strangler.primary")
)

// Span and event names.
const (
	SpanShadow     = "gateway.strangler.shadow"
	EventFlagPanic = "gateway.strangler.flag_panic"
)

// Metric names.
const (
	metricRouted = "gateway.strangler.routed"
	metricShadow = "gateway.strangler.shadow"
)

// The results of a shadow copy, as gateway.strangler.shadow.result says.
const (
	resultMatch = iota
	resultMismatch
	resultError
	resultDropped
	numResults
)

var resultNames = [numResults]string{"match", "mismatch", "error", "dropped"}

// Why a copy was dropped, as gateway.strangler.shadow.reason says.
const (
	dropQueueFull = iota
	dropBodyTooLarge
	dropResponseTooLarge
	dropClosed
	dropRequestEnded
	numDrops
)

var dropNames = [numDrops]string{"queue_full", "body_too_large", "response_too_large", "closed", "request_ended"}

// spanAttrs are the attributes a decision puts on the request's span, by
// target and rule, built once.
var spanAttrs = func() (a [numTargets][numRules][]attribute.KeyValue) {
	for t := range numTargets {
		for r := range numRules {
			a[t][r] = []attribute.KeyValue{AttrTarget.String(t.String()), AttrRule.String(ruleNames[r])}
		}
	}
	return a
}()

// instruments are a facade's metrics. Decisions and shadow results are
// counted in memory per route and reported by one callback at
// collection, the module's way with hot counts; a route's attribute sets
// are built the first time it is seen. Past maxRouteSeries routes, the
// rest count as http.route "_OTHER".
type instruments struct {
	routes *telemetry.Series[routeCounts] // by route pattern
	reg    *telemetry.Registration
}

func newInstruments() *instruments {
	return &instruments{routes: telemetry.NewSeries(maxRouteSeries, newRouteCounts)}
}

type routeCounts struct {
	routed     [numTargets][numRules]telemetry.Counter
	results    [numTargets][numResults - 1]telemetry.Counter // by shadowed side
	dropped    [numTargets][numDrops]telemetry.Counter
	routedOpts [numTargets][numRules][]metric.ObserveOption
	resultOpts [numTargets][numResults - 1][]metric.ObserveOption
	dropOpts   [numTargets][numDrops][]metric.ObserveOption
	httpRoute  string
}

func (t *instruments) observe(f *Facade, mp metric.MeterProvider) {
	m := telemetry.Meter(mp, ScopeName)
	routed := telemetry.Int64ObservableCounter(m, metricRouted,
		metric.WithUnit("{request}"),
		metric.WithDescription("Requests the strangler facade sent to each side, by the rule that decided."))
	shadow := telemetry.Int64ObservableCounter(m, metricShadow,
		metric.WithUnit("{request}"),
		metric.WithDescription("Shadow copies of requests, by result of the comparison with the primary."))
	t.reg = telemetry.ObserveState(m, f, t, func(t *instruments, o metric.Observer) {
		t.routes.Range(func(rc *routeCounts) bool {
			for tg := range numTargets {
				for r := range numRules {
					if n := rc.routed[tg][r].Load(); n > 0 {
						o.ObserveInt64(routed, n, rc.routedOpts[tg][r]...)
					}
				}
				for r := range numResults - 1 {
					if n := rc.results[tg][r].Load(); n > 0 {
						o.ObserveInt64(shadow, n, rc.resultOpts[tg][r]...)
					}
				}
				for d := range numDrops {
					if n := rc.dropped[tg][d].Load(); n > 0 {
						o.ObserveInt64(shadow, n, rc.dropOpts[tg][d]...)
					}
				}
			}
			return true
		})
	}, routed, shadow)
}

// route returns the counts of a route pattern ("" outside a gateway).
func (t *instruments) route(route string) *routeCounts { return t.routes.Get(route) }

func newRouteCounts(route string) *routeCounts {
	rc := &routeCounts{}
	var base []attribute.KeyValue
	if route != "" {
		rc.httpRoute = route
		if route != telemetry.OtherSeries {
			rc.httpRoute = gateway.HTTPRoute(route)
		}
		base = append(base, semconv.HTTPRoute(rc.httpRoute))
	}
	set := func(kv ...attribute.KeyValue) []metric.ObserveOption {
		return []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(append(kv, base...)...))}
	}
	for tg := range numTargets {
		target := AttrTarget.String(tg.String())
		for r := range numRules {
			rc.routedOpts[tg][r] = set(target, AttrRule.String(ruleNames[r]))
		}
		for r := range numResults - 1 {
			rc.resultOpts[tg][r] = set(target, AttrShadowResult.String(resultNames[r]))
		}
		for d := range numDrops {
			rc.dropOpts[tg][d] = set(target, AttrShadowResult.String(resultNames[resultDropped]), AttrShadowReason.String(dropNames[d]))
		}
	}
	return rc
}

// totals sums the shadow results of every route, for the diff handler.
func (t *instruments) totals() map[string]int64 {
	out := map[string]int64{}
	for _, name := range resultNames {
		out[name] = 0
	}
	t.routes.Range(func(rc *routeCounts) bool {
		for tg := range numTargets {
			for r := range numResults - 1 {
				out[resultNames[r]] += rc.results[tg][r].Load()
			}
			for d := range numDrops {
				out[resultNames[resultDropped]] += rc.dropped[tg][d].Load()
			}
		}
		return true
	})
	return out
}

// recordFlagPanic notes on the request's span that a flag panicked.
func recordFlagPanic(ctx context.Context, v any) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(EventFlagPanic, trace.WithAttributes(
			semconv.ExceptionMessage(fmt.Sprint(v))))
	}
}
