package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/retry"
)

// StatusClientClosedRequest is the status the gateway records (nginx's
// 499) for a request whose client went away before the upstream answered.
// The client never sees it; it keeps such requests apart from the
// upstream's failures in telemetry.
const StatusClientClosedRequest = 499

// idempotent reports whether a request may be sent more than once.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// RoundTrip sends a request to the upstream: one attempt, or, with a
// retry policy and a request that is safe to repeat, attempts until one
// gets an answer not worth retrying.
func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if u.retrier == nil || !idempotent(req) || req.Header.Get("Upgrade") != "" {
		return u.attempt(req)
	}
	var body *replay
	if req.Body != nil && req.Body != http.NoBody {
		body = newReplay(req.Body, u.spec.retry.MaxBodyBytes)
		defer body.finish()
	}
	tried := make(bitset, words(len(u.targets)))
	var (
		pending *http.Response // the last answer, not drained yet
		last    error          // the last attempt's error
	)
	first := true
	call := grpcCall(req)
	// Another attempt cannot be made once the one before read past the
	// bound: it had the only copy of what it read. The client gets that
	// attempt's answer or failure.
	spent := func() error {
		if pending != nil {
			return retry.Permanent(&retryStatus{pending})
		}
		return retry.Permanent(last)
	}
	err := u.retrier.Do(req.Context(), func(ctx context.Context) error {
		if !first && body != nil && body.spent() {
			return spent()
		}
		// With an answer in hand, the breaker admits the attempt before
		// that answer is drained (Allow, in choose): admitted by
		// Execute after it, an attempt turned away would leave the
		// client no answer.
		i, t, done, err := u.choose(ctx, tried, call || pending != nil)
		if err != nil {
			// No target left to try: the last answer, if there was one,
			// is what the client gets, its transport still sending it
			// the body if the upstream reads on.
			u.stats.unavailable.Inc()
			return retry.Permanent(err)
		}
		// The body is the new attempt's only now that it will be sent:
		// the transport of the answer in hand reads it no more.
		var attemptBody io.ReadCloser
		if body != nil {
			var ok bool
			if attemptBody, ok = body.next(); !ok {
				// Past the bound since spent said no: the attempt
				// before read on after it failed.
				if done != nil {
					done(context.Canceled) // admitted, not made
				}
				return spent()
			}
		}
		if pending != nil {
			// A retried answer is drained only now that another attempt
			// will be made: held through the backoff wait (milliseconds),
			// it can still be handed back when no target is left.
			drainAfter(pending, body != nil)
			pending = nil
		}
		// The first attempt without a body goes as the request is (the
		// retrier hands it the request's own context): its URL is the
		// outbound request's own, which ReverseProxy cloned, and no
		// earlier attempt can hold it. The others get a copy each.
		a := req
		if ctx != req.Context() || body != nil {
			a = req.WithContext(ctx)
		}
		if body != nil {
			// Its length is the client's: ContentLength and
			// TransferEncoding stay as they are.
			a.Body = attemptBody
		}
		resp, err := u.sendVia(a, i, t, done, tried, first && a == req)
		first = false
		if err != nil {
			if attemptBody != nil {
				// A transport closes it, but an attempt that the
				// breaker turned away in sendVia had none.
				_ = attemptBody.Close()
			}
			if clientBodyFailed(err) || isClientDeadline(err) || body != nil && body.failed() {
				// The client's doing, which another attempt would
				// meet again (a malformed chunk, say).
				return retry.Permanent(err)
			}
			last = err
			return err
		}
		pending = resp
		if code := retryCode(resp); u.spec.retry.Status(code) {
			if code != resp.StatusCode {
				return &grpcStatusError{resp.Header.Get("Grpc-Status")}
			}
			return &retryStatus{resp}
		}
		return nil
	})
	if pending != nil {
		if err != nil && req.Context().Err() != nil {
			drainAfter(pending, body != nil)
			return nil, err
		}
		return pending, nil
	}
	return nil, err
}

// retryStatus is a response whose status is retried.
type retryStatus struct{ resp *http.Response }

func (e *retryStatus) Error() string     { return "gateway: upstream answered " + e.resp.Status }
func (e *retryStatus) ErrorType() string { return strconv.Itoa(e.resp.StatusCode) }

