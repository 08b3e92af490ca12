package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/retry"
)

// Gateway is an API gateway: an [http.Handler] that routes each request
// to an upstream or a handler by its routing table. Build one with [New]
// (the zero value answers every request 500), serve it with an
// [http.Server], swap its table with [Gateway.Update] and stop its health
// checks with [Gateway.Close].
//
// A Gateway is safe for concurrent use.
type Gateway struct {
	tp     trace.TracerProvider
	mp     metric.MeterProvider
	base   http.RoundTripper // the transport to upstreams
	h2c    http.RoundTripper // base for H2C upstreams; nil if base is not an *http.Transport
	own    []*http.Transport // transports the gateway made, closed by Close
	client []otelhttp.Option
	server http.Handler // otelhttp around the table's mux

	// untraced is set when both providers are explicitly no-op: otelhttp
	// is left out, since all it would do is cost time (trace context
	// still reaches upstreams, copied with the other headers).
	untraced bool
	// uncounted is set when the meter provider is a no-op one: counts
	// that only telemetry reads are not kept.
	uncounted bool
	pool      bufferPool
	errorLog  *log.Logger // ReverseProxy's, for errors after a response began
	reg       *telemetry.Registration
	clock     func() int64 // monotonic nanoseconds, for ejections

	table atomic.Pointer[table]

	mu     sync.Mutex // serializes Update and Close
	closed bool
}

// table is a routing table: what Update swaps.
type table struct {
	owner       *Gateway
	mux         *http.ServeMux
	upstreams   []*upstream
	byName      map[string]*upstream
	direct      map[string]*route // the routes of Gateway.Proxy, by upstream
	routes      []*route
	stats       map[string]*routeStats // by http.route
	patterns    map[string]bool        // the mux's patterns, as it reports them
	trusted     proxies
	requestID   string
	dropped     []string            // canonical names
	underscores bool                // WithUnderscoreHeaders
	protected   map[string]struct{} // the names whose underscore variants are removed even so
	strictPaths bool

	stop context.CancelFunc
	wg   sync.WaitGroup // health checks
}

// route is a route of one table.
type route struct {
	spec      *routeSpec
	routeAttr attribute.KeyValue // http.route
	pattern   any                // the pattern, boxed once for RouteFrom
	up        *upstream          // nil for a handler route
	proxy     http.Handler
	chain     http.Handler // middleware around the proxy or handler
	stats     *routeStats
}

// routeStats are the counts of the routes of one http.route, kept
// across tables.
type routeStats struct {
	fallbacks [numReasons][numSources]telemetry.Counter
	opts      [numReasons][numSources][]metric.ObserveOption
}

func newRouteStats(httpRoute string) *routeStats {
	s := &routeStats{}
	for r := range numReasons {
		for src := range numSources {
			set := attribute.NewSet(semconv.HTTPRoute(httpRoute),
				AttrFallbackReason.String(reasonNames[r]), AttrFallbackSource.String(sourceNames[src]))
			s.opts[r][src] = []metric.ObserveOption{metric.WithAttributeSet(set)}
		}
	}
	return s
}

// HTTPRoute returns the http.route attribute of a route pattern: its
// path, without the method and host ("GET api.example.com/orders/{id}"
// gives "/orders/{id}"), as the semantic conventions and otelhttp have
// it. Middleware that records the route of [RouteFrom] in telemetry
// should record this.
func HTTPRoute(pattern string) string {
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '/' {
			return pattern[i:]
		}
	}
	return ""
}

