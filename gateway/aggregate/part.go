package aggregate

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Part is one upstream call of an aggregation, and the field of the
// merged document that holds its answer.
//
// A part's request is made by Path, a template, or by Request, a
// function; exactly one of them is set. A part starts as soon as every
// part it depends on (those it names in After or in Path) has answered,
// concurrently with every other part that can.
type Part struct {
	// Name is the part's field in the merged document and its name in
	// the document's metadata, errors and telemetry. It must be unique,
	// not empty, and hold no "." (which separates fields in templates);
	// it must not start with "_", which the metadata fields take.
	Name string

	// Upstream names the gateway upstream the part calls, with that
	// upstream's balancing, breakers and retries.
	Upstream string

	// Method is the request's method. The default is GET. A HEAD
	// part's answer has no body: its value is null, an existence check
	// (a 404 fails it as any other part's). Another method than GET,
	// HEAD or OPTIONS needs [WithUnsafeMethods]; such a part sends the
	// incoming request's body.
	Method string

	// Path is the request's path and query, a template whose {name}
	// is the route's path value name (from its pattern, as
	// [http.Request.PathValue] has it) and whose {part.field} is the
	// value of field in an earlier part's answer (a JSON object; fields
	// of nested objects as {part.a.b}, elements of arrays by index). It
	// must start with "/", and parse as a URL's path and query once its
	// {references} are filled in. Values are escaped for where they
	// stand (a path segment or a query value); a field that is missing,
	// null, an object or an array fails the part with reason "request",
	// and so does a value in the path that is empty, "." or "..", which
	// would name another resource than the template's: to the upstream,
	// /orders/{id}/lines with id ".." is /lines (escaped, %2E%2E is the
	// same URI), and with an empty id /orders//lines.
	//
	//	Path: "/customers/{order.customer_id}?lang={lang}"
	Path string

	// Request makes the part's request, for what a template cannot say.
	// It is given the incoming request (its body, if any, readable
	// afresh) and the answers of the parts it depends on (and of those
	// they depend on), and returns the request to send. Its URL's
	// scheme and host are replaced by the upstream's
	// ("http://{Upstream}"), so it may be made with a path alone; its
	// context is replaced by the part's. in is its own copy, whose
	// Header and URL it may change or send on; it must not keep in, nor
	// change earlier. An error fails the part with reason "request",
	// except [ErrSkip], which leaves the part out. The parts it reads
	// must be named in After. Its request's method is held to Method's
	// rule (a write needs [WithUnsafeMethods]), and the answer to a
	// write, or to a request with a body, is never cached.
	Request func(in *http.Request, earlier Results) (*http.Request, error)

	// Header names headers of the incoming request copied to the part's
	// request (Authorization, Accept-Language); no other header is, but
	// the trace context. They become part of the cache keys.
	Header []string

	// After names parts that must have answered before this one runs,
	// besides those named in Path. They must come before it in the list.
	After []string

	// Optional makes a failure of the part leave it out of the document
	// (listed in its "_partial" field) instead of failing the response.
	// A required part cannot depend on an optional one.
	Optional bool

	// Timeout bounds the part's call, its retries included, within the
	// request's own deadline. The default, 0, sets no bound of its own.
	Timeout time.Duration

	// MaxBytes bounds the part's response body; a longer one fails the
	// part with reason "too_large". The default is 1 MiB.
	MaxBytes int64

	// TTL, when positive, keeps the part's answers in the handler's
	// cache ([WithCache]) and serves them for TTL without calling the
	// upstream. An answer older than TTL that is still in the cache is
	// served, marked stale, when the upstream fails. The key is the
	// request sent (method, URL, headers) and the caller's subject
	// ([gateway.PrincipalFrom]) unless Public is set.
	TTL time.Duration

	// Public says that the part's answer is the same for every caller
	// who sends the same request, so cached answers are shared across
	// users. Leave it false for anything a user's identity can change.
	Public bool
}

// DefaultMaxBytes is the bound of a part's response body when its
// MaxBytes is 0.
const DefaultMaxBytes = 1 << 20

// ErrSkip, returned by a [Part]'s Request, leaves the part out of the
// document without counting it a failure: a conditional part. Parts that
// depend on it are left out too.
var ErrSkip = errors.New("aggregate: part skipped")

// Results holds the answers of the parts a part depends on, by name
// (and, for a [Shape], of every part that answered), decoded from JSON
// (objects as map[string]any, numbers as json.Number). It must not be
// modified.
type Results map[string]any

