package auth

import (
	"context"
	"errors"
	"net/url"
	"sync"

	"github.com/MicahParks/jwkset"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's meter: its
// import path.
const ScopeName = "github.com/otelpatterns/patterns/gateway/auth"

// Attribute keys the package records.
const (
	AttrReason = attribute.Key("gateway.auth.reason")
	AttrScheme = attribute.Key("gateway.auth.scheme")
)

// Span events the package adds to the request's span.
const (
	EventFailure       = "gateway.auth.failure"
	EventAuthenticated = "gateway.auth.authenticated"
)

// errorTypeJWKSStatus is the error.type of a key-set fetch answered with
// a status other than 200.
const errorTypeJWKSStatus = "gateway.auth.jwks_status"

// Metric names.
const (
	metricFailures     = "gateway.auth.failures"
	metricJWKSFailures = "gateway.auth.jwks.failures"
)

// instruments are an authenticator's metrics. Failures are counted in
// memory per route and reason and reported by one callback at collection
// time (the module's way with hot counts: an attack is a hot path); the
// attribute sets of a route are built the first time it fails. Routes are
// bounded by the route table, and past maxRouteSeries routes the rest
// count as http.route "_OTHER".
type instruments struct {
	routes *telemetry.Series[routeCounts] // by route pattern
	mu     sync.Mutex                     // guards jwks
	jwks   map[jwksKey]*telemetry.Counter

	reg *telemetry.Registration
	mp  metric.MeterProvider
}

type routeCounts struct {
	failures [numReasons]telemetry.Counter
	opts     [numReasons][]metric.ObserveOption
}

type jwksKey struct{ host, errorType string }

func newInstruments(mp metric.MeterProvider) *instruments {
	return &instruments{mp: mp, jwks: map[jwksKey]*telemetry.Counter{},
		routes: telemetry.NewSeries(maxRouteSeries, newRouteCounts)}
}

// observe registers the callback that reports the counts while a is
// reachable (and once more after).
func (t *instruments) observe(a *Authenticator) {
	m := telemetry.Meter(t.mp, ScopeName)
	failures := telemetry.Int64ObservableCounter(m, metricFailures,
		metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused by authentication or authorisation, by reason."))
	jwks := telemetry.Int64ObservableCounter(m, metricJWKSFailures,
		metric.WithUnit("{fetch}"),
		metric.WithDescription("Fetches of a JSON Web Key Set that failed."))
	t.reg = telemetry.ObserveState(m, a, t, func(t *instruments, o metric.Observer) {
		t.routes.Range(func(rc *routeCounts) bool {
			for i := range numReasons {
				if n := rc.failures[i].Load(); n > 0 {
					o.ObserveInt64(failures, n, rc.opts[i]...)
				}
			}
			return true
		})
		t.mu.Lock()
		defer t.mu.Unlock()
		for k, c := range t.jwks {
			o.ObserveInt64(jwks, c.Load(), metric.WithAttributes(
				semconv.ServerAddressKey.String(k.host), semconv.ErrorTypeKey.String(k.errorType)))
		}
	}, failures, jwks)
}

func (t *instruments) route(route string) *routeCounts { return t.routes.Get(route) }

func newRouteCounts(route string) *routeCounts {
	rc := &routeCounts{}
	for i, reason := range reasons {
		attrs := []attribute.KeyValue{AttrReason.String(string(reason))}
		if route != "" {
			attrs = append(attrs, semconv.HTTPRouteKey.String(httpRoute(route)))
		}
		rc.opts[i] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	}
	return rc
}

// httpRoute is the http.route of a route pattern, or of the series the
// routes past the bound share.
func httpRoute(route string) string {
	if route == telemetry.OtherSeries {
		return route
	}
	return gateway.HTTPRoute(route)
}

// failed counts a refused request and adds the failure event to its span.
func (t *instruments) failed(ctx context.Context, route string, reason Reason) {
	if i := reason.index(); i >= 0 {
		t.route(route).failures[i].Inc()
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(EventFailure, trace.WithAttributes(AttrReason.String(string(reason))))
	}
}

// authenticated adds the event of a successful authentication to the
// request's span. It names the scheme, never the subject.
func (t *instruments) authenticated(ctx context.Context, scheme string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(EventAuthenticated, trace.WithAttributes(AttrScheme.String(scheme)))
	}
}

// jwksFailed counts a failed fetch of the key set at rawURL. Fetches ended
// by Close are not failures.
func (t *instruments) jwksFailed(rawURL string, err error) {
	if errors.Is(err, errClosed) || errors.Is(err, context.Canceled) {
		return
	}
	errorType := telemetry.ErrorTypeString(err)
	if errors.Is(err, jwkset.ErrInvalidHTTPStatusCode) {
		errorType = errorTypeJWKSStatus
	}
	host := rawURL
	if u, perr := url.Parse(rawURL); perr == nil {
		host = u.Hostname()
	}
	k := jwksKey{host: host, errorType: errorType}
	t.mu.Lock()
	c := t.jwks[k]
	if c == nil {
		c = &telemetry.Counter{}
		t.jwks[k] = c
	}
	t.mu.Unlock()
	c.Inc()
}