// reqState is a request's context as the gateway hands it on: the
// server's context with what the gateway knows of the request, one
// allocation for all of it. It answers [ClientIP] and [RouteFrom] itself.
type reqState struct {
	context.Context
	table       *table
	peer        netip.Addr
	peerTrusted bool
	bodyStall   atomic.Uint32 // bodyWaiting, bodyTimedOut; in peerTrusted's padding
	clientIP    netip.Addr
	requestID   []string
	route       *route
	proxyIn     *http.Request // the request as it reached the proxy, after middleware
	switching   *attemptBody  // the body of a 101 answer, for proxyError to close

	// Room for what every request needs, in the state's one allocation:
	// the request ID's slice, the proxy's response writer and forwarding
	// headers' values (taken by the first proxying of the request; a
	// handler may proxy it twice) and the first attempt's response body.
	idSlot   [1]string
	idRaw    [26]byte
	pwTaken  atomic.Bool
	pw       proxyWriter
	fwdTaken atomic.Bool
	badBody  atomic.Bool // the client's body could not be read; beside fwdTaken, in its padding
	fwdVals  [4]string
	abTaken  atomic.Bool
	tooLarge atomic.Bool // beside abTaken: each alone would take 8 bytes
	ab       attemptBody // the first attempt's response body
}

type stateKey struct{}

func (s *reqState) Value(key any) any {
	switch key.(type) {
	case stateKey:
		return s
	case clientIPKey:
		return s // ClientIP reads the address from it: boxing one allocates
	case routeKey:
		if s.route != nil {
			return s.route.pattern
		}
	}
	return s.Context.Value(key)
}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// New returns a gateway with the upstreams, routes and settings of opts,
// and starts the health checks of its upstreams. It returns every
// configuration error at once (joined with [errors.Join]), each naming
// its field: an upstream without targets or with a bad target URL or
// weight, a route naming an unknown upstream, conflicting routes, a bad
// trusted-proxy CIDR, a nil option ("opts[i] is nil"), and so on. Once
// those pass, it builds each route's middleware chain; a middleware that
// returns nil or panics as it is built is an error naming the route and
// the middleware's index.
func New(opts ...Option) (*Gateway, error) {
	cfg := newConfig(opts)
	g := &Gateway{tp: cfg.tracerProvider, mp: cfg.meterProvider, base: cfg.transport, errorLog: cfg.errorLog, clock: cfg.clock}
	if g.clock == nil {
		g.clock = monotonic()
	}
	// The global providers at the time of New, as every package of the
	// module takes them; given to otelhttp, they also spare it a tracer
	// per request.
	if g.tp == nil {
		g.tp = otel.GetTracerProvider()
	}
	if g.mp == nil {
		g.mp = otel.GetMeterProvider()
	}
	if g.base == nil {
		t := newTransport()
		g.base = t
		g.own = append(g.own, t)
	}
	if t, ok := g.base.(*http.Transport); ok {
		h := t.Clone()
		h.Protocols = new(http.Protocols)
		h.Protocols.SetUnencryptedHTTP2(true)
		g.h2c = h
		g.own = append(g.own, h)
	}
	_, noTraces := g.tp.(tracenoop.TracerProvider)
	_, noMetrics := g.mp.(metricnoop.MeterProvider)
	g.untraced = noTraces && noMetrics
	g.uncounted = noMetrics
	g.client = []otelhttp.Option{
		otelhttp.WithTracerProvider(g.tp),
		otelhttp.WithMeterProvider(g.mp),
		otelhttp.WithSpanNameFormatter(clientSpanName),
		otelhttp.WithClientTrace(retry.ClientTrace),
	}
	t, err := g.build(cfg, nil)
	if err != nil {
		g.closeTransports()
		return nil, err
	}
	g.server = http.HandlerFunc(g.serveTable)
	if !g.untraced {
		g.server = otelhttp.NewMiddleware("gateway",
			otelhttp.WithTracerProvider(g.tp),
			otelhttp.WithMeterProvider(g.mp),
		)(g.server)
	}
	g.table.Store(t)
	t.start()
	g.observe()
	return g, nil
}

// newTransport is the gateway's default transport to upstreams.
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// clientSpanName names an attempt's span by its method, as the HTTP
// semantic conventions name client spans without a URL template.
func clientSpanName(_ string, r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return r.Method
	}
	return "HTTP"
}

