package strangler

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// shadower sends shadow copies through a bounded queue to a fixed pool
// of workers, which compare the answers.
type shadower struct {
	f       *Facade
	cfg     Shadow
	capture []string // the headers a primary's answer is kept with
	ignore  []path
	tracer  trace.Tracer
	on      atomic.Bool
	share   int64        // Shadow.Percent in hundredths
	seen    atomic.Int64 // eligible requests, for the share
	held    atomic.Int64 // bytes of the jobs queued or in flight, up to cfg.MaxQueuedBytes
	queue   chan *job
	samples *ring
	bufs    sync.Pool // *bytes.Buffer, for the answers kept

	mu     sync.RWMutex // held for reading while queueing (and by SetShadow), so Shutdown never closes the queue under a send
	closed bool

	base   context.Context // ended by Shutdown to cancel the calls in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// job is one shadow copy: the request as the primary got it, its body,
// and the primary's answer.
type job struct {
	req     *http.Request
	body    []byte
	primary Target
	rc      *routeCounts
	link    trace.SpanContext
	resp    response
	buf     *bytes.Buffer // resp's body, back to the pool once compared
	at      time.Time
	held    int64 // counted against Shadow.MaxQueuedBytes, from enqueue to the end of run
}

// size is what a job counts against Shadow.MaxQueuedBytes: the bodies,
// and the request's headers, which the server lets be large too. (run
// changes the headers: the count is taken once, by enqueue.)
func (j *job) size() int64 {
	n := len(j.body) + len(j.resp.Body)
	for k, vs := range j.req.Header {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return int64(n)
}

func newShadower(f *Facade, cfg Shadow, tracer trace.Tracer) *shadower {
	s := &shadower{
		f:       f,
		cfg:     cfg,
		tracer:  tracer,
		queue:   make(chan *job, cfg.Queue),
		samples: newRing(cfg.Samples),
	}
	for _, p := range cfg.Ignore {
		pp, _ := parsePath(p) // checked by validate
		s.ignore = append(s.ignore, pp)
	}
	s.capture = slices.Clone(cfg.Headers)
	for _, h := range []string{"Content-Type", "Content-Encoding"} {
		if !slices.Contains(s.capture, h) {
			s.capture = append(s.capture, h)
		}
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.share = int64(toBasisPoints(cfg.Percent))
	s.on.Store(true)
	for range cfg.Workers {
		s.wg.Go(s.work)
	}
	return s
}

// eligible reports whether a request is shadowed: a method the
// configuration lists, no protocol upgrade, and its turn in the share.
func (s *shadower) eligible(r *http.Request) bool {
	if !slices.Contains(s.cfg.Methods, r.Method) || r.Header.Get("Upgrade") != "" {
		return false
	}
	if s.share == buckets {
		return true
	}
	// The n-th eligible request is shadowed when it brings the count of
	// shadowed ones, n × share rounded down, one further: exactly the
	// share, evenly spread.
	n := s.seen.Add(1)
	return n*s.share/buckets != (n-1)*s.share/buckets
}

// serve sends the request to the primary side t, capturing its answer,
// then queues the copy for the other side. Nothing here waits for the
// shadow: the queueing never blocks, and a full queue drops the copy.
func (s *shadower) serve(w http.ResponseWriter, r *http.Request, t Target, rc *routeCounts) {
	primary := s.f.sides[t]
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		buf, complete, err := readUpTo(r.Body, s.cfg.MaxBodyBytes)
		if err != nil || !complete {
			// The primary gets the body as it came, read part first; the
			// request is not shadowed.
			var rest io.Reader = r.Body
			if err != nil {
				rest = errReader{err}
			} else {
				rc.dropped[t.other()][dropBodyTooLarge].Inc()
			}
			r = r.WithContext(r.Context())
			r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), rest), r.Body}
			primary.ServeHTTP(w, r)
			return
		}
		body = buf
		orig := r.Body
		r = r.WithContext(r.Context())
		r.Body = readCloser{bytes.NewReader(body), orig}
	}
	// The copy is taken now, in the request's goroutine: once the
	// handler returns, the server and the gateway may change the request
	// (the gateway rewrites its Host for the server metrics).
	cp := r.Clone(r.Context())
	tw := &teeWriter{ResponseWriter: w, limit: s.cfg.MaxResponseBytes, headers: s.capture, buf: s.getBuf()}
	primary.ServeHTTP(tw, r)
	if tw.hijacked {
		s.putBuf(tw.buf)
		return
	}
	if tw.over {
		s.putBuf(tw.buf)
		rc.dropped[t.other()][dropResponseTooLarge].Inc()
		return
	}
	if r.Context().Err() != nil {
		// The client left, or the request's time ran out, before the
		// primary side answered: what was written (499, 504) is the
		// gateway's, not the side's answer, and no difference of the two.
		s.putBuf(tw.buf)
		rc.dropped[t.other()][dropRequestEnded].Inc()
		return
	}
	if !tw.wrote {
		tw.snapshot(http.StatusOK)
	}
	if !s.enqueue(&job{
		req:     cp,
		body:    body,
		primary: t,
		rc:      rc,
		link:    trace.SpanContextFromContext(r.Context()),
		resp:    response{Status: tw.status, Header: tw.header, Body: tw.buf.Bytes()},
		buf:     tw.buf,
		at:      time.Now(),
	}) {
		s.putBuf(tw.buf)
	}
}

