package gateway

import (
	"cmp"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Route sends the requests that match it to an upstream or a handler.
//
// A request is matched first by Pattern, with [http.ServeMux]'s syntax and
// precedence: the most specific pattern wins, and a method, host and
// wildcards ({id}, {rest...}) may appear ("GET api.example.com/orders/{id}",
// "/static/"). Several routes may share a pattern with different
// matchers: the request goes to the first route of that pattern whose
// Headers and Query all match, routes with more matchers tried first, then
// in the order given. A request that matches a pattern but none of its
// routes' matchers gets 404: it does not fall back to a less specific
// pattern.
//
// Each route is served inside the gateway's own handling: the client's
// address ([ClientIP]), the request ID, the route's pattern ([RouteFrom])
// and the server span are set, and the body limit and timeout applied,
// before Middleware runs; then the request is proxied to Upstream or given
// to Handler.
type Route struct {
	// Pattern is an [http.ServeMux] pattern. Patterns that ServeMux
	// cannot tell apart (neither more specific than the other, as "/a/{x}"
	// and "/{y}/b") are an error, and so is a host with a port: hosts are
	// matched without it, case-insensitively.
	Pattern string

	// Headers and Query are matchers that the request's headers and query
	// parameters must all satisfy.
	Headers []Match
	Query   []Match

	// Upstream names the upstream ([WithUpstreams]) requests are proxied
	// to. Exactly one of Upstream and Handler must be set.
	Upstream string

	// Handler serves the requests itself, for routes that aggregate
	// several upstreams or answer locally.
	Handler http.Handler

	// StripPrefix is removed from the front of the request's path before
	// it is sent upstream, when the path has it as a whole number of
	// segments: "/api" turns "/api/orders" into "/orders" but leaves
	// "/apix" alone. It must start with "/".
	StripPrefix string

	// Rewrite replaces the request's path with a template that may use
	// the pattern's wildcards: with the pattern "/v1/orders/{id}",
	// "/orders/{id}/v1" sends "/v1/orders/42" as "/orders/42/v1". A
	// {rest...} wildcard may be written {rest} or {rest...}. Wildcard
	// values are escaped again as the request had them, so an encoded
	// slash stays encoded. The query is kept. It must start with "/" and
	// cannot be set with StripPrefix.
	Rewrite string

	// Timeout bounds the whole exchange with the upstream or handler,
	// retries and the response body included: the request's context
	// ends then, and an upstream that has not answered by then gets the
	// client a 504. A client still sending its body then gets a 408:
	// the connection's read deadline is set to it while the body is
	// read. Leave it 0 (no bound) on routes that stream (server-sent
	// events, WebSockets).
	Timeout time.Duration

	// MaxBodyBytes bounds the request body; a longer one gets 413. 0
	// means no bound. It must not be negative.
	MaxBodyBytes int64

	// Middleware wraps the route's proxy or handler, the first outermost.
	// New and Update call each once per route table; one that returns a
	// nil handler is a configuration error.
	Middleware []Middleware

	// Fallback, when set, answers instead of the gateway's own error when
	// the upstream is unavailable, times out or fails. Only routes with
	// an Upstream take one.
	Fallback *Fallback
}

// Match is a condition on a request header or query parameter, which
// holds when any of the values under Name equals Value, or matches
// Regexp, or, when both are empty, when there is one.
type Match struct {
	// Name is the header (case-insensitive) or query parameter
	// (case-sensitive) name.
	Name string
	// Value is the value to equal.
	Value string
	// Regexp is a regular expression (RE2 syntax) that the whole value
	// must match. It cannot be set with Value.
	Regexp string
}

// matcher is a compiled [Match].
type matcher struct {
	name, value string
	re          *regexp.Regexp
}

func (m *matcher) match(vals []string) bool {
	for _, v := range vals {
		switch {
		case m.re != nil:
			if m.re.MatchString(v) {
				return true
			}
		case m.value != "":
			if v == m.value {
				return true
			}
		default:
			return true
		}
	}
	return false
}

func (m matcher) key() string {
	if m.re != nil {
		return m.name + "~" + m.re.String()
	}
	return m.name + "=" + m.value
}

// oneLine keeps a configuration error on one line of errors.Join's output
// whatever the configuration holds.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

// compileMatches checks and compiles matchers, naming bad ones as
// "field[j]".
func compileMatches(field string, ms []Match, header bool) ([]matcher, []string) {
	var (
		out  []matcher
		errs []string
	)
	for j, m := range ms {
		c := matcher{name: m.Name, value: m.Value}
		if header {
			c.name = http.CanonicalHeaderKey(m.Name)
		}
		if m.Name == "" {
			errs = append(errs, fmt.Sprintf("%s[%d].name: must not be empty", field, j))
		} else if header && !validHeaderName(m.Name) {
			errs = append(errs, fmt.Sprintf("%s[%d].name: %q is not a header name", field, j, m.Name))
		}
		if m.Regexp != "" {
			if m.Value != "" {
				errs = append(errs, fmt.Sprintf("%s[%d]: value and regexp cannot both be set", field, j))
			}
			re, err := regexp.Compile(`^(?:` + m.Regexp + `)$`)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s[%d].regexp: %v", field, j, err))
			}
			c.re = re
		}
		out = append(out, c)
	}
	return out, errs
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// template is a compiled Rewrite: literal parts and wildcards.
type template struct {
	parts []tmplPart
}

type tmplPart struct {
	lit, rawLit string // literal text, and escaped
	wild        string // wildcard name, or "" for a literal
	multi       bool   // a {name...} wildcard
	seg         int    // the wildcard's segment in the pattern's path
}

// wildcard describes a wildcard of a pattern.
type wildcard struct {
	multi bool // a {name...} wildcard, the pattern's last segment
	seg   int  // the index of its segment in the path
}

// wildcards returns the wildcards of a valid ServeMux pattern by name.
func wildcards(pattern string) map[string]wildcard {
	out := map[string]wildcard{}
	i := strings.IndexByte(pattern, '/')
	if i < 0 {
		return out
	}
	for n, seg := range strings.Split(pattern[i+1:], "/") {
		if len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' {
			name := seg[1 : len(seg)-1]
			multi := strings.HasSuffix(name, "...")
			name = strings.TrimSuffix(name, "...")
			if name != "$" {
				out[name] = wildcard{multi: multi, seg: n}
			}
		}
	}
	return out
}