func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}

// drainAfter drains the answer of an attempt that a later one superseded.
// With a request body (streamed), closing an HTTP/2 answer waits for the
// attempt's body to be done being sent, which may be waiting for the
// client to send more: the next attempt must not wait on it, so it is
// drained on a goroutine of its own, which ends when that read does
// (when the client sends, or its request ends).
func drainAfter(resp *http.Response, streamed bool) {
	if streamed {
		go drain(resp)
		return
	}
	drain(resp)
}

// attempt sends the only attempt of a request to a target the balancer
// chooses.
func (u *upstream) attempt(req *http.Request) (*http.Response, error) {
	i, t, done, err := u.choose(req.Context(), nil, grpcCall(req))
	if err != nil {
		u.stats.unavailable.Inc()
		closeBody(req)
		return nil, err
	}
	return u.sendVia(req, i, t, done, nil, true)
}

// grpcCall reports whether req is a gRPC call (or gRPC-Web, to be
// safe), its content type in any case: its answer's outcome may come in
// trailers, after the body, which the breaker learns of through Allow's
// done function.
func grpcCall(req *http.Request) bool {
	ct := req.Header["Content-Type"]
	return len(ct) > 0 && hasPrefixFold(ct[0], "application/grpc")
}

// sendVia is send through target t's breaker. When choose left the
// admission to it (t has a breaker and done is nil: a closed breaker,
// and a request whose outcome is known once the response headers are
// in), the attempt runs inside the breaker's Execute, which allocates
// nothing where Allow allocates its done function. A breaker that opened
// since choose saw it closed sends the attempt back to choose, which asks
// every other breaker with Allow this time: another target may take it.
func (u *upstream) sendVia(req *http.Request, i int, t *target, done func(error), tried bitset, own bool) (*http.Response, error) {
	if t.breaker == nil || done != nil {
		return u.send(req, i, t, done, tried, own, nil)
	}
	var (
		resp *http.Response
		err  error
		ran  bool
	)
	refusal := t.breaker.Execute(req.Context(), func(context.Context) error {
		ran = true
		var outcome error
		resp, err = u.send(req, i, t, nil, tried, own, &outcome)
		return outcome
	})
	if !ran {
		i, t, done, err = u.chooseAfter(req.Context(), tried, true, i, refusal)
		if err != nil {
			u.stats.unavailable.Inc()
			if tried == nil {
				closeBody(req) // the only attempt: nothing will send the body
			}
			return nil, err
		}
		return u.send(req, i, t, done, tried, own, nil)
	}
	return resp, err
}

