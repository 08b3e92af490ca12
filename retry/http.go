package retry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// TransportOption configures [NewTransport]. Every [Option] is also a
// TransportOption and configures the transport's retrier.
type TransportOption interface {
	applyTransport(*transportConfig)
}

type transportConfig struct {
	retrier       []Option
	anyMethod     bool
	retryStatus   func(int) bool
	maxRetryAfter time.Duration
	errs          []error // bad options, transport and retrier alike
	check         config  // the retrier options applied, for their faults
}

func (t *transportConfig) fault(format string, args ...any) {
	t.errs = append(t.errs, fmt.Errorf(format, args...))
}

type transportOptionFunc func(*transportConfig)

func (f transportOptionFunc) applyTransport(t *transportConfig) { f(t) }

// DefaultMaxRetryAfter is the longest Retry-After that [NewTransport] waits
// by default.
const DefaultMaxRetryAfter = 30 * time.Second

// drainLimit bounds how much of a failed attempt's body is read so that its
// connection can be reused; a longer body closes the connection instead.
const drainLimit = 64 << 10

// WithRetryStatus sets which response status codes are retried. retry
// must not be nil. The default is 429, 502, 503 and 504.
func WithRetryStatus(retry func(code int) bool) TransportOption {
	return transportOptionFunc(func(t *transportConfig) {
		if retry == nil {
			t.fault("WithRetryStatus(nil): function must not be nil")
		}
		t.retryStatus = retry
	})
}

// WithAnyMethod retries requests of every method, POST and PATCH included,
// even without an Idempotency-Key header. Only use it when the server
// makes every request idempotent. By default only GET, HEAD, OPTIONS,
// TRACE, PUT and DELETE requests, and requests with an Idempotency-Key
// header, are retried.
func WithAnyMethod() TransportOption {
	return transportOptionFunc(func(t *transportConfig) { t.anyMethod = true })
}

// WithMaxRetryAfter sets the longest Retry-After the transport waits: a
// response that asks for a longer wait is handed back to the caller instead
// of being retried. d must not be negative. With 0, a response whose
// Retry-After asks for any wait is handed back, one with Retry-After: 0 is
// retried at once, and one without Retry-After is still retried after the
// backoff's wait: d bounds only the waits servers ask for. The default is
// [DefaultMaxRetryAfter] (30s).
func WithMaxRetryAfter(d time.Duration) TransportOption {
	return transportOptionFunc(func(t *transportConfig) {
		if d < 0 {
			t.fault("WithMaxRetryAfter(%v): must not be negative", d)
		}
		t.maxRetryAfter = d
	})
}

func defaultRetryStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// NewTransport returns an [http.RoundTripper] that sends requests through
// next (or [http.DefaultTransport] when next is nil) and retries those that
// are safe to send again:
//
//   - only requests whose method is idempotent (GET, HEAD, OPTIONS, TRACE,
//     PUT, DELETE) or that carry an Idempotency-Key header, unless
//     [WithAnyMethod];
//   - only requests whose body can be sent again: none, or one that
//     [http.Request.GetBody] recreates (as [http.NewRequest] sets up for
//     in-memory bodies); other requests are sent once;
//   - on transport errors other than certificate and protocol errors, and
//     on 429, 502, 503 and 504 responses ([WithRetryStatus]).
//
// A Retry-After header, in seconds or as an HTTP date, sets the wait before
// the next attempt; one longer than [WithMaxRetryAfter] ends the retries.
// The body of each retried response is drained (up to 64 KiB) and closed
// before the wait, so its connection can be reused.
//
// What RoundTrip returns is what the last attempt got: when it got a
// response, that response, untouched, even when its status would have been
// retried; when it got an error (a transport error, or a rejection by a
// circuit breaker inside), the retrier's [*Error], and earlier responses
// have been drained and closed. If the request's context is done, its
// error.
//
// Put a circuit breaker inside the retries, as next: each attempt is then
// judged by the breaker, and an open breaker ends the retries at once. For
// OpenTelemetry HTTP spans, make next an otelhttp transport, and pass
// [ClientTrace] to its WithClientTrace option so that each attempt's span
// carries http.request.resend_count.
//
// NewTransport panics on invalid options (a nil option among them), naming
// every invalid one, transport and retrier options alike, as [New] does;
// [Validate] checks the retrier's options beforehand.
func NewTransport(next http.RoundTripper, opts ...TransportOption) http.RoundTripper {
	cfg := transportConfig{retryStatus: defaultRetryStatus, maxRetryAfter: DefaultMaxRetryAfter}
	for i, o := range opts {
		if o == nil {
			cfg.fault("opts[%d] is nil", i)
			continue
		}
		o.applyTransport(&cfg)
	}
	if err := errors.Join(cfg.errs...); err != nil {
		panic(fmt.Sprintf("retry: NewTransport: %v", err))
	}
	if next == nil {
		next = http.DefaultTransport
	}
	// Drain last, after the user's hooks have seen the response.
	r := New(append(cfg.retrier, WithOnRetry(drainBeforeWait))...)
	return &transport{next: next, r: r, cfg: cfg}
}