// compileTemplate checks a Rewrite template against the pattern's
// wildcards.
func compileTemplate(tmpl string, wild map[string]wildcard) (*template, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return nil, fmt.Errorf("%q must start with /", tmpl)
	}
	t := &template{}
	lit := func(s string) {
		if s != "" {
			t.parts = append(t.parts, tmplPart{lit: s, rawLit: (&url.URL{Path: s}).EscapedPath()})
		}
	}
	rest := tmpl
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		closing := strings.IndexByte(rest, '}')
		if open < 0 {
			if closing >= 0 {
				return nil, fmt.Errorf("%q: unmatched }", tmpl)
			}
			lit(rest)
			break
		}
		if closing >= 0 && closing < open {
			return nil, fmt.Errorf("%q: unmatched }", tmpl)
		}
		lit(rest[:open])
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q: unmatched {", tmpl)
		}
		name := rest[open+1 : open+end]
		name = strings.TrimSuffix(name, "...")
		if strings.ContainsAny(name, "{/") {
			return nil, fmt.Errorf("%q: unmatched {", tmpl)
		}
		w, ok := wild[name]
		if !ok {
			return nil, fmt.Errorf("%q: %q is not a wildcard of the pattern", tmpl, "{"+name+"}")
		}
		t.parts = append(t.parts, tmplPart{wild: name, multi: w.multi, seg: w.seg})
		rest = rest[open+end+1:]
	}
	return t, nil
}