// send sends an attempt to target t (index i), whose breaker admitted it
// (done), marking it in tried for a retried request. own says that req
// and its URL are the attempt's alone (the outbound request that
// ReverseProxy cloned, sent for the first time), so that the target can
// be set in its URL in place. With outcome set (inside the breaker's
// Execute), the breaker's outcome is put there instead of told to done:
// a gRPC answer's is then its HTTP status's.
func (u *upstream) send(req *http.Request, i int, t *target, done func(error), tried bitset, own bool, outcome *error) (*http.Response, error) {
	ctx := req.Context()
	if tried != nil {
		tried.set(i)
	}
	s := t.state
	if u.counted {
		s.selections.Inc()
	}
	// Counted whatever the policy: an Update may switch the upstream to
	// least-request balancing while requests (WebSockets, streams) are
	// in flight, and they must count then.
	s.inflight.Add(1)

	actx := ctx
	var (
		cancel context.CancelCauseFunc
		timer  *time.Timer
		body   *replayReader // a streamed body, which keeps the timer
	)
	if d := u.spec.retry.PerTryTimeout; d > 0 {
		actx, cancel = context.WithCancelCause(ctx)
		fire := func() { cancel(&timeoutError{d}) }
		if rb, ok := req.Body.(*replayReader); ok {
			body = rb // its timer waits while the client's body does
			rb.startTimer(d, fire)
		} else {
			timer = time.AfterFunc(d, fire)
		}
	}
	out := req
	if actx != ctx {
		out = req.WithContext(actx)
	}
	if t.path == "" && own {
		// Set the target in place. The later attempts of a retried
		// request each get a copy, since the transport may still hold
		// an earlier one; they copy this URL and set their own target,
		// and a target's path is put in front only in a copy.
		out.URL.Scheme, out.URL.Host = t.scheme, t.host
	} else {
		dest := *req.URL
		dest.Scheme, dest.Host = t.scheme, t.host
		raw := dest.EscapedPath()
		dest.Path = t.path + dest.Path
		dest.RawPath = t.rawPath + raw
		if out == req {
			out = req.WithContext(actx)
		}
		out.URL = &dest
	}

	// A transport that panics (a custom Upstream.Transport's bug) must
	// not keep the attempt in flight for the balancer, nor its admission
	// (a half-open breaker's probe) until the probe timeout: it ends here
	// as a failed attempt, and the panic goes on to the server, which
	// logs it and drops the connection. Inside Execute, the breaker
	// counts the panic itself.
	returned := false
	defer func() {
		if !returned {
			if timer != nil {
				timer.Stop()
			}
			if body != nil {
				body.stopTimer()
			}
			if cancel != nil {
				cancel(nil)
			}
			s.inflight.Add(-1)
			if done != nil {
				done(errTransportPanicked)
			}
		}
	}()
	ct := grpcDeadline(out, u.spec.retry.PerTryTimeout)
	resp, err := u.transport.RoundTrip(out)
	returned = true
	if timer != nil && !timer.Stop() || body != nil && body.stopTimer() {
		// The attempt's time ran out, perhaps just as its answer came.
		if err == nil {
			drain(resp)
			resp = nil
		}
		err = context.Cause(actx)
	}
	if err == nil && (resp.StatusCode < 100 || resp.StatusCode > 999) {
		drain(resp)
		resp, err = nil, &badStatusError{resp.StatusCode}
	}
	if err != nil {
		if cancel != nil {
			cancel(nil)
		}
		s.inflight.Add(-1)
		if ct.expired() {
			err = &clientDeadlineError{err} // grpc-go reset the stream
		}
		berr := u.finish(ctx, t, done, err, 0)
		if outcome != nil {
			*outcome = berr
		}
		return nil, err
	}
	if !u.finishGRPC(ctx, t, done, resp, ct) {
		berr := u.finish(ctx, t, done, nil, resp.StatusCode)
		if outcome != nil {
			*outcome = berr
		}
	} else if outcome != nil {
		*outcome = u.breakerErr(clientGone(ctx), nil, resp.StatusCode)
	}
	var b *attemptBody
	if st := stateOf(ctx); st != nil && st.abTaken.CompareAndSwap(false, true) {
		b = &st.ab // the request's first attempt: no allocation
	} else {
		b = new(attemptBody)
	}
	resp.Body = newAttemptBody(b, resp.Body, s, cancel)
	return resp, nil
}

// finish tells the target's breaker (done, if not nil) and outlier
// detection how the attempt went, once its response headers are in, and
// returns what it told the breaker. An attempt whose client went away,
// whose body went over the route's limit or could not be read, or that
// timed out waiting for the client's body, counts for neither: the
// client's doing, not the target's.
func (u *upstream) finish(ctx context.Context, t *target, done func(error), err error, code int) error {
	gone := clientGone(ctx)
	if err != nil && !gone {
		st := stateOf(ctx)
		gone = clientBodyFailed(err) || isClientDeadline(err) || st != nil && (st.tooLarge.Load() || st.badBody.Load() ||
			st.bodyStall.Load() != 0 && timedOut(ctx, err))
	}
	berr := u.breakerErr(gone, err, code)
	if done != nil {
		done(berr)
	}
	if !gone {
		u.record(t, err != nil || gatewayFailure(code))
	}
	return berr
}

// timedOut reports whether an attempt failed because its time, or its
// request's, ran out.
func timedOut(ctx context.Context, err error) bool {
	var te *timeoutError
	return errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// clientGone reports whether the request of ctx ended because its client
// went away (or its handler gave up): its context is cancelled, with
// context.Canceled as the cause. ctx.Err first: context.Cause looks the
// cause up through every context of the request, 2% of a proxied
// request's time, and a context not done has none.
func clientGone(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled)
}