// Lookup returns the value at path, a part's name followed by fields
// separated by dots ("order.customer_id", "order.lines.0.sku": an array
// element by its index).
func (r Results) Lookup(path string) (any, bool) {
	name, rest, _ := strings.Cut(path, ".")
	v, ok := r[name]
	if !ok {
		return nil, false
	}
	if rest == "" {
		return v, true
	}
	return lookup(v, rest)
}

func lookup(v any, path string) (any, bool) {
	for field := range strings.SplitSeq(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[field]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(field)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// part is a validated [Part].
type part struct {
	Part
	index     int
	stage     int   // its depth: 0 for a part that depends on none
	deps      []int // indexes of the parts it depends on
	ancestors []int // and of those they depend on, and so on
	tmpl      []segment
	header    []string // canonical
	maxBytes  int64
	unsafe    bool
	raw       bool // no part or Shape reads its answer: kept as it came
}

// segment is a literal or a reference of a Path template.
type segment struct {
	lit   string
	ref   string // a path value name, or a part's field path
	field bool   // ref is "part.field"
	query bool   // the segment is in the query
}

// safeMethod reports whether a method only reads (RFC 9110, 9.2.1), so
// that sending it to several upstreams at once is harmless.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// validateParts checks the parts, reporting every problem at once, and
// groups them by stage (depth).
func validateParts(ps []Part, unsafeOK, cacheSet bool) ([]*part, [][]*part, []error) {
	var errs []error
	if len(ps) == 0 {
		errs = append(errs, errors.New("aggregate: parts: must not be empty"))
	}
	out := make([]*part, len(ps))
	byName := map[string]int{}
	for i, p := range ps {
		label := fmt.Sprintf("parts[%d]", i)
		if p.Name != "" {
			label += fmt.Sprintf(" %q", p.Name)
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("aggregate: %s: %s", label, fmt.Sprintf(format, args...)))
		}
		s := &part{Part: p, index: i, maxBytes: p.MaxBytes}
		out[i] = s
		switch {
		case p.Name == "":
			bad("name: must not be empty")
		case strings.ContainsAny(p.Name, ".{}"):
			bad("name: must not contain '.', '{' or '}'")
		case strings.HasPrefix(p.Name, "_"):
			bad("name: must not start with _ (the document's metadata fields do)")
		default:
			if j, dup := byName[p.Name]; dup {
				bad("name: also the name of parts[%d]", j)
			} else {
				byName[p.Name] = i
			}
		}
		if p.Upstream == "" {
			bad("upstream: must not be empty")
		}
		if s.Method == "" {
			s.Method = http.MethodGet
		}
		if !validToken(s.Method) {
			bad("method: %q is not a method", p.Method)
		} else if !safeMethod(s.Method) {
			s.unsafe = true
			if !unsafeOK {
				bad("method: %s is unsafe in a fan-out; opt in with WithUnsafeMethods", s.Method)
			}
		}
		switch {
		case p.Path == "" && p.Request == nil:
			bad("path: set a path or a request function")
		case p.Path != "" && p.Request != nil:
			bad("request: cannot be set with a path")
		case p.Path != "":
			t, err := compilePath(p.Path)
			if err != nil {
				bad("path: %v", err)
			}
			s.tmpl = t
		}
		for j, h := range p.Header {
			if !validToken(h) {
				bad("header[%d]: %q is not a header name", j, h)
			}
			s.header = append(s.header, http.CanonicalHeaderKey(h))
		}
		if p.Timeout < 0 {
			bad("timeout: must not be negative (got %v)", p.Timeout)
		}
		switch {
		case p.MaxBytes < 0:
			bad("max_bytes: must not be negative (got %d)", p.MaxBytes)
		case p.MaxBytes == 0:
			s.maxBytes = DefaultMaxBytes
		}
		switch {
		case p.TTL < 0:
			bad("ttl: must not be negative (got %v)", p.TTL)
		case p.TTL > 0 && !cacheSet:
			bad("ttl: needs a cache (WithCache)")
		case p.TTL > 0 && s.unsafe:
			bad("ttl: %s answers are not cached", s.Method)
		}
		// Dependencies: After, and the parts the template names. They
		// must come earlier, which also rules out cycles.
		deps := slices.Clone(p.After)
		for _, seg := range s.tmpl {
			if seg.field {
				name, _, _ := strings.Cut(seg.ref, ".")
				deps = append(deps, name)
			}
		}
		for _, d := range deps {
			j, ok := byName[d]
			if !ok || j >= i {
				bad("after: %q is not an earlier part", d)
				continue
			}
			if !slices.Contains(s.deps, j) {
				s.deps = append(s.deps, j)
				s.ancestors = append(s.ancestors, j)
				s.ancestors = append(s.ancestors, out[j].ancestors...)
			}
			if !p.Optional && ps[j].Optional {
				bad("after: a required part cannot depend on optional part %q", d)
			}
			s.stage = max(s.stage, out[j].stage+1)
		}
	}
	var stages [][]*part
	for _, s := range out {
		slices.Sort(s.ancestors)
		s.ancestors = slices.Compact(s.ancestors)
		for len(stages) <= s.stage {
			stages = append(stages, nil)
		}
		stages[s.stage] = append(stages[s.stage], s)
	}
	return out, stages, errs
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// compilePath parses a Path template.
func compilePath(tmpl string) ([]segment, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return nil, fmt.Errorf("%q must start with /", tmpl)
	}
	var (
		out   []segment
		query bool
	)
	rest := tmpl
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		lit := rest
		if open >= 0 {
			lit = rest[:open]
		}
		if strings.IndexByte(lit, '}') >= 0 {
			return nil, fmt.Errorf("%q: unmatched }", tmpl)
		}
		if lit != "" {
			out = append(out, segment{lit: lit, query: query})
			query = query || strings.IndexByte(lit, '?') >= 0
		}
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q: unmatched {", tmpl)
		}
		ref := rest[open+1 : open+end]
		if ref == "" || strings.ContainsAny(ref, "{/?&= ") {
			return nil, fmt.Errorf("%q: bad reference {%s}", tmpl, ref)
		}
		name, field, dotted := strings.Cut(ref, ".")
		if dotted && (name == "" || field == "" || strings.Contains(field, "..") || strings.HasSuffix(field, ".")) {
			return nil, fmt.Errorf("%q: bad reference {%s}", tmpl, ref)
		}
		out = append(out, segment{ref: ref, field: dotted, query: query})
		rest = rest[open+end+1:]
	}
	// What the literals say must stand as a URL (no bad escape such as
	// "%zz"), or every request would fail at run time.
	var b strings.Builder
	for _, seg := range out {
		b.WriteString(seg.lit)
		if seg.ref != "" {
			b.WriteString("x")
		}
	}
	if _, err := url.Parse("http://upstream" + b.String()); err != nil {
		return nil, fmt.Errorf("%q is not a URL path: %v", tmpl, errors.Unwrap(err))
	}
	if strings.Contains(b.String(), "#") {
		// A fragment is never sent: the part would call another
		// resource than its template says.
		return nil, fmt.Errorf("%q is not a URL path: it has a fragment", tmpl)
	}
	return out, nil
}