// expand returns the rewritten path, unescaped and escaped.
func (t *template) expand(r *http.Request) (path, raw string) {
	var p, rp strings.Builder
	for _, part := range t.parts {
		if part.wild == "" {
			p.WriteString(part.lit)
			rp.WriteString(part.rawLit)
			continue
		}
		v := r.PathValue(part.wild)
		p.WriteString(v)
		if !part.multi {
			rp.WriteString(segmentEscaped(r.URL, part.seg, v))
			continue
		}
		rp.WriteString(restEscaped(r.URL, part.seg, v))
	}
	return p.String(), rp.String()
}

// segmentEscaped returns the value v of a {name} wildcard, segment seg of
// u's path, as the request escaped it: "1,2" and "42;v=2" stay as they
// are, where url.PathEscape would escape the comma and the semicolon.
func segmentEscaped(u *url.URL, seg int, v string) string {
	raw := u.EscapedPath()
	i := 0
	for range seg + 1 {
		j := strings.IndexByte(raw[i:], '/')
		if j < 0 {
			return escapeSegment(v)
		}
		i += j + 1
	}
	s := raw[i:]
	if j := strings.IndexByte(s, '/'); j >= 0 {
		s = s[:j]
	}
	if s != "." && s != ".." {
		if un, err := url.PathUnescape(s); err == nil && un == v {
			return s
		}
	}
	return escapeSegment(v)
}

// restEscaped returns the value v of a {name...} wildcard starting at
// segment seg of u's path as the request escaped it, so that an encoded
// slash in it stays encoded; PathValue has unescaped it whole.
func restEscaped(u *url.URL, seg int, v string) string {
	raw := u.EscapedPath()
	i := 0
	for n := 0; n <= seg; n++ {
		j := strings.IndexByte(raw[i:], '/')
		if j < 0 {
			i = -1
			break
		}
		i += j + 1
	}
	if i >= 0 {
		if un, err := url.PathUnescape(raw[i:]); err == nil && un == v {
			return raw[i:]
		}
	}
	// The path does not spell v as expected (it was cleaned, say):
	// escape v segment by segment.
	var b strings.Builder
	for k, s := range strings.Split(v, "/") {
		if k > 0 {
			b.WriteByte('/')
		}
		b.WriteString(escapeSegment(s))
	}
	return b.String()
}

// escapeSegment escapes a path segment, dot segments included: a value
// that the client sent escaped ("%2E%2E"), which ServeMux does not clean,
// must not reach the upstream as a literal ".." that it would resolve.
func escapeSegment(s string) string {
	switch s {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(s)
}

// stripPrefix removes prefix from the path, as a whole number of
// segments, in both its forms.
func stripPrefix(u *url.URL, prefix string) {
	if u.RawPath == "" {
		// The path is escaped the default way: cutting it cuts both.
		if rest, ok := cutSegments(u.Path, prefix); ok {
			u.Path = rest
		}
		return
	}
	// The client escaped the path its own way ("%2F" in a segment, an
	// escaped prefix): cut the raw path at the segment boundary where it
	// spells the prefix, and keep the rest as the client escaped it.
	// Dropping the raw path would send "%2E%2E" and "%2F" unescaped.
	raw, ok := cutRawSegments(u.RawPath, prefix)
	if !ok {
		return
	}
	path, err := url.PathUnescape(raw)
	if err != nil {
		return
	}
	u.Path, u.RawPath = path, raw
}

// cutRawSegments cuts an escaped path after the segments that, unescaped,
// spell prefix, as cutSegments does for an unescaped one. A segment
// boundary is a literal slash: an escaped one ("%2F") is inside a segment.
func cutRawSegments(raw, prefix string) (string, bool) {
	head := strings.TrimSuffix(prefix, "/")
	for i := 0; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '/' {
			continue
		}
		un, err := url.PathUnescape(raw[:i])
		if err != nil || len(un) > len(head) {
			return raw, false
		}
		if un != head {
			continue
		}
		if i == len(raw) {
			if head != prefix { // the prefix's trailing slash is missing
				return raw, false
			}
			return "/", true
		}
		return raw[i:], true
	}
	return raw, false
}