// breakerErr is the outcome a target's breaker is told of an attempt
// that ended with err or status code: context.Canceled when the client
// went away (gone), which counts for nothing.
func (u *upstream) breakerErr(gone bool, err error, code int) error {
	switch {
	case gone:
		return context.Canceled
	case err == nil && u.failure != nil && u.failure(code):
		return &statusError{code}
	}
	return err
}

// attemptBody ends an attempt when its response body is closed: the
// target's in-flight count, and the attempt's context.
type attemptBody struct {
	io.ReadCloser
	state  *targetState
	cancel context.CancelCauseFunc
	closed atomic.Bool
}

// attemptConn is an attemptBody that is also the connection of a
// switched protocol (a WebSocket), which ReverseProxy writes to.
type attemptConn struct{ *attemptBody }

func (c attemptConn) Write(p []byte) (int, error) { return c.ReadCloser.(io.Writer).Write(p) }

// newAttemptBody sets b, which must be new, to end the attempt of body.
func newAttemptBody(b *attemptBody, body io.ReadCloser, s *targetState, cancel context.CancelCauseFunc) io.ReadCloser {
	b.ReadCloser, b.state, b.cancel = body, s, cancel
	if _, ok := body.(io.ReadWriteCloser); ok {
		return attemptConn{b}
	}
	return b
}

func (b *attemptBody) Close() error {
	err := b.ReadCloser.Close()
	if b.closed.CompareAndSwap(false, true) {
		b.state.inflight.Add(-1)
		if b.cancel != nil {
			b.cancel(nil)
		}
	}
	return err
}

// proxyWriter is the ResponseWriter the proxy writes to. It remembers
// whether the response has started (or the connection was hijacked), so
// that the error handler never writes a second response. Hijack, Flush
// and Unwrap keep WebSockets and streaming working through it.
//
// ReverseProxy clears the response's headers after relaying a 1xx (a 103
// Early Hints, or the 100 Continue of a request that expects one): the
// headers that middleware set before the proxy ran (CORS, security
// headers, rate limits) and the request ID would be gone from the final
// response. proxyWriter keeps them and sets them again in front of the
// final response's own.
type proxyWriter struct {
	http.ResponseWriter
	st            *reqState     // for the request ID; nil outside a gateway
	pre           []headerField // the headers set before the proxy ran, but the request ID
	started       bool
	hijacked      bool
	informational bool // a 1xx was relayed, after which ReverseProxy clears the headers
	restored      bool
	answered      bool   // by proxyError, the gateway's own answer or a fallback
	code          uint16 // the response's status; 0 before WriteHeader
}

type headerField struct {
	key  string
	vals []string
}

// keep notes the headers set on the response so far. It allocates only
// when there are some beside the request ID.
func (w *proxyWriter) keep() {
	h := w.ResponseWriter.Header()
	n := len(h)
	id := ""
	if w.st != nil && w.st.requestID != nil {
		id = w.st.table.requestID
		if _, ok := h[id]; ok {
			n--
		}
	}
	if n == 0 {
		return
	}
	w.pre = make([]headerField, 0, n)
	for k, v := range h {
		if k != id {
			w.pre = append(w.pre, headerField{k, v})
		}
	}
}

// restore sets again, after a 1xx, the headers kept before the proxy ran,
// each in front of the values the final response gives it (as
// ReverseProxy adds them), and the request ID.
func (w *proxyWriter) restore() {
	if !w.informational || w.restored || w.started {
		return
	}
	w.restored = true
	h := w.ResponseWriter.Header()
	for _, f := range w.pre {
		h[f.key] = append(f.vals[:len(f.vals):len(f.vals)], h[f.key]...)
	}
	if st := w.st; st != nil && st.requestID != nil {
		h[st.table.requestID] = st.requestID
	}
}

func (w *proxyWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.restore()
		w.started = true
		w.code = uint16(min(max(code, 0), math.MaxUint16))
	} else {
		w.informational = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *proxyWriter) Write(p []byte) (int, error) {
	w.restore()
	w.started = true
	return w.ResponseWriter.Write(p)
}

func (w *proxyWriter) FlushError() error {
	w.restore()
	w.started = true
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *proxyWriter) Flush() { _ = w.FlushError() }