func (s *shadower) getBuf() *bytes.Buffer {
	if b, ok := s.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

// putBuf gives a buffer back, unless it grew large: a pool of
// megabyte buffers, kept for a rare long answer, would hold memory for
// nothing.
func (s *shadower) putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooled {
		b.Reset()
		s.bufs.Put(b)
	}
}

const maxPooled = 64 << 10

// enqueue queues j without waiting, or counts it dropped and reports
// false.
func (s *shadower) enqueue(j *job) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		j.rc.dropped[j.primary.other()][dropClosed].Inc()
		return false
	}
	j.held = j.size()
	if s.held.Add(j.held) > s.cfg.MaxQueuedBytes {
		s.held.Add(-j.held)
	} else {
		select {
		case s.queue <- j:
			return true
		default:
			s.held.Add(-j.held)
		}
	}
	j.rc.dropped[j.primary.other()][dropQueueFull].Inc()
	return false
}

func (s *shadower) work() {
	for j := range s.queue {
		if s.base.Err() != nil {
			j.rc.dropped[j.primary.other()][dropClosed].Inc()
		} else {
			s.run(j)
		}
		s.held.Add(-j.held)
		s.putBuf(j.buf)
	}
}

// run sends one copy to the other side and compares the answers. The
// copy is its own trace, linked to the primary's span: it runs after the
// primary's trace has ended, on no client's behalf.
func (s *shadower) run(j *job) {
	side := j.primary.other()
	method := j.req.Method
	if !validToken(method) {
		method = "_OTHER"
	}
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(method),
		AttrTarget.String(side.String()),
		AttrPrimary.String(j.primary.String()),
	}
	if j.rc.httpRoute != "" {
		attrs = append(attrs, semconv.HTTPRoute(j.rc.httpRoute))
	}
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrs...),
	}
	if j.link.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: j.link}))
	}
	// The request's values (the gateway's state, the principal) stay;
	// its cancellation, deadline, span and otelhttp labeler do not.
	ctx := otelhttp.ContextWithLabeler(context.WithoutCancel(j.req.Context()), &otelhttp.Labeler{})
	ctx, span := s.tracer.Start(ctx, SpanShadow, opts...)
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()

	out := j.req.WithContext(ctx)
	keepHop(out.Header, ShadowHeader)
	out.Header.Set(ShadowHeader, "1")
	if j.body != nil {
		out.Body = io.NopCloser(bytes.NewReader(j.body))
		out.ContentLength = int64(len(j.body))
		out.TransferEncoding = nil
	} else {
		out.Body = http.NoBody
	}
	cw := &captureWriter{header: http.Header{}, limit: s.cfg.MaxResponseBytes, buf: s.getBuf()}
	defer s.putBuf(cw.buf)
	err := serveShadow(s.f.sides[side], cw, out)
	if cause := context.Cause(ctx); cause != nil && (err == nil || errors.Is(err, errShadowPanic)) {
		// The time ran out, or Shutdown: the answer, if any, is the
		// gateway's, and one cut off mid-body broke off for that reason
		// (ReverseProxy's ErrAbortHandler), not for a fault of the side.
		err = cause
	}
	result := resultMatch
	var (
		fields  []FieldDiff
		omitted int
	)
	if err != nil {
		result = resultError
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
	} else {
		span.SetAttributes(semconv.HTTPResponseStatusCode(cw.statusCode()))
		shadowResp := response{Status: cw.statusCode(), Header: cw.header, Body: cw.buf.Bytes(), Truncated: cw.over}
		legacy, modern := j.resp, shadowResp
		if side == TargetLegacy {
			legacy, modern = shadowResp, j.resp
		}
		fields, omitted = compare(legacy, modern, s.cfg.Headers, s.ignore)
		if len(fields) > 0 {
			result = resultMismatch
		}
	}
	j.rc.results[side][result].Inc()
	span.SetAttributes(AttrShadowResult.String(resultNames[result]))
	if result == resultMismatch {
		d := Diff{
			Time:          j.at,
			Method:        j.req.Method,
			Path:          j.req.URL.Path,
			Route:         j.rc.httpRoute,
			Primary:       j.primary.String(),
			TraceID:       traceID(j.link),
			ShadowTraceID: traceID(span.SpanContext()),
			Fields:        fields,
			Omitted:       omitted,
		}
		s.samples.add(d)
	}
}

