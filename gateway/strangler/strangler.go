package strangler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Facade is a strangler facade: an [http.Handler], the Handler of a
// gateway route, that sends each request to the legacy side or the new
// one by its rules, and may shadow it to the other side to compare the
// answers. Build one with [New]; stop its shadow workers with
// [Facade.Shutdown] or [Facade.Close]. A Facade not made by New (the
// zero Facade) answers 500, and so does its [Facade.DiffHandler].
//
// A Facade is safe for concurrent use.
type Facade struct {
	sides  [numTargets]http.Handler
	rules  []rule
	keys   []Key
	bp     atomic.Int32 // the percentage, in hundredths
	tel    *instruments
	shadow *shadower // nil without WithShadow
}

// New returns a facade between legacy and modern, the handlers of the
// two sides: typically gateway.ProxyTo("legacy") and
// gateway.ProxyTo("new"), so that both get the gateway's balancing,
// breakers, retries and client spans. A request goes to the side that the first
// deciding rule names, in the order the options were given
// ([WithPaths], [WithHeader], [WithCookie], [WithFlag]); a request no
// rule decides is split by percentage ([WithPercent], [WithStickyKey]).
//
// It returns every configuration error at once, joined with
// [errors.Join], each naming its field or option: a nil side, a
// percentage outside [0, 100], a bad pattern, header or ignore path, a
// nil option ("opts[i] is nil").
// With [WithShadow], New starts the shadow workers.
func New(legacy, modern http.Handler, opts ...Option) (*Facade, error) {
	c := &config{}
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("strangler: opts[%d] is nil", i))
			continue
		}
		o.apply(c)
	}
	if legacy == nil {
		errs = append(errs, errors.New("strangler: legacy: must not be nil"))
	}
	if modern == nil {
		errs = append(errs, errors.New("strangler: new: must not be nil"))
	}
	for _, e := range c.validate() {
		errs = append(errs, errors.New("strangler: "+e))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if !c.keysSet {
		c.keys = []Key{BySubject(), ByClientIP()}
	}
	if c.tracerProvider == nil {
		c.tracerProvider = otel.GetTracerProvider()
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	f := &Facade{
		sides: [numTargets]http.Handler{legacy, modern},
		rules: c.rules,
		keys:  c.keys,
		tel:   newInstruments(),
	}
	f.bp.Store(toBasisPoints(c.percent))
	if c.shadow != nil {
		f.shadow = newShadower(f, c.shadow.withDefaults(), telemetry.Tracer(c.tracerProvider, ScopeName))
	}
	f.tel.observe(f, c.meterProvider)
	return f, nil
}

func toBasisPoints(p float64) int32 { return int32(math.Round(p * buckets / 100)) }

// ServeHTTP sends the request to the side its rules decide (without a
// [ShadowHeader] the client sent), records the
// decision (gateway.strangler.target and gateway.strangler.rule on the
// request's span, gateway.strangler.routed), and, when shadowing is on
// and the request is eligible, queues a copy for the other side once the
// primary has answered.
func (f *Facade) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f == nil || f.tel == nil {
		notMade(w)
		return
	}
	if _, forged := r.Header[ShadowHeader]; forged {
		// Only the facade's copies carry it: a client's could make the
		// new side treat a real request as a shadow (and, say, skip its
		// side effects). The request is the caller's, so it is copied.
		r = r.Clone(r.Context())
		delete(r.Header, ShadowHeader)
	}
	t, rl := f.decide(r)
	ctx := r.Context()
	route, _ := gateway.RouteFrom(ctx)
	rc := f.tel.route(route)
	rc.routed[t][rl].Inc()
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(spanAttrs[t][rl]...)
	}
	if s := f.shadow; s != nil && s.on.Load() && s.eligible(r) {
		s.serve(w, r, t, rc)
		return
	}
	f.sides[t].ServeHTTP(w, r)
}

// notMade answers for a Facade not made by New.
func notMade(w http.ResponseWriter) {
	http.Error(w, "strangler: the Facade was not made by New", http.StatusInternalServerError)
}

// SetPercent sets the share of the requests no rule decides that go to
// the new side, in percent (0 to 100, rounded to 0.01), at once and
// without a restart. Raising it only moves callers from the legacy side
// to the new one: a caller goes to the new side when the bucket of its
// sticky key ([Bucket]) is below the percentage, so the callers already
// there stay. Lowering it moves callers back. A percentage outside
// [0, 100] is an error and changes nothing.
func (f *Facade) SetPercent(percent float64) error {
	if math.IsNaN(percent) || percent < 0 || percent > 100 {
		return fmt.Errorf("strangler: SetPercent(%v): must be in [0, 100]", percent)
	}
	f.bp.Store(toBasisPoints(percent))
	return nil
}

// Percent returns the share of the requests that the percentage split
// sends to the new side.
func (f *Facade) Percent() float64 { return float64(f.bp.Load()) * 100 / buckets }

// SetShadow turns shadowing on or off at run time; it is on from [New]
// when [WithShadow] was given, and has no effect without it or after
// [Facade.Shutdown]. Copies already queued are still sent.
func (f *Facade) SetShadow(on bool) {
	if s := f.shadow; s != nil {
		s.mu.RLock()
		defer s.mu.RUnlock()
		if !s.closed {
			s.on.Store(on)
		}
	}
}

// Shutdown stops shadowing: it queues no more copies, lets the workers
// send and compare the queued ones until ctx ends, then cancels the
// calls still in flight, drops the rest (counted, reason closed), and
// returns once every worker has exited, with ctx's error if it ended
// first. Requests keep being routed (and counted) after it, without
// shadows. Shutdown is idempotent.
func (f *Facade) Shutdown(ctx context.Context) error {
	var err error
	if f.shadow != nil {
		err = f.shadow.shutdown(ctx)
	}
	return err
}

// Close is Shutdown without the wait: it cancels the shadow calls in
// flight, drops the queued copies and returns once the workers have
// exited. It always returns nil.
func (f *Facade) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = f.Shutdown(ctx)
	return nil
}