// expand makes the request URI of a template.
func expand(tmpl []segment, in *http.Request, earlier Results) (string, error) {
	var b strings.Builder
	for _, s := range tmpl {
		if s.ref == "" {
			b.WriteString(s.lit)
			continue
		}
		var v string
		if s.field {
			x, ok := earlier.Lookup(s.ref)
			if !ok {
				return "", fmt.Errorf("aggregate: {%s}: no such field", s.ref)
			}
			if v, ok = scalar(x); !ok {
				return "", fmt.Errorf("aggregate: {%s}: not a string, number or boolean", s.ref)
			}
			if v == "" && !s.query {
				// /customers/{order.customer_id} would become /customers/,
				// another resource: often the list of every customer.
				return "", fmt.Errorf("aggregate: {%s}: empty in the path", s.ref)
			}
		} else if v = in.PathValue(s.ref); v == "" {
			return "", fmt.Errorf("aggregate: {%s}: the route has no such path value", s.ref)
		}
		if s.query {
			b.WriteString(url.QueryEscape(v))
			continue
		}
		if v == "." || v == ".." {
			// A dot segment, which the upstream (or a proxy before it)
			// resolves, escaped or not (RFC 3986, 6.2.2.2): another
			// resource than the template's.
			return "", fmt.Errorf("aggregate: {%s}: %q in the path", s.ref, v)
		}
		b.WriteString(url.PathEscape(v))
	}
	return b.String(), nil
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case fmt.Stringer: // json.Number
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}
