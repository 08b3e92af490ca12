package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/otelpatterns/patterns/cache"
)

// FallbackHeader is the response header that marks a fallback response.
// Its value is why the upstream's answer was replaced: "unavailable" (no
// target could take the request: all out of service, ejected or behind
// an open breaker), "timeout" (the route's or an attempt's time ran out),
// or "failure" (the upstream could not be reached or broke off).
const FallbackHeader = "Gateway-Fallback"

// The reasons a fallback is served, the values of [FallbackHeader] and of
// the gateway.fallback.reason attribute.
const (
	reasonUnavailable = iota
	reasonTimeout
	reasonFailure
	numReasons
)

var reasonNames = [numReasons]string{"unavailable", "timeout", "failure"}

// The sources of a fallback response, the values of the
// gateway.fallback.source attribute.
const (
	sourceCache = iota
	sourceHandler
	sourceStatic
	numSources
)

var sourceNames = [numSources]string{"cache", "handler", "static"}

// Fallback is what a route answers instead of the gateway's own error
// (503, 504 or 502) when its upstream is unavailable, times out or fails:
// graceful degradation. It is not used when the upstream answers, even
// with an error status, nor for errors of the client's (413, a request
// cancelled).
//
// The fallback is, in order: the stale response in Cache, if there is
// one for the request; else Handler, if set; else the static response
// (Status, Header, Body), if one is set. Every fallback response carries
// [FallbackHeader] and is counted in gateway.fallbacks. When none
// applies, the gateway's own error goes out.
//
// A request that is not safe to repeat (a POST or PATCH without an
// Idempotency-Key, as for retries) gets the fallback only when no
// target could take it ("unavailable"): after a timeout or a failure the
// upstream may have done the work, and a fallback would tell the client
// otherwise.
type Fallback struct {
	// Status, Header and Body are a static response. Status 0 means 200
	// when Body or Header is set.
	Status int
	Header http.Header
	Body   []byte

	// Handler serves the fallback response; it receives the request as
	// the route received it, with the route's timeout lifted (but still
	// ended when the client goes away). It cannot be set with a static
	// response.
	Handler http.Handler

	// Cache, when set, keeps the route's successful responses (200 to a
	// GET, up to MaxCachedBytes) and serves the one for the request as
	// the fallback, with an Age header; how long they are kept is the
	// cache's TTL. A response is not kept when its Cache-Control says
	// no-store or private, or forbids serving it stale (no-cache,
	// must-revalidate, proxy-revalidate, s-maxage: RFC 9111, 5.2.2), nor
	// with Vary: *. One that varies on request headers (Vary) is served
	// only to requests with the same values of them; one kept with a
	// Content-Encoding (gzip, say), only to clients whose
	// Accept-Encoding takes it. Set-Cookie headers are not kept. The
	// gateway does not close the cache.
	Cache *cache.Cache[CachedResponse]

	// CacheKey is the cache key of a request. The default is its host,
	// path and query; with it, the response to a request made on someone's
	// behalf (one with a principal, [PrincipalFrom], an Authorization
	// header or a Cookie) is kept only when it says a shared cache may
	// keep it for anyone (Cache-Control public). A route whose answers
	// differ by user and should still be kept sets a CacheKey that
	// includes the user, or one user's stale response is served to
	// another.
	CacheKey func(*http.Request) string

	// MaxCachedBytes bounds the body of a response kept in Cache; a
	// longer one is not kept. The default is 1 MiB; it must not be
	// negative.
	MaxCachedBytes int64
}

