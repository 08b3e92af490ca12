package circuitbreaker

import (
	"context"
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
	sharedSet  bool // WithGroup was given
	key        func(*http.Request) string
	failStatus func(int) bool
	errs       []error // bad options
}

type middlewareConfig struct {
	failStatus func(int) bool
	errs       []error // bad options
}

type transportOptionFunc func(*transportConfig)

func (f transportOptionFunc) applyTransport(t *transportConfig) { f(t) }

type failStatusOption func(int) bool

const nilFailStatus = "WithFailureStatus(nil): function must not be nil"

func (f failStatusOption) applyTransport(t *transportConfig) {
	if f == nil {
		t.errs = append(t.errs, errors.New(nilFailStatus))
	}
	t.failStatus = f
}

func (f failStatusOption) applyMiddleware(m *middlewareConfig) {
	if f == nil {
		m.errs = append(m.errs, errors.New(nilFailStatus))
	}
	m.failStatus = f
}

// WithFailureStatus sets which HTTP status codes count as failures.
// isFailure must not be nil. The default for [NewTransport] is 429 and 5xx:
// the dependency is failing or pushing back, while other 4xx answers are
// the caller's own mistakes. The default for [Middleware] is 5xx.
func WithFailureStatus(isFailure func(code int) bool) HTTPOption {
	return failStatusOption(isFailure)
}

// WithKey sets how [NewTransport] picks the breaker for a request. The
// default is the request URL's Host field lower-cased: the host with its
// port when the URL names one, so api.example.com and api.example.com:8443
// get breakers of their own (and so, since the default port is not added,
// do https://api.example.com and https://api.example.com:443). key must
// not be nil.
func WithKey(key func(*http.Request) string) TransportOption {
	return transportOptionFunc(func(t *transportConfig) {
		if key == nil {
			t.errs = append(t.errs, errors.New("WithKey(nil): key function must not be nil"))
		}
		t.key = key
	})
}

// WithGroup makes [NewTransport] use breakers from g instead of a group of
// its own, so that the caller can inspect them (g.Get(host).State()) or
// share them between transports. g must not be nil. It cannot be combined
// with group or breaker options, which configure the transport's own group.
func WithGroup(g *Group) TransportOption {
	return transportOptionFunc(func(t *transportConfig) {
		if g == nil {
			t.errs = append(t.errs, errors.New("WithGroup(nil): group must not be nil"))
		}
		t.shared, t.sharedSet = g, true
	})
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
// in turn in a [*net/url.Error] by [http.Client]) and never reach the network.
// Responses count as failures by status ([WithFailureStatus]; by default 429
// and 5xx), errors by the breakers' classifier; the response and its body
// are handed back untouched either way. The error of a request whose
// context was cancelled matches [context.Canceled] for the classifier, so
// by default it counts for nothing, even when net/http returns the
// cancellation's cause instead ([context.WithCancelCause]).
//
// A nil next means [http.DefaultTransport], as a nil Transport does in an
// [http.Client]. NewTransport panics on invalid options (a nil one among
// them), naming every one, as [New] does, and when [WithGroup] is combined
// with group or breaker options.
func NewTransport(next http.RoundTripper, opts ...TransportOption) http.RoundTripper {
	cfg := transportConfig{key: hostKey, failStatus: transportFailure}
	for i, o := range opts {
		if o == nil {
			cfg.errs = append(cfg.errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.applyTransport(&cfg)
	}
	if next == nil {
		next = http.DefaultTransport
	}
	if cfg.sharedSet && len(cfg.group) > 0 {
		cfg.errs = append(cfg.errs, errors.New("WithGroup cannot be combined with group or breaker options"))
	}
	// The group and breaker options are checked even beside WithGroup, so
	// that their faults are named with the conflict.
	gcfg, err := newGroupConfig(cfg.group)
	cfg.errs = append(cfg.errs, err)
	if err := errors.Join(cfg.errs...); err != nil {
		panic(fmt.Sprintf("circuitbreaker: NewTransport: %v", err))
	}
	g := cfg.shared
	if g == nil {
		g = &Group{opts: gcfg.breaker, max: gcfg.max}
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
		o = b.cfg.classify(callerCanceled(ctx, err))
	case t.failStatus(resp.StatusCode):
		o = Failure
	}
	b.finish(ctx, p, pr, start, o)
	return resp, err
}

// callerCanceled returns the error of a round trip for the classifier: err,
// joined with [context.Canceled] when the request's context was cancelled.
// For a context cancelled with a cause ([context.WithCancelCause], as
// errgroup.WithContext does when a sibling fails), net/http returns the
// cause, not context.Canceled, and the classifier would count the caller
// giving up against the host.
func callerCanceled(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) && !errors.Is(err, context.Canceled) {
		return errors.Join(err, context.Canceled)
	}
	return err
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
//
// Middleware panics when b is nil or an option is invalid (a nil one among
// them), naming every fault, as [New] does; the middleware it returns
// panics when given a nil handler, as [http.Handle] does. Bad input is so
// reported when the handler chain is built, not on the first request.
func Middleware(b *Breaker, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	cfg := middlewareConfig{failStatus: serverFailure}
	if b == nil {
		cfg.errs = append(cfg.errs, errors.New("b is nil: a breaker is required"))
	}
	for i, o := range opts {
		if o == nil {
			cfg.errs = append(cfg.errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.applyMiddleware(&cfg)
	}
	if err := errors.Join(cfg.errs...); err != nil {
		panic(fmt.Sprintf("circuitbreaker: Middleware: %v", err))
	}
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic(fmt.Sprintf("circuitbreaker: Middleware(%q): nil handler", b.name))
		}
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