type transport struct {
	next http.RoundTripper
	r    *Retrier
	cfg  transportConfig
}

// StatusError is the error that [NewTransport]'s retrier sees for a
// response whose status is retried: [WithOnRetry] hooks receive it, to log
// the status or read the Retry-After header. The response's body is
// drained and closed after the hooks have run, before the wait; a hook must
// not keep it. When the retries end on such a response, the transport hands
// the response itself back instead of this error.
type StatusError struct {
	Response *http.Response
}

// Error returns "retry: server answered " and the response's status.
func (e *StatusError) Error() string { return "retry: server answered " + e.Response.Status }

// ErrorType returns the value of the error.type attribute: the status code,
// as the HTTP semantic conventions record it.
func (e *StatusError) ErrorType() string { return strconv.Itoa(e.Response.StatusCode) }

// drainBeforeWait frees the connection of a retried response while the
// retrier waits, rather than holding it until the next attempt.
func drainBeforeWait(_ context.Context, _ int, err error, _ time.Duration) {
	if se, ok := err.(*StatusError); ok {
		drain(se.Response)
	}
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.replayable(req) {
		return t.next.RoundTrip(req)
	}
	var pending *http.Response // the last failed attempt's response, not drained yet
	err := t.r.Do(req.Context(), func(ctx context.Context) error {
		pending = nil // drained before the wait by drainBeforeWait
		attempt := req
		if ctx != req.Context() {
			attempt = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return Permanent(fmt.Errorf("retry: recreating the request body: %w", err))
				}
				attempt.Body = body
			}
		}
		resp, err := t.next.RoundTrip(attempt)
		if err != nil {
			if !retryableTransportError(err) {
				return Permanent(err)
			}
			return err
		}
		if !t.cfg.retryStatus(resp.StatusCode) {
			pending = resp
			return nil
		}
		pending = resp
		serr := &StatusError{resp}
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			if d > t.cfg.maxRetryAfter {
				return Permanent(serr)
			}
			return After(d, serr)
		}
		return serr
	})
	if pending == nil {
		return nil, err
	}
	if err != nil && req.Context().Err() != nil {
		// The caller gave up while we waited: theirs is the error to report.
		drain(pending)
		return nil, err
	}
	if span := trace.SpanFromContext(req.Context()); span.IsRecording() && err != nil {
		var e *Error
		if errors.As(err, &e) && e.Attempts > 1 {
			span.AddEvent("retry.gave_up", trace.WithAttributes(AttrAttempts.Int(e.Attempts)))
		}
	}
	return pending, nil
}

// CloseIdleConnections closes the idle connections of the next transport,
// if it has such a method, so that [http.Client.CloseIdleConnections]
// reaches through the retries.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// replayable reports whether req may be sent more than once.
func (t *transport) replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	if t.cfg.anyMethod || req.Header.Get("Idempotency-Key") != "" {
		return true
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryableTransportError reports whether a transport error may go away on
// another attempt: certificate errors and unsupported schemes will not.
func retryableTransportError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return false
	case strings.Contains(err.Error(), "unsupported protocol scheme"):
		return false
	}
	return true
}

func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	_ = resp.Body.Close()
}

// ClientTrace is for otelhttp's WithClientTrace option, on an otelhttp
// transport used as the next transport of [NewTransport]: it sets
// http.request.resend_count on the span of each retried attempt. It
// returns an empty trace.
//
//	next := otelhttp.NewTransport(base, otelhttp.WithClientTrace(retry.ClientTrace))
//	client := &http.Client{Transport: retry.NewTransport(next)}
func ClientTrace(ctx context.Context) *httptrace.ClientTrace {
	if n := ResendCount(ctx); n > 0 {
		trace.SpanFromContext(ctx).SetAttributes(semconv.HTTPRequestResendCount(n))
	}
	return &httptrace.ClientTrace{}
}