func (w *proxyWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// ReverseProxy writes a 101's headers itself, on the hijacked
	// connection, from the header map: after a 1xx, they are set again
	// before.
	w.restore()
	w.hijacked = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *proxyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bufferPool lends ReverseProxy its copy buffers. It keeps them as array
// pointers, which go in and out of the pool without an allocation.
type bufferPool struct{ p sync.Pool }

const bufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[bufferSize]byte); ok {
		return v[:]
	}
	return new([bufferSize]byte)[:]
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == bufferSize {
		b.p.Put((*[bufferSize]byte)(buf[:bufferSize]))
	}
}

// newProxy returns the reverse proxy of a route with an upstream.
func (rt *route) newProxy(pool httputil.BufferPool, errorLog *log.Logger) *httputil.ReverseProxy {
	p := &httputil.ReverseProxy{
		Rewrite:      rt.rewrite,
		Transport:    rt.up,
		ErrorHandler: rt.proxyError,
		BufferPool:   pool,
		ErrorLog:     errorLog,
	}
	f := rt.spec.fallback
	if f != nil && f.Cache == nil {
		f = nil
	}
	p.ModifyResponse = func(res *http.Response) error {
		st := stateOf(res.Request.Context())
		if st == nil {
			return nil
		}
		if st.requestID != nil {
			// The gateway's ID is on the response already (or set again
			// after a 1xx, see proxyWriter); an upstream that echoes it
			// would make it twice.
			delete(res.Header, st.table.requestID)
		}
		if f != nil && st.proxyIn != nil {
			f.capture(res, st.proxyIn)
		}
		if res.StatusCode == http.StatusSwitchingProtocols {
			// ReverseProxy refuses some switches (another protocol than
			// the one asked for, a writer that cannot hijack) without
			// closing this body, the upstream's connection, through
			// which the attempt ends; proxyError closes it then.
			switch b := res.Body.(type) {
			case attemptConn:
				st.switching = b.attemptBody
			case *attemptBody:
				st.switching = b
			}
		}
		return nil
	}
	return p
}

// rewrite makes the outbound request: the path rewritten, the Host
// header, and the forwarding headers. The upstream's transport sets the
// target's scheme and host for each attempt.
func (rt *route) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	switch {
	case rt.spec.template != nil:
		out.URL.Path, out.URL.RawPath = rt.spec.template.expand(pr.In)
	case rt.spec.StripPrefix != "":
		stripPrefix(out.URL, rt.spec.StripPrefix)
	}
	out.URL.Scheme, out.URL.Host = "http", rt.up.name
	if rt.up.spec.PassHost {
		out.Host = pr.In.Host
	} else {
		out.Host = ""
	}
	if pr.In.Trailer != nil {
		// The map the server fills in once the body is read: Out's is a
		// copy made before, with the names alone (see liveTrailers).
		out.Trailer = pr.In.Trailer
	}
	if st := stateOf(pr.In.Context()); st != nil {
		setForwarded(pr, st)
		if h := st.table.requestID; st.requestID != nil && !slices.Equal(out.Header[h], st.requestID) {
			// Set again: a client may have named it in Connection. Only
			// then: an assignment to a Go map holding eight keys grows it
			// to a table even when the key is there (about 700 bytes).
			out.Header[h] = st.requestID
		}
	}
}

// proxyServe is the innermost handler of a route with an upstream.
func (rt *route) proxyServe(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r.Context())
	if st != nil && (rt.spec.fallback != nil || r.Trailer != nil) {
		// Only the fallback and liveTrailers need it; a handler may proxy
		// one request twice (a shadow copy), with the same state.
		st.proxyIn = r
	}
	var pw *proxyWriter
	if st != nil && st.pwTaken.CompareAndSwap(false, true) {
		pw = &st.pw
		pw.ResponseWriter = w
	} else {
		pw = &proxyWriter{ResponseWriter: w}
	}
	pw.st = st
	pw.keep()
	rt.proxy.ServeHTTP(pw, r)
	if pw.code >= 500 && !pw.answered {
		// The upstream's own 5xx: otelhttp sets the span's status, and
		// error.type says what, on the span and on the duration metric,
		// as proxyError does for the gateway's.
		typ := semconv.ErrorTypeKey.String(strconv.Itoa(int(pw.code)))
		if l, ok := otelhttp.LabelerFromContext(r.Context()); ok {
			l.Add(typ)
		}
		trace.SpanFromContext(r.Context()).SetAttributes(typ)
	}
}

