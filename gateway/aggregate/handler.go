package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// The document's metadata fields and the response's headers.
const (
	// PartialField maps each failed optional part to its [PartError]:
	// {"_partial": {"reviews": {"error": "timeout"}}}.
	PartialField = "_partial"
	// StaleField lists the parts served from the cache because their
	// upstream failed: {"_stale": ["customer"]}.
	StaleField = "_stale"
	// FailedField, in the document of a failed response, maps the
	// required part that failed to its [PartError].
	FailedField = "_failed"
	// ErrorField, in the document of a response refused or failed as a
	// whole, says why: method_not_allowed, body_too_large,
	// body_unreadable, timeout, canceled, internal, or not_configured
	// (a Handler not made by New).
	ErrorField = "_error"
	// PartialHeader lists the failed optional parts, comma-separated.
	PartialHeader = "X-Aggregate-Partial"
	// StaleHeader lists the parts served stale, comma-separated.
	StaleHeader = "X-Aggregate-Stale"
)

// maxRequestBody bounds the body of an unsafe request, read once and
// sent to each part that sends one.
const maxRequestBody = 1 << 20

// cacheTimeout bounds a cache write, made after the answer arrived and
// so outside its part's time (see writeContext).
const cacheTimeout = 250 * time.Millisecond

// Handler serves an aggregation route: it calls its parts' upstreams
// through a gateway, each as soon as the parts it needs have answered,
// and answers with one JSON document.
// It is an [http.Handler] for a [gateway.Route]'s Handler. It is safe
// for concurrent use.
//
// A Handler is made by [New]: the zero Handler (or a nil one) has no
// parts, and answers every request 500 with {"_error": "not_configured"},
// without calling anything.
type Handler struct {
	client  *http.Client
	parts   []*part
	stages  [][]*part
	headers []string // every part's forwarded headers, for the key
	vary    []string // the request headers the document depends on
	writes  bool     // a part may send a write: nothing is shared
	id      string   // the configuration, for the key
	cfg     config
	tel     *instruments

	mu      sync.Mutex
	flights map[string]*flight // the aggregations running, by key
}

// flight is an aggregation that identical requests share (see
// collapse).
type flight struct {
	done     chan struct{} // closed once res is set
	res      *response
	deadline time.Time // the leader's, which bounds it; zero for none
}