// Update replaces the routing table with the one opts describe: upstreams,
// routes, trusted proxies and the request-ID header, all of them (what
// opts leave out is gone, and the request-ID header is back to its
// default unless set). The swap is atomic: a request runs wholly on the
// table it started with, and requests in flight finish on the old one.
//
// A table that fails validation is refused with the same errors [New]
// would return, and the live one stays as it was. Options that only New
// takes ([WithTracerProvider], [WithMeterProvider], [WithTransport]) are
// an error.
//
// Targets that stay in an upstream of the same name keep what the
// gateway knows of them: health, ejection, load and counts. Health
// checks restart with the new table's settings, and the failures of
// requests still running on the old table count under the new table's
// outlier ejection (none if it has none). Breakers are kept when the
// upstream's Breaker is the same pointer as before. Update returns once
// the old table's health checks have stopped.
func (g *Gateway) Update(opts ...Option) error {
	cfg := newConfig(opts)
	if len(cfg.newOnly) > 0 {
		errs := make([]error, len(cfg.newOnly))
		for i, name := range cfg.newOnly {
			errs[i] = fmt.Errorf("gateway: Update: %s: only New takes it", name)
		}
		return errors.Join(errs...)
	}
	if g.server == nil {
		return errNotMade("Update")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: Update: the gateway is closed")
	}
	old := g.table.Load()
	t, err := g.build(cfg, old)
	if err != nil {
		return err
	}
	t.start()
	g.table.Store(t)
	old.halt()
	// A kept breaker group would keep the breakers, and series, of the
	// targets the new table dropped.
	for _, o := range old.upstreams {
		if u := t.byName[o.name]; u != nil && u.group == o.group && o.group != nil {
			for _, ot := range o.targets {
				key := o.breakerKey(ot)
				if !slices.ContainsFunc(u.targets, func(nt *target) bool { return u.breakerKey(nt) == key }) {
					o.group.Remove(key)
				}
			}
		}
	}
	// A last check of the old table may have just taken a target out
	// of service that no check of the new one will put back.
	for _, u := range t.upstreams {
		u.admitUnchecked()
	}
	return nil
}

// Close stops the health checks and closes the idle connections of the
// transports the gateway made; it returns once the checks have stopped.
// The gateway goes on serving requests (with the health it last knew),
// so Close may come before or after the server's Shutdown; after it, no
// connection to an upstream is left open. Close is idempotent and always
// returns nil.
func (g *Gateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	if g.server == nil {
		return errNotMade("Close")
	}
	g.closed = true
	g.table.Load().halt()
	g.reg.Unregister()
	g.closeTransports()
	return nil
}

// errNotMade is the error of a method called on a Gateway that New did
// not make (the zero value).
func errNotMade(method string) error {
	return fmt.Errorf("gateway: %s: the Gateway was not made by New", method)
}

func (g *Gateway) closeTransports() {
	for _, t := range g.own {
		t.CloseIdleConnections()
	}
}

// ServeHTTP routes the request. Before any route sees it, the client's
// address is derived (and forwarding headers from untrusted peers
// removed), the request ID is taken or made, and the server span starts.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g == nil || g.server == nil {
		// A Gateway not made by New has no table: an answer, not a panic.
		http.Error(w, "500 Internal Server Error: gateway: the Gateway was not made by New", http.StatusInternalServerError)
		return
	}
	t := g.table.Load()
	st := &reqState{Context: r.Context(), table: t}
	st.peer = peerAddr(r.RemoteAddr)
	client := st.peer
	if t.trusted.trusts(st.peer) {
		st.peerTrusted = true
		client = t.trusted.clientAddr(r.Header, st.peer)
	}
	if conn, ok := r.Header["Connection"]; ok {
		stripConnection(r.Header, conn)
	}
	// One pass over the request's headers, usually a handful, rather than
	// a delete (a hash of the name) for each of the dozen names that
	// could be there.
	for name := range r.Header {
		if !st.peerTrusted && spoofed(name) || t.drops(name) {
			delete(r.Header, name)
		}
	}
	st.clientIP = client
	if h := t.requestID; h != "" {
		ids := r.Header[h]
		if len(ids) != 1 || !validRequestID(ids[0]) {
			st.idSlot[0] = st.newRequestID()
			ids = st.idSlot[:]
			r.Header[h] = ids
		}
		w.Header()[h] = ids
		st.requestID = ids
	}
	r = r.WithContext(st)
	r.Host = canonHost(r.Host)
	g.server.ServeHTTP(w, r)
}