func cutSegments(p, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return p, false
	}
	if rest != "" && rest[0] != '/' && !strings.HasSuffix(prefix, "/") {
		return p, false
	}
	if rest == "" || rest[0] != '/' {
		rest = "/" + rest
	}
	return rest, true
}

// routeSpec is a validated route.
type routeSpec struct {
	Route
	index    int
	headers  []matcher
	query    []matcher
	template *template
	fallback *fallback
	key      string // its matchers, for conflicts
}

func (r *routeSpec) label() string { return fmt.Sprintf("routes[%d] %q", r.index, r.Pattern) }

func (r *routeSpec) matchers() int { return len(r.headers) + len(r.query) }

// validateRoute checks a route against the known upstreams.
func validateRoute(i int, r Route, upstreams map[string]*upstreamSpec) (*routeSpec, []error) {
	s := &routeSpec{Route: r, index: i}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("gateway: %s: %s", s.label(), oneLine(fmt.Sprintf(format, args...))))
	}
	if err := checkPattern(r.Pattern); err != nil {
		bad("pattern: %v", err)
	}
	var msgs []string
	s.headers, msgs = compileMatches("headers", r.Headers, true)
	for _, m := range msgs {
		bad("%s", m)
	}
	s.query, msgs = compileMatches("query", r.Query, false)
	for _, m := range msgs {
		bad("%s", m)
	}
	switch {
	case r.Upstream == "" && r.Handler == nil:
		bad("upstream: set an upstream or a handler")
	case r.Upstream != "" && r.Handler != nil:
		bad("handler: cannot be set with an upstream (%q)", r.Upstream)
	case r.Upstream != "" && upstreams[r.Upstream] == nil:
		bad("upstream: %q is not an upstream", r.Upstream)
	}
	if r.StripPrefix != "" {
		if !strings.HasPrefix(r.StripPrefix, "/") {
			bad("strip_prefix: %q must start with /", r.StripPrefix)
		}
		if r.Rewrite != "" {
			bad("strip_prefix: cannot be set with rewrite")
		}
		if r.Handler != nil {
			bad("strip_prefix: only routes with an upstream rewrite paths")
		}
	}
	if r.Rewrite != "" {
		if r.Handler != nil {
			bad("rewrite: only routes with an upstream rewrite paths")
		}
		t, err := compileTemplate(r.Rewrite, wildcards(r.Pattern))
		if err != nil {
			bad("rewrite: %v", err)
		}
		s.template = t
	}
	if r.Timeout < 0 {
		bad("timeout: must not be negative (got %v)", r.Timeout)
	}
	if r.MaxBodyBytes < 0 {
		bad("max_body_bytes: must not be negative (got %d)", r.MaxBodyBytes)
	}
	for j, m := range r.Middleware {
		if m == nil {
			bad("middleware[%d]: must not be nil", j)
		}
	}
	if r.Fallback != nil {
		if r.Handler != nil {
			bad("fallback: only routes with an upstream take one")
		}
		f, ferrs := compileFallback(r.Fallback)
		for _, m := range ferrs {
			bad("fallback%s", m)
		}
		s.fallback = f
	}
	keys := make([]string, 0, s.matchers())
	for _, m := range s.headers {
		keys = append(keys, "h:"+m.key())
	}
	for _, m := range s.query {
		keys = append(keys, "q:"+m.key())
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	s.key = strings.Join(keys, "\x00")
	return s, errs
}

// checkPattern reports whether ServeMux accepts the pattern, turning its
// panic into an error.
func checkPattern(p string) (err error) {
	if p == "" {
		return fmt.Errorf("must not be empty")
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%s", muxMessage(v))
		}
	}()
	http.NewServeMux().Handle(p, http.NotFoundHandler())
	if i := strings.IndexByte(p, '/'); i > 0 {
		host := p[strings.LastIndexAny(p[:i], " \t")+1 : i]
		if _, _, err := net.SplitHostPort(host); err == nil {
			// ServeMux matches the request's host without its port: the
			// route could never match, and its requests would go to a
			// less specific route, past this one's middleware.
			return fmt.Errorf("host %q has a port, which routes do not match on; leave it out", host)
		}
	}
	return nil
}