// New returns a handler that aggregates parts, calling their upstreams
// through the gateway that serves the request ([gateway.UpstreamTransport]),
// so that each call gets the upstream's balancing, breakers, retries and
// client span. It is built before the gateway, and put in a route's
// Handler.
//
// New reports every configuration error at once, each naming its part
// and field, or the option: a nil option is "opts[i] is nil".
func New(parts []Part, opts ...Option) (*Handler, error) {
	cfg := config{transport: gateway.UpstreamTransport()}
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("aggregate: opts[%d] is nil", i))
			continue
		}
		o.apply(&cfg)
	}
	ps, stages, perrs := validateParts(parts, cfg.unsafe, cfg.cache != nil)
	errs = append(errs, perrs...)
	switch {
	case cfg.ttl < 0:
		errs = append(errs, fmt.Errorf("aggregate: WithTTL(%v): must not be negative", cfg.ttl))
	case cfg.ttl > 0 && cfg.cache == nil:
		errs = append(errs, fmt.Errorf("aggregate: WithTTL(%v): needs a cache (WithCache)", cfg.ttl))
	}
	if cfg.shapesSet && len(cfg.shapes) == 0 {
		errs = append(errs, errors.New("aggregate: WithShapes: shapes: must not be empty"))
	}
	for name, s := range cfg.shapes {
		if s == nil {
			errs = append(errs, fmt.Errorf("aggregate: WithShapes: shape %q: must not be nil", name))
		}
		if name != "" && cfg.clientType == nil {
			errs = append(errs, fmt.Errorf("aggregate: WithShapes: shape %q needs a client type function", name))
		}
	}
	typeHeader, fromHeader := headerOf(cfg.clientType)
	if fromHeader && !validToken(typeHeader) {
		errs = append(errs, fmt.Errorf("aggregate: WithShapes: FromHeader(%q): not a header name", typeHeader))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	h := &Handler{
		client: &http.Client{
			Transport: cfg.transport,
			// A redirect's URL names a host, not an upstream: a part
			// that redirects fails with its 3xx.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		parts:  ps,
		stages: stages,
		cfg:    cfg,
		tel:    newInstruments(cfg.tp, cfg.mp),
	}
	// A Request function's method is known only when it runs; with
	// WithUnsafeMethods, it may write.
	h.writes = slices.ContainsFunc(ps, func(p *part) bool { return p.unsafe || (cfg.unsafe && p.Request != nil) })
	for _, p := range ps {
		// Only answers that something reads need decoding.
		p.raw = cfg.shapes == nil && !slices.ContainsFunc(ps, func(q *part) bool { return slices.Contains(q.deps, p.index) })
		for _, name := range p.header {
			if !slices.Contains(h.headers, name) {
				h.headers = append(h.headers, name)
			}
		}
	}
	slices.Sort(h.headers)
	h.vary = slices.Clone(h.headers)
	if fromHeader && cfg.shapes != nil && !slices.Contains(h.vary, typeHeader) {
		h.vary = append(h.vary, typeHeader)
		slices.Sort(h.vary)
	}
	h.id = configKey(ps, cfg)
	return h, nil
}

// response is an aggregation's answer, shared by the requests collapsed
// into it: never modified once made.
type response struct {
	status  int
	body    []byte
	auth    []string // the WWW-Authenticate challenges of a 401
	partial []string
	stale   []string
	parts   []string // the parts in the document
	err     error    // why it failed, for the span
	leader  trace.SpanContext
}

func (res *response) complete() bool {
	return res.status == http.StatusOK && len(res.partial) == 0 && len(res.stale) == 0
}

// ServeHTTP answers with the aggregation's document; see the package
// documentation for the status policy.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h == nil || h.tel == nil { // not made by New
		errorResponse(http.StatusInternalServerError, "not_configured").write(w)
		return
	}
	// Only reads are aggregated unless asked: an OPTIONS (a CORS
	// preflight) must not set off a fan-out either.
	safe := r.Method == http.MethodGet || r.Method == http.MethodHead
	if !safe && !h.cfg.unsafe {
		w.Header().Set("Allow", "GET, HEAD")
		errorResponse(http.StatusMethodNotAllowed, "method_not_allowed").write(w)
		return
	}
	route := routeOf(r)
	var (
		shape      Shape
		clientType string
	)
	if !guarded(func() { shape, clientType = h.shape(r) }) {
		errorResponse(http.StatusInternalServerError, "internal").write(w)
		return
	}
	ctx, span := h.tel.tracer.Start(r.Context(), SpanAggregation,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(semconv.HTTPRoute(route)))
	defer span.End()
	if h.cfg.shapes != nil && span.IsRecording() {
		span.SetAttributes(AttrClientType.String(clientType))
	}
	r = r.WithContext(ctx)

	var res *response
	if !safe {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		var mbe *http.MaxBytesError // the route's MaxBodyBytes
		switch {
		case errors.As(err, &mbe):
			res = errorResponse(http.StatusRequestEntityTooLarge, "body_too_large")
		case err != nil:
			res = errorResponse(http.StatusBadRequest, "body_unreadable")
		case len(body) > maxRequestBody:
			res = errorResponse(http.StatusRequestEntityTooLarge, "body_too_large")
		default:
			res = h.runAlone(r, route, shape, body)
		}
	} else if h.writes {
		res = h.runAlone(r, route, shape, nil)
	} else {
		res = h.collapse(r, route, shape, clientType)
	}
	if res.leader.IsValid() && !res.leader.Equal(span.SpanContext()) {
		span.SetAttributes(AttrCollapsed.Bool(true))
		span.AddLink(trace.Link{SpanContext: res.leader})
	}
	telemetry.RecordError(span, res.err)
	h.setVary(w.Header())
	res.write(w)
}