// stripConnection removes, as the request arrives, the headers that its
// Connection header names (hop-by-hop: for the gateway alone, RFC 9110,
// section 7.6.1), and every name but "Upgrade" from Connection itself.
// ReverseProxy removes them only when it sends the request, after the
// route's middleware: it would remove a header that middleware set, such
// as a claim of gateway/auth, if the client named it. "Upgrade" stays,
// with its header, for ReverseProxy to pass a protocol switch (a
// WebSocket) on. TE stays too: ReverseProxy always removes it when it
// sends the request, but passes "TE: trailers" on (for gRPC) if the
// request it was given has it, and an HTTP/1.1 client that sends TE
// must name it in Connection.
func stripConnection(h http.Header, conn []string) {
	upgrade := false
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			switch tok = textproto.TrimString(tok); {
			case strings.EqualFold(tok, "Upgrade"):
				upgrade = true
			case strings.EqualFold(tok, "Te"):
			case tok != "":
				h.Del(tok)
			}
		}
	}
	if upgrade {
		h["Connection"] = []string{"Upgrade"}
	} else {
		delete(h, "Connection")
	}
}

// drops reports whether the gateway removes the request header name
// whoever sent it: a header of WithDroppedHeaders, or one whose name has
// an underscore (all of them, or with WithUnderscoreHeaders those that
// name a protected header once their underscores are read as hyphens,
// as nginx, CGI and many frameworks read them).
func (t *table) drops(name string) bool {
	for _, d := range t.dropped {
		if name == d {
			return true
		}
	}
	if strings.IndexByte(name, '_') < 0 || name == t.requestID {
		return false // the request-ID header, if named with one, is read next
	}
	if t.underscores {
		_, ok := t.protected[hyphenated(name)]
		return ok
	}
	return true
}

// hyphenated is a header name with its underscores read as hyphens, in
// canonical form.
func hyphenated(name string) string {
	return http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
}

// newRequestID returns a new random request ID: 26 characters of the
// base32 alphabet, 130 random bits, with its buffer in the request's
// state. The bits come from math/rand/v2's generator (the runtime's
// ChaCha8, seeded by the operating system), not crypto/rand: an ID must
// not repeat, but it is no secret, and a crypto/rand.Read cost five times
// as much (96 ns against 20 on the benchmark VM).
func (st *reqState) newRequestID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := st.idRaw[:]
	var bits uint64
	for i := range b {
		if i%12 == 0 { // 12 characters of 5 bits a word
			bits = rand.Uint64()
		}
		b[i] = alphabet[bits&31]
		bits >>= 5
	}
	return string(b)
}

// serveTable hands the request to its table's mux, inside the server span
// so that otelhttp sees the pattern the mux matched.
func (g *Gateway) serveTable(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r.Context())
	t := st.table
	var mux http.Handler = t.mux
	if t.strictPaths && ambiguousPath(r.URL) {
		mux = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusBadRequest)
		})
	}
	if g.untraced {
		mux.ServeHTTP(w, r)
		return
	}
	// otelhttp records the server metrics once this returns, with
	// server.address and server.port read from r.Host, which the client
	// writes: each new Host would be a new series. So r.Host is set to a
	// bounded one then; the route gets a copy of r, which a handler may
	// still be reading from a goroutine of its own (a shadow copy).
	in := *r
	mux.ServeHTTP(w, &in)
	if st.route == nil && in.Pattern != "" {
		// No route ran: a redirect, or a 404 of a pattern whose routes'
		// matchers all missed. The pattern names the span and goes on the
		// metrics, but ServeMux reports a CONNECT request's redirect
		// with the client's path as its pattern: a path, which must not.
		if t.patterns[in.Pattern] {
			trace.SpanFromContext(r.Context()).SetAttributes(semconv.HTTPRoute(HTTPRoute(in.Pattern)))
		} else {
			in.Pattern = ""
		}
	}
	r.Pattern = in.Pattern
	r.Host = metricHost(r)
}

