package circuitbreaker

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// TransportOption configures [NewTransport]. Every [GroupOption] (and so
// every [Option]) is also a TransportOption and configures the transport's
// group of per-host breakers.
type TransportOption interface {
	applyTransport(*transportConfig)
}

// MiddlewareOption configures [Middleware].
type MiddlewareOption interface {
	applyMiddleware(*middlewareConfig)
}

// HTTPOption configures both [NewTransport] and [Middleware].
type HTTPOption interface {
	TransportOption
	MiddlewareOption
}

type transportConfig struct {
	group      []GroupOption
	shared     *Group
	key        func(*http.Request) string
	failStatus func(int) bool
}

type middlewareConfig struct {
	failStatus func(int) bool
}

type transportOptionFunc func(*transportConfig)

func (f transportOptionFunc) applyTransport(t *transportConfig) { f(t) }

type failStatusOption func(int) bool

func (f failStatusOption) applyTransport(t *transportConfig)   { t.failStatus = f }
func (f failStatusOption) applyMiddleware(m *middlewareConfig) { m.failStatus = f }

// WithFailureStatus sets which HTTP status codes count as failures. The
// default for [NewTransport] is 429 and 5xx: the dependency is failing or
// pushing back, while other 4xx answers are the caller's own mistakes. The
// default for [Middleware] is 5xx.
func WithFailureStatus(isFailure func(code int) bool) HTTPOption {
	return failStatusOption(isFailure)
}

// WithKey sets how [NewTransport] picks the breaker for a request. The
// default is the request URL's Host field lower-cased: the host with its
// port when the URL names one, so api.example.com and api.example.com:8443
// get breakers of their own (and so, since the default port is not added,
// do https://api.example.com and https://api.example.com:443).
func WithKey(key func(*http.Request) string) TransportOption {
	return transportOptionFunc(func(t *transportConfig) { t.key = key })
}

// WithGroup makes [NewTransport] use breakers from g instead of a group of
// its own, so that the caller can inspect them (g.Get(host).State()) or
// share them between transports. It cannot be combined with group or
// breaker options, which configure the transport's own group.
func WithGroup(g *Group) TransportOption {
	return transportOptionFunc(func(t *transportConfig) { t.shared = g })
}

func transportFailure(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

func serverFailure(code int) bool { return code >= 500 }

func hostKey(r *http.Request) string { return strings.ToLower(r.URL.Host) }

// NewTransport returns an [http.RoundTripper] that sends each request
// through next (or [http.DefaultTransport] when next is nil) under the
// circuit breaker of the request's host (host and port: see [WithKey]).
//
// While a host's breaker rejects, requests to it fail at once with a
// [*RejectedError] (wrapping [ErrOpen] or [ErrTooManyRequests], and wrapped
// in turn in a [*url.Error] by [http.Client]) and never reach the network.
// Responses count as failures by status ([WithFailureStatus]; by default 429
// and 5xx), errors by the breakers' classifier; the response and its body
// are handed back untouched either way.
//
// NewTransport panics on invalid options, as [New] does, and when
// [WithGroup] is combined with group or breaker options.
func NewTransport(next http.RoundTripper, opts ...TransportOption) http.RoundTripper {
	cfg := transportConfig{key: hostKey, failStatus: transportFailure}
	for _, o := range opts {
		o.applyTransport(&cfg)
	}
	if next == nil {
		next = http.DefaultTransport
	}
	var errs []string
	if cfg.shared != nil && len(cfg.group) > 0 {
		errs = append(errs, "WithGroup cannot be combined with group or breaker options")
	}
	if cfg.key == nil {
		errs = append(errs, "WithKey(nil): key function must not be nil")
	}
	if cfg.failStatus == nil {
		errs = append(errs, "WithFailureStatus(nil): function must not be nil")
	}
	if len(errs) > 0 {
		panic("circuitbreaker: NewTransport: " + strings.Join(errs, "; "))
	}
	g := cfg.shared
	if g == nil {
		g = NewGroup(cfg.group...)
	}
	return &transport{next: next, group: g, key: cfg.key, failStatus: cfg.failStatus}
}

type transport struct {
	next       http.RoundTripper
	group      *Group
	key        func(*http.Request) string
	failStatus func(int) bool
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	b := t.group.Get(t.key(req))
	ctx := req.Context()
	p, pr, err := b.admit(ctx)
	if err != nil {
		// A RoundTripper must close the request body, even on error.
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	var start int64
	if b.timed {
		start = b.now()
	}
	finished := false
	defer func() {
		if !finished {
			b.finish(ctx, p, pr, start, Failure)
		}
	}()
	resp, err := t.next.RoundTrip(req)
	finished = true
	o := Success
	switch {
	case err != nil:
		o = b.cfg.classify(err)
	case t.failStatus(resp.StatusCode):
		o = Failure
	}
	b.finish(ctx, p, pr, start, o)
	return resp, err
}

// CloseIdleConnections closes the idle connections of the next transport,
// if it can, so that [http.Client.CloseIdleConnections] reaches through the
// breaker.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Middleware returns middleware that protects an [http.Handler] with b, on
// the server side: while b rejects, requests are answered at once with 503
// Service Unavailable and a Retry-After header (whole seconds until b lets a
// probe through), and the handler is not called. Responses with a failure
// status ([WithFailureStatus]; by default 5xx) count as failures, and so does
// a handler that panics (the panic goes on), except with
// [http.ErrAbortHandler], which counts for nothing.
func Middleware(b *Breaker, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	cfg := middlewareConfig{failStatus: serverFailure}
	for _, o := range opts {
		o.applyMiddleware(&cfg)
	}
	if cfg.failStatus == nil {
		panic("circuitbreaker: Middleware: WithFailureStatus(nil): function must not be nil")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			p, pr, err := b.admit(ctx)
			if err != nil {
				retry := time.Second
				var re *RejectedError
				if errors.As(err, &re) {
					retry = re.RetryAfter(time.Now())
				}
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
				http.Error(w, fmt.Sprintf("503 service unavailable: circuit breaker %q rejected the request", b.name), http.StatusServiceUnavailable)
				return
			}
			var start int64
			if b.timed {
				start = b.now()
			}
			sw := &statusWriter{ResponseWriter: w}
			finished := false
			defer func() {
				if finished {
					return
				}
				o := Failure
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						o = Ignored
					}
					b.finish(ctx, p, pr, start, o)
					panic(v)
				}
				b.finish(ctx, p, pr, start, o) // runtime.Goexit
			}()
			next.ServeHTTP(sw, r)
			finished = true
			o := Success
			if cfg.failStatus(sw.status()) {
				o = Failure
			}
			b.finish(ctx, p, pr, start, o)
		})
	}
}

// statusWriter remembers the status a handler wrote. Unwrap lets
// [http.ResponseController] reach the underlying writer's Flush, Hijack and
// deadlines.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