// setVary names in the response's Vary the request headers that its
// document depends on besides its URL: those the parts forward, and
// FromHeader's, so that a cache in front of the gateway does not serve
// one language's or one client type's document to another (RFC 9110,
// 12.5.5). Names that a middleware set already are kept.
func (h *Handler) setVary(hdr http.Header) {
	if len(h.vary) == 0 {
		return
	}
	set := hdr.Values("Vary")
	if len(set) == 0 {
		hdr.Set("Vary", strings.Join(h.vary, ", "))
		return
	}
	var names []string
	for _, v := range set {
		for name := range strings.SplitSeq(v, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if name == "*" { // varies on everything already
				return
			}
			if name != "" && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	for _, name := range h.vary {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	hdr.Set("Vary", strings.Join(names, ", "))
}

// collapse answers a safe request from the one aggregation that runs
// for all identical requests at a time: the first of them, its leader,
// starts it, and the others join it. Its document comes from the cache
// (WithTTL), read once for all of them, or from the parts.
func (h *Handler) collapse(r *http.Request, route string, shape Shape, clientType string) *response {
	ctx := r.Context()
	var key string
	if !guarded(func() { key = h.key(r, clientType) }) {
		return errorResponse(http.StatusInternalServerError, "internal")
	}
	h.mu.Lock()
	f, joined := h.flights[key]
	if joined && !f.deadline.IsZero() && !time.Now().Before(f.deadline) {
		// Past its deadline the flight is ending, or stuck on a call
		// deaf to its context: a request with time of its own gets an
		// aggregation of its own, which takes the flight's place.
		joined = false
	}
	if !joined {
		f = newFlight(ctx)
		if h.flights == nil {
			h.flights = map[string]*flight{}
		}
		h.flights[key] = f
	}
	h.mu.Unlock()
	if !joined {
		h.lead(f, r, key, route, shape)
	}
	return h.await(ctx, f, joined)
}

// runAlone runs an aggregation that no other request shares (a write,
// or a handler whose parts may write) as collapse runs a shared one: on
// a goroutine of its own, so that its request is answered at most
// lateAnswer past its deadline, whatever its calls do.
func (h *Handler) runAlone(r *http.Request, route string, shape Shape, body []byte) *response {
	f := newFlight(r.Context())
	go func() {
		var res *response
		defer func() {
			if v := recover(); v != nil {
				otel.Handle(fmt.Errorf("aggregate: panic: %v\n%s", v, debug.Stack()))
			}
			h.land(f, "", res)
		}()
		res = h.run(r, route, shape, body)
	}()
	return h.await(r.Context(), f, false)
}

func newFlight(ctx context.Context) *flight {
	f := &flight{done: make(chan struct{})}
	f.deadline, _ = ctx.Deadline()
	return f
}

// await returns the answer of flight f to a request with context ctx,
// which started f or joined it.
func (h *Handler) await(ctx context.Context, f *flight, joined bool) *response {
	select {
	case <-f.done:
		return f.res
	case <-ctx.Done():
	}
	err := ctx.Err()
	if !errors.Is(err, context.DeadlineExceeded) {
		// The client went away; the aggregation goes on for the others.
		res := errorResponse(gateway.StatusClientClosedRequest, "canceled")
		res.err = fmt.Errorf("aggregate: the client went away: %w", err)
		return res
	}
	// The request's time ran out. An aggregation bounded by the same
	// deadline (the leader's) or an earlier one is ending too, and its
	// answer says what was late: a 200 without a late optional part, a
	// 504 naming a late required one. A request with less time than
	// the aggregation it joined cannot wait for it.
	// It gets a moment to say so: a part whose call does not heed its
	// context (a Request or Shape function that hangs) must not hold
	// the request for ever.
	if dl, _ := ctx.Deadline(); !joined || (!f.deadline.IsZero() && !dl.Before(f.deadline)) {
		t := time.NewTimer(lateAnswer)
		defer t.Stop()
		select {
		case <-f.done:
			return f.res
		case <-t.C:
		}
	}
	res := errorResponse(http.StatusGatewayTimeout, "timeout")
	res.err = fmt.Errorf("aggregate: the shared aggregation outlasts the request: %w", err)
	return res
}

// lateAnswer is how long a request whose time ran out waits for the
// aggregation it shares, bounded by the same deadline, to end: the
// parts see the deadline at once, so this is only a bound.
const lateAnswer = time.Second

// lead starts flight f for its leader r: it answers from the cache, or
// runs the aggregation in a goroutine of its own, which the leader can
// leave (its client going away) without ending it for the others. The
// goroutine ends with the aggregation: bounded by the leader's
// deadline, and by the parts' Timeouts.
//
// The flight lands whatever happens, so that no request waits on it
// for ever: a panic in the cache's functions (its loader or writer, the
// user's) gives a 500, and goes to otel.Handle, as one in a Shape does.
func (h *Handler) lead(f *flight, r *http.Request, key, route string, shape Shape) {
	ctx := r.Context()
	var cached *response
	if !guarded(func() { cached = h.cachedDoc(ctx, key, route) }) {
		cached = errorResponse(http.StatusInternalServerError, "internal")
	}
	if cached != nil {
		h.land(f, key, cached)
		return
	}
	go func() {
		var res *response
		defer func() {
			if v := recover(); v != nil {
				otel.Handle(fmt.Errorf("aggregate: panic: %v\n%s", v, debug.Stack()))
			}
			h.land(f, key, res)
		}()
		// The flight answers every request that joins it, so one that
		// goes away must not cancel it; it keeps the leader's deadline.
		fctx := context.WithoutCancel(ctx)
		if !f.deadline.IsZero() {
			var cancel context.CancelFunc
			fctx, cancel = context.WithDeadline(fctx, f.deadline)
			defer cancel()
		}
		res = h.run(r.WithContext(fctx), route, shape, nil)
		res.leader = trace.SpanContextFromContext(ctx)
		if h.cfg.ttl > 0 && res.complete() {
			// Stored before the flight lands: a request that finds no
			// flight for its key finds its document, reading the cache
			// once.
			sctx, cancel := writeContext(fctx, fctx)
			defer cancel()
			_ = h.cfg.cache.Set(sctx, key, Entry{Body: res.body, Stored: time.Now(), Parts: res.parts})
		}
	}()
}

// land ends flight f with res, for the requests that joined it, and
// takes it out of the table under key ("" for one that was never in
// it) unless another flight took its place. A nil res, from a panic or
// a runtime.Goexit (a test's FailNow) in the user's functions, is a
// 500.
func (h *Handler) land(f *flight, key string, res *response) {
	if res == nil {
		res = errorResponse(http.StatusInternalServerError, "internal")
	}
	f.res = res
	if key != "" {
		h.mu.Lock()
		if h.flights[key] == f {
			delete(h.flights, key)
		}
		h.mu.Unlock()
	}
	close(f.done)
}

// writeContext returns the context of a cache write, made after the
// answer arrived: ctx's values (the trace), but not its cancellation
// (the answer is good though the request ended), and a deadline of
// cacheTimeout or bound's, whichever is earlier, so that a slow cache
// (an L2 that hangs) never holds a complete answer past the route's
// deadline.
func writeContext(ctx, bound context.Context) (context.Context, context.CancelFunc) {
	dl := time.Now().Add(cacheTimeout)
	if d, ok := bound.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), dl)
}

// guarded calls f, which calls a function of the configuration (a
// ClientType, WithKey's), and reports its panic to otel.Handle, as run
// does a Shape's: the request gets a 500, not a dropped connection.
func guarded(f func()) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			otel.Handle(fmt.Errorf("aggregate: panic: %v\n%s", v, debug.Stack()))
			ok = false
		}
	}()
	f()
	return true
}