// ambiguousPath reports whether a request's path has what servers read
// in different ways: an escaped slash or backslash, a backslash, or a
// NUL. Go's ServeMux sees "%2F" inside a segment; a server that unescapes
// before routing sees a separator, and "..%2Fadmin" a step up.
func ambiguousPath(u *url.URL) bool {
	if strings.ContainsAny(u.Path, "\\\x00") {
		return true // "\\" and NUL arrive escaped or bare; both are refused
	}
	// RawPath is set only when the client's escaping differs from the
	// default one, as it does for an escaped slash.
	return strings.Contains(u.RawPath, "%2F") || strings.Contains(u.RawPath, "%2f")
}

// metricHost is the host the server metrics of r are recorded under,
// bounded by the configuration: the host of the route's pattern, or else
// the local address the request came in on; the port is the local one.
func metricHost(r *http.Request) string {
	var host, port string
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		host, port, _ = net.SplitHostPort(local.String())
	}
	if p := r.Pattern; p != "" {
		if i := strings.IndexByte(p, '/'); i > 0 {
			if h := p[strings.LastIndexAny(p[:i], " \t")+1 : i]; h != "" {
				host = h
			}
		}
	}
	if host == "" || port == "" {
		return host
	}
	return net.JoinHostPort(host, port)
}

func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// ServeHTTP serves a request that matched the route: its pattern and the
// client's address on the span, the body limit, the timeout, then the
// middleware and the proxy or handler.
func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r.Context())
	if st != nil {
		st.route = rt
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			// otelhttp names the span by the pattern but leaves http.route
			// off it, and takes client.address from X-Forwarded-For as
			// sent; the address derived through the trusted proxies is
			// the one to believe.
			span.SetAttributes(rt.routeAttr)
			if st.clientIP.IsValid() {
				span.SetAttributes(semconv.ClientAddress(st.clientIP.String()))
			}
		}
	}
	if n := rt.spec.MaxBodyBytes; n > 0 && r.ContentLength > n {
		writeError(w, http.StatusRequestEntityTooLarge)
		return
	}
	var deadline context.Context
	if d := rt.spec.Timeout; d > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		r = r.WithContext(ctx)
		deadline = ctx
	}
	if r.Body != nil && r.Body != http.NoBody {
		if deadline != nil {
			// A client that stops sending its body would hold the
			// request past its time: HTTP/1's transport returns only
			// once its read of the body does, and a handler's read
			// waits as long. The connection's read deadline ends that
			// read (answered 408); the server clears it once the body
			// is read, and for the next request.
			dl, _ := deadline.Deadline()
			_ = http.NewResponseController(w).SetReadDeadline(dl)
		}
		n := rt.spec.MaxBodyBytes
		r.Body = &clientBody{rc: r.Body, left: n, limit: n, st: st, deadline: deadline}
	}
	rt.chain.ServeHTTP(w, r)
}

// dispatch is the mux handler of one pattern: the first of its routes
// whose matchers all hold.
type dispatch []*route

func (d dispatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var query url.Values
	for _, rt := range d {
		if rt.matches(r, &query) {
			rt.ServeHTTP(w, r)
			return
		}
	}
	http.NotFound(w, r)
}

func (rt *route) matches(r *http.Request, query *url.Values) bool {
	for i := range rt.spec.headers {
		m := &rt.spec.headers[i]
		if !m.match(r.Header[m.name]) {
			return false
		}
	}
	if len(rt.spec.query) > 0 && *query == nil {
		*query, _ = url.ParseQuery(r.URL.RawQuery)
	}
	for i := range rt.spec.query {
		m := &rt.spec.query[i]
		if !m.match((*query)[m.name]) {
			return false
		}
	}
	return true
}