// proxyError answers for a request the upstream did not answer: 413 for
// a body over the limit, 503 (with Retry-After) when no target could take
// it, 504 when its time ran out, 502 otherwise, or the route's fallback
// instead of the last three. r is the outbound request.
func (rt *route) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	st := stateOf(ctx)
	if st != nil && st.switching != nil {
		_ = st.switching.Close()
		st.switching = nil
	}
	span := trace.SpanFromContext(ctx)
	if pw, ok := w.(*proxyWriter); ok {
		if pw.started || pw.hijacked {
			// The response is under way: all that can be done is to say so.
			telemetry.AddEvent(ctx, "gateway.response_aborted", nil)
			return
		}
		// After a 1xx, the headers are back before the answer below
		// sets its own over them.
		pw.restore()
		pw.answered = true
	}
	var re *retry.Error
	if errors.As(err, &re) && re.Last != nil && !errors.Is(re.Reason, context.Canceled) {
		err = re.Last
	}
	var (
		ue     *unavailableError
		te     *timeoutError
		mbe    *http.MaxBytesError
		code   int
		reason int
	)
	switch {
	case st != nil && st.tooLarge.Load(), errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge)
		return
	case st != nil && st.bodyStall.Load()&bodyTimedOut != 0:
		// The time ran out while the client was still sending its body:
		// the connection's read deadline ended the read, and the server
		// took that for the client's leaving.
		writeError(w, http.StatusRequestTimeout)
		return
	case errors.Is(context.Cause(ctx), context.Canceled):
		writeError(w, StatusClientClosedRequest)
		return
	case st != nil && st.badBody.Load(), errors.Is(err, ErrClientBody):
		writeError(w, http.StatusBadRequest)
		return
	case st != nil && st.bodyStall.Load() != 0 && timedOut(ctx, err):
		// The time ran out while the client was still sending its body.
		writeError(w, http.StatusRequestTimeout)
		return
	case errors.As(err, &ue):
		code, reason = http.StatusServiceUnavailable, reasonUnavailable
	case errors.As(err, &te), errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded):
		code, reason = http.StatusGatewayTimeout, reasonTimeout
	default:
		code, reason = http.StatusBadGateway, reasonFailure
	}
	typ := semconv.ErrorTypeKey.String(telemetry.ErrorTypeString(err))
	if f := rt.spec.fallback; f != nil && st != nil && (reason == reasonUnavailable || idempotent(fallbackIn(st, r))) {
		in := fallbackIn(st, r)
		// The fallback answers after the route's time may have run out:
		// it gets the request without the deadline, still ended when the
		// client goes away.
		fctx, cancel := context.WithCancel(context.WithoutCancel(in.Context()))
		stop := context.AfterFunc(st.Context, cancel)
		src, ok := f.serve(w, in.WithContext(fctx), reason)
		stop()
		cancel()
		if ok {
			// A degraded answer, not an error: the cause goes on the
			// event, not on the span's status and error.type.
			rt.stats.fallbacks[reason][src].Inc()
			if span.IsRecording() {
				span.AddEvent("gateway.fallback", trace.WithAttributes(
					AttrFallbackReason.String(reasonNames[reason]), AttrFallbackSource.String(sourceNames[src]), typ))
			}
			return
		}
	}
	if l, ok := otelhttp.LabelerFromContext(ctx); ok {
		l.Add(typ)
	}
	if span.IsRecording() {
		span.SetAttributes(typ)
		span.SetStatus(codes.Error, err.Error())
	}
	if ue != nil {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(ue.retryAfter, time.Second).Seconds()))))
	}
	writeError(w, code)
}

// fallbackIn is the request a fallback answers: as the route's proxy
// received it, after middleware.
func fallbackIn(st *reqState, out *http.Request) *http.Request {
	if st.proxyIn != nil {
		return st.proxyIn
	}
	return out
}