// cachedDoc returns the document kept for key by WithTTL, if fresh.
func (h *Handler) cachedDoc(ctx context.Context, key, route string) *response {
	if h.cfg.ttl <= 0 {
		return nil
	}
	e, err := h.cfg.cache.Get(ctx, key)
	if err != nil || time.Since(e.Stored) >= h.cfg.ttl {
		return nil
	}
	for _, p := range e.Parts {
		h.tel.count(ctx, route, p, OutcomeCached)
	}
	return &response{status: http.StatusOK, body: e.Body, parts: e.Parts}
}

// shape returns the request's shape and the client type that chose it
// (one of WithShapes's keys).
func (h *Handler) shape(r *http.Request) (Shape, string) {
	if h.cfg.shapes == nil {
		return nil, ""
	}
	if h.cfg.clientType != nil {
		t := h.cfg.clientType(r)
		if s, ok := h.cfg.shapes[t]; ok {
			return s, t
		}
	}
	return h.cfg.shapes[""], ""
}

// outcome is one part's result.
type outcome struct {
	value      any
	err        *PartError
	cached     bool
	stale      bool
	skipped    bool
	notRun     bool // a required part failed before it could start
	start, end time.Time
}

// run aggregates: every part starts as soon as the parts it depends on
// have answered, so that a slow part holds up only those that need it.
// A panic in a Shape gives a 500, the one status that is ours, and goes
// to otel.Handle (one in a Request function fails its part: see part).
func (h *Handler) run(r *http.Request, route string, shape Shape, body []byte) (res *response) {
	defer func() {
		if v := recover(); v != nil {
			otel.Handle(fmt.Errorf("aggregate: panic: %v\n%s", v, debug.Stack()))
			res = errorResponse(http.StatusInternalServerError, "internal")
		}
	}()
	ctx := r.Context()
	outs := make([]outcome, len(h.parts))
	done := make([]chan struct{}, len(h.parts))
	for i := range done {
		done[i] = make(chan struct{})
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range h.parts {
		g.Go(func() error {
			o := &outs[p.index]
			defer close(done[p.index])
			for _, d := range p.deps {
				select {
				case <-done[d]:
				case <-gctx.Done():
				}
			}
			if gctx.Err() != nil {
				if err := ctx.Err(); err != nil {
					// The request's time ran out (or its client went away)
					// before the part could start: it failed, and is not
					// to be left a null in a document that looks whole.
					o.err = &PartError{Part: p.Name, Reason: reasonCanceled, Err: err}
					name := OutcomeFailed
					if errors.Is(err, context.DeadlineExceeded) {
						o.err.Reason, name = reasonTimeout, OutcomeTimeout
					}
					h.tel.count(ctx, route, p.Name, name)
					if !p.Optional {
						return o.err
					}
					return nil
				}
				o.notRun = true
				return nil
			}
			// What the part needs is all there: its dependencies (and so
			// theirs) answered; done's close published their outcomes.
			earlier := Results{}
			for _, d := range p.deps {
				switch dep := &outs[d]; {
				case dep.skipped:
					o.skipped = true
					return nil
				case dep.err != nil:
					o.err = &PartError{Part: p.Name, Reason: reasonDependency,
						Err: fmt.Errorf("aggregate: part %q failed", h.parts[d].Name)}
					h.tel.count(ctx, route, p.Name, OutcomeFailed)
					return nil
				}
			}
			for _, a := range p.ancestors {
				earlier[h.parts[a].Name] = outs[a].value
			}
			*o = h.part(gctx, r, p, earlier, route, body)
			if o.err != nil && !p.Optional {
				return o.err
			}
			return nil
		})
	}
	err := g.Wait()
	h.observeStages(ctx, route, outs)
	var pe *PartError
	if errors.As(err, &pe) {
		b, _ := json.Marshal(map[string]any{FailedField: map[string]*PartError{pe.Part: pe}})
		res := &response{status: pe.HTTPStatus(), body: b, err: pe}
		if res.status == http.StatusUnauthorized {
			res.auth = pe.challenge
		}
		return res
	}
	results := Results{}
	failed := map[string]*PartError{}
	var stale, partial, parts []string
	for i, o := range outs {
		name := h.parts[i].Name
		switch {
		case o.skipped:
		case o.err != nil:
			failed[name] = o.err
			partial = append(partial, name)
		default:
			results[name] = o.value
			parts = append(parts, name)
			if o.stale {
				stale = append(stale, name)
			}
		}
	}
	doc := map[string]any(results)
	if shape != nil {
		if doc = shape(doc); doc == nil {
			doc = map[string]any{}
		}
	}
	slices.Sort(partial)
	slices.Sort(stale)
	slices.Sort(parts)
	if len(failed) > 0 {
		doc[PartialField] = failed
	}
	if len(stale) > 0 {
		doc[StaleField] = stale
	}
	b, err := json.Marshal(doc)
	if err != nil { // a Shape that put something JSON cannot hold
		otel.Handle(fmt.Errorf("aggregate: encoding the document: %w", err))
		return errorResponse(http.StatusInternalServerError, "internal")
	}
	return &response{status: http.StatusOK, body: b, partial: partial, stale: stale, parts: parts}
}

// observeStages records the duration of each stage that ran: from the
// first start to the last end of its parts.
func (h *Handler) observeStages(ctx context.Context, route string, outs []outcome) {
	for stage, members := range h.stages {
		var first, last time.Time
		for _, p := range members {
			o := &outs[p.index]
			if o.start.IsZero() {
				continue
			}
			if first.IsZero() || o.start.Before(first) {
				first = o.start
			}
			if o.end.After(last) {
				last = o.end
			}
		}
		if !first.IsZero() {
			h.tel.observeStage(ctx, route, stage, last.Sub(first))
		}
	}
}

// part runs one part: from the cache, from its upstream, or stale from
// the cache when the upstream fails.
func (h *Handler) part(ctx context.Context, in *http.Request, p *part, earlier Results, route string, body []byte) (o outcome) {
	ctx, span := h.tel.tracer.Start(ctx, SpanPart, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrPart.String(p.Name), gateway.AttrUpstream.String(p.Upstream),
			AttrStage.Int(p.stage), semconv.HTTPRoute(route)))
	defer span.End()
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			err := fmt.Errorf("aggregate: part %q: panic: %v\n%s", p.Name, v, debug.Stack())
			otel.Handle(err)
			o = outcome{err: &PartError{Part: p.Name, Reason: reasonRequest, Err: err}}
		}
		o.start, o.end = start, time.Now()
		name := OutcomeOK
		switch {
		case o.skipped:
			return
		case o.stale:
			name = OutcomeStale
		case o.err != nil && o.err.Reason == reasonTimeout:
			name = OutcomeTimeout
		case o.err != nil:
			name = OutcomeFailed
		case o.cached:
			name = OutcomeCached
		}
		h.tel.count(ctx, route, p.Name, name)
		span.SetAttributes(AttrOutcome.String(name))
		if o.err != nil {
			telemetry.RecordError(span, o.err)
		}
	}()
	req, err := h.request(in, p, earlier, body)
	if errors.Is(err, ErrSkip) {
		return outcome{skipped: true}
	}
	if err != nil {
		return outcome{err: &PartError{Part: p.Name, Reason: reasonRequest, Err: err}}
	}
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	req = req.WithContext(ctx)

	var (
		key    string
		cached *Entry
	)
	// A Request function may send another method than the part's, or a
	// body, which the key does not hold.
	if p.TTL > 0 && !p.unsafe && safeMethod(req.Method) && (req.Body == nil || req.Body == http.NoBody) {
		key = partKey(req, p.Public)
		// An answer another handler sharing the cache kept may be over
		// this part's bound: it is not this part's to take.
		if e, err := h.cfg.cache.Get(ctx, key); err == nil && int64(len(e.Body)) <= p.maxBytes {
			if time.Since(e.Stored) < p.TTL {
				if v, err := p.decode(e.Body); err == nil {
					return outcome{value: v, cached: true}
				}
			}
			cached = &e
		}
	}
	v, raw, pe := h.call(req, p, in.Context())
	if pe != nil {
		if cached != nil && pe.stale() {
			if v, err := p.decode(cached.Body); err == nil {
				telemetry.RecordError(span, pe)
				return outcome{value: v, stale: true}
			}
		}
		return outcome{err: pe}
	}
	if key != "" {
		// Bounded by the request's deadline, not the part's Timeout,
		// which bounds its call.
		sctx, cancel := writeContext(ctx, in.Context())
		_ = h.cfg.cache.Set(sctx, key, Entry{Body: raw, Stored: time.Now()})
		cancel()
	}
	return outcome{value: v}
}