// keepHop takes name out of the Connection header of h: a proxy drops
// the headers Connection names, and a client could name ShadowHeader
// there to have its copy reach the other side as a real request.
func keepHop(h http.Header, name string) {
	vs, named := h["Connection"], false
	var keep []string
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			switch tok = strings.TrimSpace(tok); {
			case strings.EqualFold(tok, name):
				named = true
			case tok != "":
				keep = append(keep, tok)
			}
		}
	}
	switch {
	case !named:
	case len(keep) == 0:
		delete(h, "Connection")
	default:
		h["Connection"] = []string{strings.Join(keep, ", ")}
	}
}

func traceID(sc trace.SpanContext) string {
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// The error.type values of failed shadow calls.
const (
	errorTypeTimeout = "gateway.strangler.shadow_timeout"
	errorTypeClosed  = "gateway.strangler.closed"
	errorTypePanic   = "gateway.strangler.panic"
)

var errShadowPanic = errors.New("strangler: the shadow side's handler panicked")

func errorType(err error) string {
	switch {
	case errors.Is(err, errShadowPanic):
		return errorTypePanic
	case errors.Is(err, context.DeadlineExceeded):
		return errorTypeTimeout
	}
	return errorTypeClosed
}

// serveShadow serves the copy, turning a panic (ReverseProxy's
// http.ErrAbortHandler when the answer broke off, or any other) into an
// error: a worker must outlive a bad answer.
func serveShadow(h http.Handler, w http.ResponseWriter, r *http.Request) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = errShadowPanic
		}
	}()
	h.ServeHTTP(w, r)
	return nil
}

// shutdown closes the queue, waits for the workers until ctx ends, then
// cancels the calls in flight and waits for the workers to exit.
func (s *shadower) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.on.Store(false)
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.cancel()
	<-done
	return err
}

// readUpTo reads r until its end or until it has read more than n
// bytes, and reports which.
func readUpTo(r io.Reader, n int64) ([]byte, bool, error) {
	var buf bytes.Buffer
	// n+1 overflows at math.MaxInt64 ("no bound"), and a LimitReader
	// of a negative count reads nothing.
	m, err := buf.ReadFrom(io.LimitReader(r, min(n, math.MaxInt64-1)+1))
	if err != nil {
		return buf.Bytes(), false, err
	}
	return buf.Bytes(), m <= n, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type readCloser struct {
	io.Reader
	io.Closer
}

// teeWriter passes the primary's answer to the client as it is written
// and keeps a copy of it, up to limit bytes, for the comparison: the
// status, the compared headers as they were when the answer started,
// and the body. It keeps flushing, hijacking and
// http.ResponseController working through it.
type teeWriter struct {
	http.ResponseWriter
	limit    int64
	headers  []string
	status   int
	header   http.Header
	buf      *bytes.Buffer
	wrote    bool
	over     bool
	hijacked bool
}

// snapshot keeps the status and the headers the comparison needs.
func (w *teeWriter) snapshot(code int) {
	w.wrote = true
	w.status = code
	src := w.ResponseWriter.Header()
	w.header = make(http.Header, len(w.headers)+2)
	for _, h := range w.headers {
		if v, ok := src[h]; ok {
			w.header[h] = slices.Clone(v)
		}
	}
}

func (w *teeWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.snapshot(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.snapshot(http.StatusOK)
	}
	if !w.over {
		if int64(w.buf.Len()+len(p)) > w.limit {
			// Not compared: the memory goes now, not when the answer
			// ends, which for a stream may be hours away.
			w.over = true
			w.buf = new(bytes.Buffer)
		} else {
			w.buf.Write(p)
		}
	}
	return w.ResponseWriter.Write(p)
}

func (w *teeWriter) FlushError() error { return http.NewResponseController(w.ResponseWriter).Flush() }

func (w *teeWriter) Flush() { _ = w.FlushError() }

func (w *teeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter is the ResponseWriter of a shadow call: it keeps the
// answer, up to limit bytes of body, and sends nothing anywhere.
type captureWriter struct {
	header http.Header
	limit  int64
	status int
	buf    *bytes.Buffer
	over   bool
}

func (w *captureWriter) Header() http.Header { return w.header }

func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *captureWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.over {
		if int64(w.buf.Len()+len(p)) > w.limit {
			w.over = true
			w.buf.Write(p[:w.limit-int64(w.buf.Len())])
		} else {
			w.buf.Write(p)
		}
	}
	return len(p), nil
}

// Flush does nothing: there is no one to flush to. It is there so that a
// proxy that flushes finds it.
func (w *captureWriter) Flush() {}

func (w *captureWriter) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