var registeredAt = regexp.MustCompile(` \(registered at [^)]*\)`)

// muxMessage is a ServeMux panic's message without the registration
// locations, which would point into this package.
func muxMessage(v any) string {
	s := registeredAt.ReplaceAllString(fmt.Sprint(v), "")
	return strings.Join(strings.Fields(s), " ")
}

// mount registers the routes on a new ServeMux, one handler per
// pattern, reporting the routes that ServeMux refuses as conflicting with
// an earlier one.
func mount(specs []*routeSpec, handler func([]*routeSpec) http.Handler) (*http.ServeMux, []error) {
	byPattern := map[string][]*routeSpec{}
	var order []string
	for _, s := range specs {
		if _, ok := byPattern[s.Pattern]; !ok {
			order = append(order, s.Pattern)
		}
		byPattern[s.Pattern] = append(byPattern[s.Pattern], s)
	}
	var errs []error
	mux := http.NewServeMux()
	var mounted []string
	for _, p := range order {
		group := byPattern[p]
		slices.SortStableFunc(group, func(a, b *routeSpec) int { return cmp.Compare(b.matchers(), a.matchers()) })
		ok := true
		for i, a := range group {
			for _, b := range group[:i] {
				if a.key == b.key {
					errs = append(errs, fmt.Errorf("gateway: %s conflicts with %s: same pattern and same matchers", a.label(), b.label()))
					ok = false
				}
			}
		}
		if !ok {
			continue
		}
		if err := register(mux, p, handler(group)); err != nil {
			other := "an earlier route"
			for _, q := range mounted {
				if register(muxWith(q), p, http.NotFoundHandler()) != nil {
					other = byPattern[q][0].label()
					break
				}
			}
			msg := err.Error()
			if strings.HasPrefix(msg, "pattern ") { // it names both patterns again
				if _, rest, ok := strings.Cut(msg, ": "); ok {
					msg = rest
				}
			}
			errs = append(errs, fmt.Errorf("gateway: %s conflicts with %s: %s", group[0].label(), other, msg))
			continue
		}
		mounted = append(mounted, p)
	}
	return mux, errs
}

func muxWith(pattern string) *http.ServeMux {
	m := http.NewServeMux()
	m.Handle(muxPattern(pattern), http.NotFoundHandler())
	return m
}

// muxPattern is a pattern as the mux holds it: its host as canonHost
// makes request hosts, lower case without a trailing dot.
func muxPattern(p string) string {
	i := strings.IndexByte(p, '/')
	if i < 0 {
		return p
	}
	j := strings.LastIndexAny(p[:i], " \t")
	host := p[j+1 : i]
	if h := canonHost(host); h != host {
		return p[:j+1] + h + p[i:]
	}
	return p
}

// canonHost returns a Host header's value as routes match it: host
// names are case-insensitive (RFC 9110, 4.2.3) and a trailing dot names
// the same host, but ServeMux compares hosts byte for byte, so that
// "API.example.com" would miss the route of "api.example.com/admin/"
// (and its authentication) for a less specific one. It allocates only
// when it changes something.
func canonHost(h string) string {
	name, port := h, ""
	if !strings.HasPrefix(h, "[") {
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			name, port = h[:i], h[i:]
		}
	}
	trimmed := strings.TrimSuffix(name, ".")
	upper := false
	for i := 0; i < len(trimmed); i++ {
		if c := trimmed[i]; c >= 'A' && c <= 'Z' {
			upper = true
			break
		}
	}
	if !upper && len(trimmed) == len(name) {
		return h
	}
	if upper {
		trimmed = strings.ToLower(trimmed)
	}
	return trimmed + port
}

func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%s", muxMessage(v))
		}
	}()
	mux.Handle(muxPattern(pattern), h)
	return nil
}