// build validates cfg and builds its table, handing on what prev knew of
// the targets that stay.
func (g *Gateway) build(cfg *config, prev *table) (*table, error) {
	errs := append([]error(nil), cfg.nilOpts...)
	trusted, perrs := parseProxies(cfg.trusted)
	errs = append(errs, perrs...)
	if cfg.requestID != "" && !validHeaderName(cfg.requestID) {
		errs = append(errs, fmt.Errorf("gateway: request_id_header: %q is not a header name", cfg.requestID))
	}
	var dropped []string
	for i, name := range cfg.dropped {
		if !validHeaderName(name) {
			errs = append(errs, fmt.Errorf("gateway: dropped_headers[%d]: %q is not a header name", i, oneLine(name)))
			continue
		}
		dropped = append(dropped, http.CanonicalHeaderKey(name))
		if strings.IndexByte(name, '_') >= 0 {
			// Its spelling with hyphens, which nginx, CGI and WSGI
			// upstreams read as the same header.
			dropped = append(dropped, hyphenated(name))
		}
	}
	specs := map[string]*upstreamSpec{}
	var order []*upstreamSpec
	for i, u := range cfg.upstreams {
		s, uerrs := validateUpstream(i, u)
		errs = append(errs, uerrs...)
		if u.Name == "" {
			continue
		}
		if _, dup := specs[u.Name]; dup {
			errs = append(errs, fmt.Errorf("gateway: upstreams[%d]: name: %q is already an upstream", i, u.Name))
			continue
		}
		if u.H2C && g.h2c == nil {
			errs = append(errs, fmt.Errorf("gateway: upstream %q: h2c: the gateway's transport is not an *http.Transport; set the upstream's transport", u.Name))
		}
		specs[u.Name] = s
		order = append(order, s)
	}
	var routes []*routeSpec
	for i, r := range cfg.routes {
		s, rerrs := validateRoute(i, r, specs)
		errs = append(errs, rerrs...)
		if len(rerrs) == 0 {
			routes = append(routes, s)
		}
	}
	// Conflicts among the valid routes, on a mux thrown away, before
	// anything is built.
	_, merrs := mount(routes, func([]*routeSpec) http.Handler { return http.NotFoundHandler() })
	errs = append(errs, merrs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	if strings.IndexByte(cfg.requestID, '_') >= 0 {
		// Its spelling with hyphens, which nginx, CGI and WSGI upstreams
		// read as the same header, must not pass beside it.
		dropped = append(dropped, hyphenated(cfg.requestID))
	}
	t := &table{owner: g, trusted: trusted, requestID: http.CanonicalHeaderKey(cfg.requestID), dropped: dropped,
		underscores: cfg.underscores, strictPaths: cfg.strictPaths, stats: map[string]*routeStats{}}
	if t.underscores {
		t.protected = map[string]struct{}{}
		for _, names := range [][]string{spoofable[:], dropped, {t.requestID}} {
			for _, name := range names {
				if name != "" {
					t.protected[hyphenated(name)] = struct{}{}
				}
			}
		}
	}
	// A header the gateway removes on arrival never reaches a matcher.
	for _, s := range routes {
		for j, m := range s.headers {
			if t.drops(m.name) {
				errs = append(errs, fmt.Errorf("gateway: %s: headers[%d].name: %q is removed on arrival "+
					"(WithDroppedHeaders, or an underscore without WithUnderscoreHeaders): the route could never match", s.label(), j, m.name))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	prevUp := map[string]*upstream{}
	if prev != nil {
		for _, u := range prev.upstreams {
			prevUp[u.name] = u
		}
	}
	byName := map[string]*upstream{}
	t.direct = map[string]*route{}
	for _, s := range order {
		u := g.newUpstream(s, prevUp[s.Name])
		t.upstreams = append(t.upstreams, u)
		byName[s.Name] = u
		rt := &route{spec: &routeSpec{}, up: u}
		rt.proxy = rt.newProxy(&g.pool, g.errorLog)
		t.direct[s.Name] = rt
	}
	t.byName = byName
	built := map[*routeSpec]*route{}
	for _, s := range routes {
		hr := HTTPRoute(s.Pattern)
		rt := &route{spec: s, routeAttr: semconv.HTTPRoute(hr), pattern: s.Pattern}
		if rt.stats = t.stats[hr]; rt.stats == nil {
			if prev != nil {
				rt.stats = prev.stats[hr]
			}
			if rt.stats == nil {
				rt.stats = newRouteStats(hr)
			}
			t.stats[hr] = rt.stats
		}
		var core http.Handler
		if s.Upstream != "" {
			rt.up = byName[s.Upstream]
			rt.proxy = rt.newProxy(&g.pool, g.errorLog)
			core = http.HandlerFunc(rt.proxyServe)
		} else {
			core = s.Handler
		}
		for i := len(s.Middleware) - 1; i >= 0; i-- {
			var err error
			if core, err = wrap(s.Middleware[i], core); err != nil {
				// Nothing has started yet: the table is dropped.
				return nil, fmt.Errorf("gateway: route %q: middleware[%d]: %w", s.Pattern, i, err)
			}
		}
		rt.chain = core
		t.routes = append(t.routes, rt)
		built[s] = rt
	}
	t.patterns = make(map[string]bool, len(routes))
	for _, s := range routes {
		t.patterns[muxPattern(s.Pattern)] = true
	}
	t.mux, _ = mount(routes, func(group []*routeSpec) http.Handler {
		d := make(dispatch, len(group))
		for i, s := range group {
			d[i] = built[s]
		}
		return d
	})
	// Only now that the table cannot be refused does it touch what it
	// shares with the live one: the target states and a kept breaker
	// group. A refused Update must leave an ejected target ejected, and
	// no breaker (with its metric series) for a target it only named.
	for _, u := range t.upstreams {
		u.attach()
	}
	return t, nil
}

// wrap applies a route's middleware m to next. A middleware that refuses
// to be built panics, as ratelimit's does for a Limiter not made by its
// New, or returns nil; either is an error of the configuration, which
// New and Update return rather than panic on.
func wrap(m Middleware, next http.Handler) (h http.Handler, err error) {
	defer func() {
		if v := recover(); v != nil {
			h, err = nil, fmt.Errorf("panicked: %v", v)
		}
	}()
	if h = m(next); h == nil {
		return nil, errors.New("returned a nil handler")
	}
	return h, nil
}

// attach gives each target its breaker from the upstream's group, makes
// u the upstream whose outlier policy requests of every table of its name
// record under, and puts the targets that nothing checks back in service.
func (u *upstream) attach() {
	if u.group != nil {
		for _, t := range u.targets {
			t.breaker = u.group.Get(u.breakerKey(t))
		}
	}
	u.stats.ejectMu.Lock()
	u.stats.live.Store(u)
	u.stats.ejectMu.Unlock()
	u.admitUnchecked()
}

// breakerKey is the key of target t's breaker in the upstream's group,
// and its circuitbreaker.name.
func (u *upstream) breakerKey(t *target) string { return u.name + "/" + t.host + t.path }

// newUpstream builds the runtime of an upstream, taking over prev's
// target states, and its breakers when the Breaker is the same.
func (g *Gateway) newUpstream(s *upstreamSpec, prev *upstream) *upstream {
	u := &upstream{spec: s, name: s.Name, clock: g.clock, counted: !g.uncounted}
	base := g.base
	switch {
	case s.Transport != nil:
		base = s.Transport
	case s.H2C:
		base = g.h2c
	}
	u.check = base
	u.transport = base
	if !g.untraced {
		u.transport = otelhttp.NewTransport(liveTrailers{base}, g.client...)
	}
	if prev != nil {
		u.stats = prev.stats
	} else {
		u.stats = &upstreamStats{opts: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(AttrUpstream.String(s.Name)))}}
	}
	if b := s.Breaker; b != nil {
		if prev != nil && prev.spec.Breaker == b && prev.group != nil {
			u.group = prev.group
		} else {
			// Unbounded: the group holds a breaker per target of the
			// table, and Update removes those of the targets it drops.
			// A bound would evict live breakers once an Update that
			// keeps the group adds targets past it.
			opts := append(toGroupOptions(b.Options),
				circuitbreaker.WithMaxBreakers(math.MaxInt),
				circuitbreaker.WithMeterProvider(g.mp))
			u.group = circuitbreaker.NewGroup(opts...)
		}
		u.failure = b.Failure
		if u.failure == nil {
			u.failure = serverFailure
		}
		u.grpcFail = b.GRPCFailure
		if u.grpcFail == nil {
			u.grpcFail = grpcBreakerFailure
		}
	}
	prevStates := map[string]*targetState{}
	if prev != nil {
		for _, t := range prev.targets {
			prevStates[t.stateKey] = t.state
		}
	}
	for _, ts := range s.targets {
		key := ts.url.String()
		host, port := hostPort(ts.url.Scheme, ts.url.Host)
		st := prevStates[key]
		if st == nil {
			st = newTargetState(s.Name, host, port)
		}
		t := &target{
			scheme:   ts.url.Scheme,
			host:     ts.url.Host,
			path:     ts.url.Path,
			rawPath:  ts.url.EscapedPath(),
			weight:   int64(ts.weight),
			state:    st,
			stateKey: key,
		}
		if t.path == "" {
			t.rawPath = ""
		}
		if s.HealthCheck != nil {
			t.healthURL = healthURL(ts.url, s.health.Path)
		}
		u.targets = append(u.targets, t)
	}
	u.wrrCur = make([]int64, len(u.targets))
	if r := s.Retry; r != nil && s.retry.Attempts > 1 {
		budget := s.retry.Budget
		if budget == nil {
			if prev != nil && prev.spec.Retry == r && prev.budget != nil {
				budget = prev.budget
			} else {
				budget = retry.NewBudget()
			}
			u.budget = budget
		}
		u.retrier = retry.New(
			retry.WithName(s.Name),
			retry.WithMaxAttempts(s.retry.Attempts),
			retry.WithBackoff(s.retry.Backoff),
			retry.WithBudget(budget),
			retry.WithTracerProvider(g.tp),
			retry.WithMeterProvider(g.mp),
		)
	}
	return u
}

// healthURL is the URL a target's health checks go to: the target's
// path, then the check's, each spelled as written (an escaped slash
// stays one, as it does in a proxied request's path).
func healthURL(base *url.URL, path string) string {
	p, _ := url.Parse(path)
	u := *base
	u.Path = base.Path + p.Path
	u.RawPath = base.EscapedPath() + p.EscapedPath()
	u.RawQuery = p.RawQuery
	return u.String()
}

// start starts the table's health checks.
func (t *table) start() {
	ctx, cancel := context.WithCancel(context.Background())
	t.stop = cancel
	for _, u := range t.upstreams {
		if u.spec.HealthCheck != nil {
			t.wg.Go(func() { u.runHealth(ctx) })
		}
	}
}

// halt stops the table's health checks and waits for them.
func (t *table) halt() {
	if t.stop != nil {
		t.stop()
	}
	t.wg.Wait()
}

// runHealth checks the upstream's targets every interval until ctx ends.
func (u *upstream) runHealth(ctx context.Context) {
	hc := &u.spec.health
	client := &http.Client{
		Transport:     u.check,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	round := func() {
		var wg sync.WaitGroup
		for _, t := range u.targets {
			wg.Go(func() {
				ok := probe(ctx, client, t.healthURL, hc)
				if ctx.Err() == nil {
					u.recordCheck(t, ok)
				}
			})
		}
		wg.Wait()
	}
	round()
	tick := time.NewTicker(hc.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			round()
		}
	}
}

func probe(ctx context.Context, client *http.Client, target string, hc *HealthCheck) bool {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "otelpatterns-gateway-health-check/"+telemetry.Version)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	// A body that stalls past the timeout fails the check, as a slow
	// answer does: a target that sends its headers and hangs is not well.
	_, err = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
	return (err == nil || err == io.EOF) && hc.Status(resp.StatusCode)
}