// CachedResponse is a response kept by a [Fallback]'s Cache.
type CachedResponse struct {
	Status int         `json:"status"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
	// Stored is when the response was received.
	Stored time.Time `json:"stored"`
	// Vary holds, for each header the response varies on (its Vary
	// header, but Accept-Encoding), a digest of the request's values of
	// it: a Cookie or an Authorization it varies on is not kept in the
	// clear.
	Vary http.Header `json:"vary,omitempty"`
}

const (
	defaultMaxCachedBytes = 1 << 20
	// cacheTimeout bounds a stale lookup or store, whose context is the
	// request's without its deadline: a fallback for a timeout is looked
	// up after the request's time has run out.
	cacheTimeout = 250 * time.Millisecond
)

// fallback is a compiled [Fallback].
type fallback struct {
	Fallback
	static   bool
	userless bool // the default CacheKey, which has no user in it
}

func compileFallback(f *Fallback) (*fallback, []string) {
	c := &fallback{Fallback: *f}
	var errs []string
	c.static = f.Status != 0 || f.Header != nil || f.Body != nil
	if c.static && c.Status == 0 {
		c.Status = http.StatusOK
	}
	if f.Status != 0 && (f.Status < 200 || f.Status > 999) {
		errs = append(errs, fmt.Sprintf(".status: %d is not a final HTTP status", f.Status))
	}
	if c.static && f.Handler != nil {
		errs = append(errs, ".handler: cannot be set with a static response")
	}
	if !c.static && f.Handler == nil && f.Cache == nil {
		errs = append(errs, ": set a static response, a handler or a cache")
	}
	switch {
	case f.MaxCachedBytes < 0:
		errs = append(errs, fmt.Sprintf(".max_cached_bytes: must not be negative (got %d)", f.MaxCachedBytes))
	case f.MaxCachedBytes == 0:
		c.MaxCachedBytes = defaultMaxCachedBytes
	}
	if c.CacheKey == nil {
		c.CacheKey = defaultCacheKey
		c.userless = true
	}
	return c, errs
}

func defaultCacheKey(r *http.Request) string { return r.Host + r.URL.RequestURI() }

// serve answers with the fallback, reporting which source did, or false
// when none applies.
func (f *fallback) serve(w http.ResponseWriter, r *http.Request, reason int) (int, bool) {
	if f.Cache != nil && r.Method == http.MethodGet {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), cacheTimeout)
		cr, err := f.Cache.Get(ctx, f.CacheKey(r))
		cancel()
		// An entry of a cache shared with other programs (an L2) may not
		// be one this code stored: a status that net/http would panic on
		// is a miss.
		if err == nil && cr.Status >= 200 && cr.Status <= 999 && varies(cr, r) &&
			acceptsEncoding(r.Header, cr.Header.Get("Content-Encoding")) {
			h := w.Header()
			for k, v := range cr.Header {
				h[k] = v
			}
			h.Set(FallbackHeader, reasonNames[reason])
			if !cr.Stored.IsZero() {
				h.Set("Age", strconv.FormatInt(int64(max(time.Since(cr.Stored), 0)/time.Second), 10))
			}
			h.Set("Content-Length", strconv.Itoa(len(cr.Body)))
			w.WriteHeader(cr.Status)
			_, _ = w.Write(cr.Body)
			return sourceCache, true
		}
	}
	switch {
	case f.Handler != nil:
		w.Header().Set(FallbackHeader, reasonNames[reason])
		f.Handler.ServeHTTP(w, r)
		return sourceHandler, true
	case f.static:
		h := w.Header()
		for k, v := range f.Header {
			h[k] = append([]string(nil), v...)
		}
		h.Set(FallbackHeader, reasonNames[reason])
		h.Set("Content-Length", strconv.Itoa(len(f.Body)))
		w.WriteHeader(f.Status)
		_, _ = w.Write(f.Body)
		return sourceStatic, true
	}
	return 0, false
}

// acceptsEncoding reports whether a client that sent h can read a body
// with Content-Encoding enc: the response kept is encoded as the upstream
// chose for the client that asked then, which need not be this one.
func acceptsEncoding(h http.Header, enc string) bool {
	enc = strings.TrimSpace(enc)
	if enc == "" || strings.EqualFold(enc, "identity") {
		return true
	}
	star := false
	for _, v := range h.Values("Accept-Encoding") {
		for item := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.TrimSpace(name)
			q := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(params), " ", "")) // "Q=0" too (RFC 9110, 12.4.2)
			refused := strings.HasPrefix(q, "q=0") && strings.Trim(q[3:], ".0") == ""
			switch {
			case strings.EqualFold(name, enc):
				return !refused
			case name == "*":
				star = !refused
			}
		}
	}
	return star
}

// capture has the response kept in the cache once its body has been read
// whole, if it is one to keep. in is the request as the route received
// it.
func (f *fallback) capture(res *http.Response, in *http.Request) {
	if in.Method != http.MethodGet || res.StatusCode != http.StatusOK ||
		res.ContentLength > f.MaxCachedBytes || noStore(res.Header) || hasDirective(in.Header, "no-store") {
		// A request's no-store forbids keeping any part of its answer
		// too (RFC 9111, 5.2.1.5).
		return
	}
	if _, ok := varyNames(res.Header); !ok {
		return // Vary: *, which no later request matches
	}
	if f.userless && authenticated(in) && !shareable(res.Header) {
		// One user's answer, under a key without the user: another user
		// would get it.
		return
	}
	res.Body = &captureBody{ReadCloser: res.Body, f: f, res: res, in: in}
}

// noStore reports whether a response must not be kept: Cache-Control
// no-store or private (RFC 9111, 5.2.2.5 and 5.2.2.7: a shared cache,
// which the gateway's is, must not store it), or a directive that
// forbids serving it stale, which is all the fallback's cache does:
// no-cache, must-revalidate, proxy-revalidate and s-maxage (5.2.2.4,
// 5.2.2.2, 5.2.2.8, 5.2.2.10). A directive with fields (private="x",
// no-cache="x") is taken whole.
func noStore(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(d, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "private", "no-cache", "must-revalidate", "proxy-revalidate", "s-maxage":
				return true
			}
		}
	}
	return false
}

// varyDigest is the digest of a request's values of a header that a
// kept response varies on: the values, each with its length, so that
// none, one empty and two are told apart.
func varyDigest(vals []string) string {
	h := sha256.New()
	var n [8]byte
	for _, v := range vals {
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	binary.BigEndian.PutUint64(n[:], uint64(len(vals)))
	h.Write(n[:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// hasDirective reports whether the Cache-Control of h has the directive
// name.
func hasDirective(h http.Header, name string) bool {
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			n, _, _ := strings.Cut(d, "=")
			if strings.EqualFold(strings.TrimSpace(n), name) {
				return true
			}
		}
	}
	return false
}

// authenticated reports whether a request was made on someone's behalf:
// it has a principal (auth middleware, which may have removed the
// credentials before the proxy), or still carries an Authorization
// header or a Cookie (a session), as shared caches such as Varnish take
// it by default.
func authenticated(r *http.Request) bool {
	if hasPrincipal(r.Context()) {
		return true
	}
	_, auth := r.Header["Authorization"]
	_, cookie := r.Header["Cookie"]
	return auth || cookie
}

// shareable reports whether a response to an authenticated request says
// a shared cache may keep it for anyone: Cache-Control public (RFC 9111,
// 3.5, whose s-maxage and must-revalidate noStore refuses).
func shareable(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(d, "=")
			if strings.EqualFold(strings.TrimSpace(name), "public") {
				return true
			}
		}
	}
	return false
}

// varyNames returns the request headers that a response varies on, by
// its Vary header, canonical, but Accept-Encoding (which acceptsEncoding
// checks against the body's encoding); false for Vary: *.
func varyNames(h http.Header) ([]string, bool) {
	var names []string
	for _, v := range h.Values("Vary") {
		for name := range strings.SplitSeq(v, ",") {
			switch name = strings.TrimSpace(name); {
			case name == "*":
				return nil, false
			case name == "" || strings.EqualFold(name, "Accept-Encoding"):
			default:
				names = append(names, http.CanonicalHeaderKey(name))
			}
		}
	}
	return names, true
}

// varies reports whether the kept response cr may answer r: r has the
// values that the request it answered had of each header it varies on.
func varies(cr CachedResponse, r *http.Request) bool {
	names, ok := varyNames(cr.Header)
	if !ok {
		return false
	}
	for _, name := range names {
		kept, known := cr.Vary[name]
		if !known || len(kept) != 1 || kept[0] != varyDigest(r.Header.Values(name)) {
			return false
		}
	}
	return true
}

// captureBody copies what is read of a response body, up to the bound,
// and stores the response when the body has been read to its end.
type captureBody struct {
	io.ReadCloser
	f    *fallback
	res  *http.Response
	in   *http.Request
	buf  bytes.Buffer
	over bool
	done bool
}

func (c *captureBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if !c.over && !c.done {
		if int64(c.buf.Len()+n) > c.f.MaxCachedBytes {
			c.over = true
			c.buf = bytes.Buffer{}
		} else {
			c.buf.Write(p[:n])
		}
	}
	if err == io.EOF && !c.over && !c.done {
		c.done = true
		c.store()
	}
	return n, err
}

func (c *captureBody) store() {
	h := c.res.Header.Clone()
	for _, k := range []string{"Set-Cookie", "Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", FallbackHeader} {
		h.Del(k)
	}
	cr := CachedResponse{Status: c.res.StatusCode, Header: h, Body: c.buf.Bytes(), Stored: time.Now()}
	if names, _ := varyNames(h); len(names) > 0 {
		cr.Vary = make(http.Header, len(names))
		for _, name := range names {
			cr.Vary[name] = []string{varyDigest(c.in.Header.Values(name))}
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.in.Context()), cacheTimeout)
	defer cancel()
	_ = c.f.Cache.Set(ctx, c.f.CacheKey(c.in), cr)
}
