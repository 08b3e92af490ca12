package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's meter: its
// import path.
const ScopeName = "github.com/otelpatterns/patterns/gateway/ratelimit"

// Attribute keys the package records.
const (
	AttrName     = attribute.Key("gateway.ratelimit.name")
	AttrDecision = attribute.Key("gateway.ratelimit.decision")
	AttrFailMode = attribute.Key("gateway.ratelimit.fail_mode")
)

// The values of gateway.ratelimit.decision.
const (
	DecisionAllowed = "allowed"
	DecisionLimited = "limited"
	DecisionError   = "error"
)

// Span events the package adds to the request's span.
const (
	EventLimited = "gateway.ratelimit.limited"
	EventError   = "gateway.ratelimit.error"
)

const (
	metricDecisions = "gateway.ratelimit.decisions"
	maxRouteSeries  = 1024
)

// instruments are a limiter's metrics. Decisions are counted in memory per
// route and reported by one callback at collection time (a decision is
// made on every request, a hot path); a route's attribute sets are built
// the first time it is seen, and past maxRouteSeries routes the rest count
// as http.route "_OTHER". Errors are counted per route and error.type,
// with gateway.ratelimit.fail_mode saying what the request got.
type instruments struct {
	name     attribute.KeyValue
	failMode attribute.KeyValue

	routes *telemetry.Series[routeCounts] // by route pattern
	last   atomic.Pointer[routeCounts]    // the counts the last request's route got from routes
	mu     sync.Mutex                     // guards errors
	errors map[errorKey]*telemetry.Counter

	reg *telemetry.Registration
}

type routeCounts struct {
	key              string // the route pattern, or telemetry.OtherSeries
	allowed, limited telemetry.Counter
	allowedOpts      []metric.ObserveOption
	limitedOpts      []metric.ObserveOption
	routeAttr        []attribute.KeyValue
}

type errorKey struct{ route, errorType string }

func newInstruments(name string, failClosed bool) *instruments {
	mode := "open"
	if failClosed {
		mode = "closed"
	}
	t := &instruments{
		name:     AttrName.String(name),
		failMode: AttrFailMode.String(mode),
		errors:   map[errorKey]*telemetry.Counter{},
	}
	t.routes = telemetry.NewSeries(maxRouteSeries, t.newRouteCounts)
	return t
}

// observe registers the callback that reports the counts while l is
// reachable (and once more after).
func (t *instruments) observe(l *Limiter, mp metric.MeterProvider) {
	m := telemetry.Meter(mp, ScopeName)
	decisions := telemetry.Int64ObservableCounter(m, metricDecisions,
		metric.WithUnit("{request}"),
		metric.WithDescription("Decisions of the rate limiter: allowed, limited, or error when it could not decide."))
	t.reg = telemetry.ObserveState(m, l, t, func(t *instruments, o metric.Observer) {
		t.routes.Range(func(rc *routeCounts) bool {
			if n := rc.allowed.Load(); n > 0 {
				o.ObserveInt64(decisions, n, rc.allowedOpts...)
			}
			if n := rc.limited.Load(); n > 0 {
				o.ObserveInt64(decisions, n, rc.limitedOpts...)
			}
			return true
		})
		t.mu.Lock()
		defer t.mu.Unlock()
		for k, c := range t.errors {
			attrs := []attribute.KeyValue{t.name, AttrDecision.String(DecisionError), t.failMode, semconv.ErrorTypeKey.String(k.errorType)}
			if k.route != "" {
				attrs = append(attrs, semconv.HTTPRouteKey.String(k.route)) // http.route's value already
			}
			o.ObserveInt64(decisions, c.Load(), metric.WithAttributes(attrs...))
		}
	}, decisions)
}

// route returns the counts of a route. The last route's are kept aside:
// most limiters serve one route, or a few in turn, and comparing the
// pattern with the one before (the same string, most often) is cheaper
// than a lookup by it.
func (t *instruments) route(route string) *routeCounts {
	if rc := t.last.Load(); rc != nil && rc.key == route {
		return rc
	}
	rc := t.routes.Get(route)
	if rc.key == route { // not a route past the bound, which shares _OTHER's
		t.last.Store(rc)
	}
	return rc
}

func (t *instruments) newRouteCounts(route string) *routeCounts {
	rc := &routeCounts{key: route}
	if route != "" {
		hr := route // the series the routes past the bound share
		if route != telemetry.OtherSeries {
			hr = gateway.HTTPRoute(route)
		}
		rc.routeAttr = []attribute.KeyValue{semconv.HTTPRouteKey.String(hr)}
	}
	set := func(decision string) []metric.ObserveOption {
		attrs := append([]attribute.KeyValue{t.name, AttrDecision.String(decision)}, rc.routeAttr...)
		return []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	}
	rc.allowedOpts, rc.limitedOpts = set(DecisionAllowed), set(DecisionLimited)
	return rc
}

// record counts a decision, or the error that stopped one, and adds the
// events of a limited request and of an error to the request's span.
func (t *instruments) record(ctx context.Context, route string, d Decision, err error) {
	span := trace.SpanFromContext(ctx)
	if err != nil {
		et := telemetry.ErrorTypeString(err)
		rc := t.route(route)
		k := errorKey{errorType: et}
		if len(rc.routeAttr) > 0 {
			k.route = rc.routeAttr[0].Value.AsString()
		}
		t.mu.Lock()
		c := t.errors[k]
		if c == nil {
			c = &telemetry.Counter{}
			t.errors[k] = c
		}
		t.mu.Unlock()
		c.Inc()
		if span.IsRecording() {
			span.AddEvent(EventError, trace.WithAttributes(t.name, t.failMode, semconv.ErrorTypeKey.String(et)))
		}
		return
	}
	rc := t.route(route)
	if d.Allowed {
		rc.allowed.Inc()
		return
	}
	rc.limited.Inc()
	if span.IsRecording() {
		span.AddEvent(EventLimited, trace.WithAttributes(t.name))
	}
}