// writeError writes the gateway's own error response: the status and its
// text, nothing about the cause.
func writeError(w http.ResponseWriter, code int) {
	text := http.StatusText(code)
	if code == StatusClientClosedRequest {
		text = "Client Closed Request"
	}
	http.Error(w, strconv.Itoa(code)+" "+text, code)
}

// ErrClientBody marks the failure of a request body as the client's
// doing, for a handler that proxies a request through the gateway
// ([ProxyTo], [Gateway.Proxy], [Gateway.Transport]) with a body of its
// own making: one converted from the client's, as package
// gateway/transcode does, which fails when the client's message is over
// a limit or malformed. The gateway reads the client's own body itself
// and knows when that fails; a body made from it fails where the gateway
// cannot see why, and its error, returned by the transport, would pass
// for a failure of the target. Wrapped in ErrClientBody
// (fmt.Errorf("%w: %w", gateway.ErrClientBody, err)), it is treated as
// the client's body failing: the attempt counts against neither the
// target's breaker nor its outlier detection, it is not retried, and
// the gateway answers 400 (413 when err is an [*http.MaxBytesError])
// instead of 502.
var ErrClientBody = errors.New("gateway: the request body failed")

// clientBodyFailed reports whether err, an attempt's, is the client's
// body failing: over the route's limit, or marked with [ErrClientBody].
func clientBodyFailed(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe) || errors.Is(err, ErrClientBody)
}

// clientBody is the body of a request as the client sends it. It marks
// the request when reading it fails, so that neither the target's breaker
// nor its outlier detection is charged with the client's doing, however
// the transport reports the failure: past the route's limit (limit > 0),
// it fails with *http.MaxBytesError and the gateway answers 413; a body
// that cannot be read (a malformed chunk, a client gone mid-body) is
// answered 400; a body the client was still sending when the route's
// time ran out, 408.
type clientBody struct {
	rc       io.ReadCloser
	left     int64 // of limit
	limit    int64 // 0 for none
	st       *reqState
	deadline context.Context // the route's timeout; nil for none
}

// The bits of reqState.bodyStall: a read of the client's body is waiting
// for the client, and the route's time ran out during one. An attempt
// that times out then is the client's doing (answered 408), not the
// target's.
const (
	bodyWaiting = 1 << iota
	bodyTimedOut
)

func (b *clientBody) Read(p []byte) (int, error) {
	if b.limit > 0 && int64(len(p)) > b.left { // not b.left+1, which overflows for a limit of MaxInt64
		p = p[:b.left+1]
	}
	if b.st != nil {
		b.st.bodyStall.Or(bodyWaiting)
	}
	before := b.deadline != nil && b.deadline.Err() == nil
	n, err := b.rc.Read(p)
	if b.st != nil {
		if before && (b.deadline.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
			// HTTP/1's transport returns only once this read does; the
			// route's time ran out during it, or the connection's read
			// deadline, set to that time, ended it.
			b.st.bodyStall.Or(bodyTimedOut)
		}
		b.st.bodyStall.And(^uint32(bodyWaiting))
	}
	if b.limit > 0 {
		if int64(n) > b.left {
			n = int(b.left)
			b.left = 0
			if b.st != nil {
				b.st.tooLarge.Store(true)
			}
			return n, &http.MaxBytesError{Limit: b.limit}
		}
		b.left -= int64(n)
	}
	if err != nil && err != io.EOF && b.st != nil {
		b.st.badBody.Store(true)
	}
	return n, err
}

func (b *clientBody) Close() error { return b.rc.Close() }

// liveTrailers is the transport under otelhttp's: it sends a request's
// trailers from the map that the server fills in once it has read the
// client's body. otelhttp's transport sends a copy of the request, whose
// trailer map was copied before the body was read, with the names alone:
// the upstream got no values.
type liveTrailers struct{ base http.RoundTripper }

func (t liveTrailers) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Trailer != nil {
		if st := stateOf(r.Context()); st != nil && st.proxyIn != nil && st.proxyIn.Trailer != nil {
			r2 := new(http.Request)
			*r2 = *r
			r2.Trailer = st.proxyIn.Trailer
			r = r2
		}
	}
	return t.base.RoundTrip(r)
}
