package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/retry"
)

// httpStep is what a scriptedHTTPServer does with one request.
type httpStep func(w http.ResponseWriter, r *http.Request)

// srvReply answers with code, body and the header's key-value pairs.
func srvReply(code int, body string, header ...string) httpStep {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// srvHangUp drops the connection without answering. With reset, the client
// sees a TCP reset ("connection reset by peer") instead of an orderly close.
func srvHangUp(reset bool) httpStep {
	return func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "cannot hijack: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}

// srvStall answers only once the client has gone away (or after a minute,
// which no test waits for).
func srvStall() httpStep {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
		w.WriteHeader(http.StatusOK)
	}
}

// seenRequest is what a scriptedHTTPServer recorded of one request.
type seenRequest struct {
	method string
	body   string
	key    string // the Idempotency-Key header
}

// scriptedHTTPServer runs its steps in turn, one per request, then answers
// 200 "ok". It counts requests and the connections they came on.
type scriptedHTTPServer struct {
	*httptest.Server
	hits   atomic.Int32
	conns  atomic.Int32 // connections opened (http.StateNew)
	closed atomic.Int32 // connections closed (http.StateClosed)

	mu    sync.Mutex
	steps []httpStep
	seen  []seenRequest
}

func newScriptedHTTPServer(t *testing.T, steps ...httpStep) *scriptedHTTPServer {
	t.Helper()
	s := &scriptedHTTPServer{steps: steps}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
		case http.StateClosed:
			s.closed.Add(1)
		}
	}
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *scriptedHTTPServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := int(s.hits.Add(1))
	s.mu.Lock()
	s.seen = append(s.seen, seenRequest{r.Method, string(body), r.Header.Get("Idempotency-Key")})
	step := srvReply(http.StatusOK, "ok")
	if n <= len(s.steps) {
		step = s.steps[n-1]
	}
	s.mu.Unlock()
	step(w, r)
}

func (s *scriptedHTTPServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// base returns the server's own client transport, whose idle connections
// are closed when the test ends.
func (s *scriptedHTTPServer) base(t *testing.T) *http.Transport {
	t.Helper()
	base := s.Client().Transport.(*http.Transport)
	t.Cleanup(base.CloseIdleConnections)
	return base
}

// transport returns a retrying transport to the server that waits 1ms
// between attempts unless opts say otherwise.
func (s *scriptedHTTPServer) transport(t *testing.T, opts ...retry.TransportOption) http.RoundTripper {
	t.Helper()
	return retry.NewTransport(s.base(t), fast(opts...)...)
}

// fast puts a constant 1ms wait, without jitter, in front of opts.
func fast(opts ...retry.TransportOption) []retry.TransportOption {
	return append([]retry.TransportOption{
		retry.WithBackoff(retry.Constant(time.Millisecond)),
		retry.WithJitter(retry.NoJitter),
	}, opts...)
}

func newRequest(t *testing.T, ctx context.Context, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	require.NoError(t, err)
	return req
}

// readBody reads resp's body whole and closes it.
func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// closeResp closes the body of a response that should not have come back.
func closeResp(resp *http.Response) {
	if resp != nil {
		_ = resp.Body.Close()
	}
}

// delayRecorder records the waits a transport announces to WithOnRetry.
type delayRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
	errs   []error
}

func (d *delayRecorder) option() retry.Option {
	return retry.WithOnRetry(func(_ context.Context, _ int, err error, delay time.Duration) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.delays = append(d.delays, delay)
		d.errs = append(d.errs, err)
	})
}

func (d *delayRecorder) get() ([]time.Duration, []error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.delays), slices.Clone(d.errs)
}

func TestTransportRetriesStatus(t *testing.T) {
	t.Parallel()
	only500 := retry.WithRetryStatus(func(code int) bool { return code == http.StatusInternalServerError })
	tests := []struct {
		name       string
		opts       []retry.TransportOption
		code       int
		wantStatus int
		wantHits   int32
	}{
		{"429", nil, http.StatusTooManyRequests, http.StatusOK, 2},
		{"502", nil, http.StatusBadGateway, http.StatusOK, 2},
		{"503", nil, http.StatusServiceUnavailable, http.StatusOK, 2},
		{"504", nil, http.StatusGatewayTimeout, http.StatusOK, 2},
		{"500 is not retried", nil, http.StatusInternalServerError, http.StatusInternalServerError, 1},
		{"404 is not retried", nil, http.StatusNotFound, http.StatusNotFound, 1},
		{"200 is not retried", nil, http.StatusOK, http.StatusOK, 1},
		{"WithRetryStatus retries 500", []retry.TransportOption{only500}, http.StatusInternalServerError, http.StatusOK, 2},
		{"WithRetryStatus spares 503", []retry.TransportOption{only500}, http.StatusServiceUnavailable, http.StatusServiceUnavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScriptedHTTPServer(t, srvReply(tt.code, "first"))
			var rec delayRecorder
			rt := s.transport(t, append(tt.opts, rec.option())...)
			resp, err := rt.RoundTrip(newRequest(t, t.Context(), http.MethodGet, s.URL, nil))
			require.NoError(t, err, "RoundTrip() error")
			body := readBody(t, resp)
			assert.Equal(t, tt.wantStatus, resp.StatusCode, "RoundTrip() status = %d; want %d", resp.StatusCode, tt.wantStatus)
			assert.Equal(t, tt.wantHits, s.hits.Load(), "server hits")
			wantBody := "ok"
			if tt.wantHits == 1 {
				wantBody = "first"
			}
			assert.Equal(t, wantBody, body, "response body")
			if _, errs := rec.get(); tt.wantHits > 1 && assert.Len(t, errs, 1, "OnRetry calls") {
				assert.ErrorContains(t, errs[0], fmt.Sprint(tt.code), "OnRetry error names the status")
			}
		})
	}
}

func TestTransportHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	date := func(d time.Duration) func() string {
		return func() string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }
	}
	seconds := func(s string) func() string { return func() string { return s } }
	tests := []struct {
		name       string
		code       int
		retryAfter func() string
		// The wait announced to WithOnRetry must be in [minWait, maxWait].
		minWait, maxWait time.Duration
		// long waits are not waited out: the test cancels the request
		// once the wait is announced.
		long bool
	}{
		{"seconds", http.StatusServiceUnavailable, seconds("7"), 7 * time.Second, 7 * time.Second, true},
		{"seconds on 429", http.StatusTooManyRequests, seconds("12"), 12 * time.Second, 12 * time.Second, true},
		{"zero seconds", http.StatusServiceUnavailable, seconds("0"), 0, 0, false},
		// HTTP dates have whole seconds, so the wait is up to 1s shorter.
		{"http date", http.StatusServiceUnavailable, date(10 * time.Second), 8 * time.Second, 10 * time.Second, true},
		{"http date in the past", http.StatusServiceUnavailable, date(-time.Hour), 0, 0, false},
		{"garbage falls back to the backoff", http.StatusServiceUnavailable, seconds("soon"), time.Millisecond, time.Millisecond, false},
		{"negative falls back to the backoff", http.StatusServiceUnavailable, seconds("-5"), time.Millisecond, time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScriptedHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
				srvReply(tt.code, "later", "Retry-After", tt.retryAfter())(w, r)
			})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var rec delayRecorder
			cancelOnLongWait := retry.WithOnRetry(func(context.Context, int, error, time.Duration) {
				if tt.long {
					cancel()
				}
			})
			rt := s.transport(t, rec.option(), cancelOnLongWait)
			start := time.Now()
			resp, err := rt.RoundTrip(newRequest(t, ctx, http.MethodGet, s.URL, nil))
			elapsed := time.Since(start)

			delays, _ := rec.get()
			require.Len(t, delays, 1, "OnRetry calls")
			assert.True(t, delays[0] >= tt.minWait && delays[0] <= tt.maxWait,
				"OnRetry delay = %v; want in [%v, %v]", delays[0], tt.minWait, tt.maxWait)
			if tt.long {
				closeResp(resp)
				require.ErrorIs(t, err, context.Canceled, "RoundTrip() = %v; want the caller's cancellation", err)
				assert.Nil(t, resp, "no response once the caller gave up")
				assert.Equal(t, int32(1), s.hits.Load(), "server hits")
				assert.Less(t, elapsed, time.Second, "cancellation ends the wait at once")
				return
			}
			require.NoError(t, err, "RoundTrip() error")
			assert.Equal(t, "ok", readBody(t, resp))
			assert.Equal(t, int32(2), s.hits.Load(), "server hits")
		})
	}
}

func TestTransportHandsBackRetryAfterPastTheMaximum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       []retry.TransportOption
		retryAfter string
		wantHits   int32
	}{
		{"seconds past WithMaxRetryAfter", []retry.TransportOption{retry.WithMaxRetryAfter(time.Second)}, "5", 1},
		{"seconds past the default", nil, "31", 1},
		{"http date past WithMaxRetryAfter", []retry.TransportOption{retry.WithMaxRetryAfter(time.Second)},
			time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), 1},
		{"huge seconds", nil, "99999999999999999999999", 1},
		{"WithMaxRetryAfter(0) refuses any wait", []retry.TransportOption{retry.WithMaxRetryAfter(0)}, "1", 1},
		{"WithMaxRetryAfter(0) allows no wait", []retry.TransportOption{retry.WithMaxRetryAfter(0)}, "0", 2},
		// WithMaxRetryAfter bounds only the waits servers ask for: a
		// response without Retry-After is retried after the backoff.
		{"WithMaxRetryAfter(0) without Retry-After", []retry.TransportOption{retry.WithMaxRetryAfter(0)}, "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScriptedHTTPServer(t, srvReply(http.StatusServiceUnavailable, "come back later", "Retry-After", tt.retryAfter))
			var rec delayRecorder
			rt := s.transport(t, append(tt.opts, rec.option())...)
			resp, err := rt.RoundTrip(newRequest(t, t.Context(), http.MethodGet, s.URL, nil))
			require.NoError(t, err, "RoundTrip() error")
			body := readBody(t, resp)
			assert.Equal(t, tt.wantHits, s.hits.Load(), "server hits")
			if tt.wantHits == 1 {
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "RoundTrip() status = %d; want 503", resp.StatusCode)
				assert.Equal(t, "come back later", body, "the response is handed back untouched")
				assert.Equal(t, tt.retryAfter, resp.Header.Get("Retry-After"))
				delays, _ := rec.get()
				assert.Empty(t, delays, "OnRetry calls")
			} else {
				assert.Equal(t, http.StatusOK, resp.StatusCode, "RoundTrip() status = %d; want 200", resp.StatusCode)
			}
		})
	}
}

func TestTransportRetriesDroppedConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		method   string
		steps    []httpStep
		wantHits int32
		wantErr  error // nil: a 200 response
	}{
		{"GET closed", http.MethodGet, []httpStep{srvHangUp(false)}, 2, nil},
		{"GET reset", http.MethodGet, []httpStep{srvHangUp(true)}, 2, nil},
		{"GET closed twice", http.MethodGet, []httpStep{srvHangUp(false), srvHangUp(true)}, 3, nil},
		{"GET always closed", http.MethodGet, []httpStep{srvHangUp(false), srvHangUp(true), srvHangUp(false)}, 3, retry.ErrExhausted},
		{"POST closed is not retried", http.MethodPost, []httpStep{srvHangUp(false)}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScriptedHTTPServer(t, tt.steps...)
			rt := s.transport(t)
			resp, err := rt.RoundTrip(newRequest(t, t.Context(), tt.method, s.URL, nil))
			assert.Equal(t, tt.wantHits, s.hits.Load(), "server hits")
			switch {
			case tt.wantErr != nil:
				closeResp(resp)
				require.ErrorIs(t, err, tt.wantErr, "RoundTrip() = %v; want %v", err, tt.wantErr)
				var e *retry.Error
				require.ErrorAs(t, err, &e)
				assert.Equal(t, int(tt.wantHits), e.Attempts, "Error.Attempts")
			case tt.wantHits == 1:
				closeResp(resp)
				require.Error(t, err, "RoundTrip() = %v; want the connection's error", resp)
				var e *retry.Error
				assert.False(t, errors.As(err, &e), "RoundTrip() = %v; want the transport's own error, not retried", err)
			default:
				require.NoError(t, err, "RoundTrip() error")
				assert.Equal(t, "ok", readBody(t, resp))
			}
		})
	}
}

func TestTransportDoesNotRetryHopelessErrors(t *testing.T) {
	t.Parallel()
	t.Run("unsupported scheme", func(t *testing.T) {
		t.Parallel()
		var rec delayRecorder
		base := &http.Transport{}
		t.Cleanup(base.CloseIdleConnections)
		rt := retry.NewTransport(base, fast(rec.option())...)
		resp, err := rt.RoundTrip(newRequest(t, t.Context(), http.MethodGet, "ftp://example.invalid/", nil))
		closeResp(resp)
		require.ErrorContains(t, err, "unsupported protocol scheme")
		delays, _ := rec.get()
		assert.Empty(t, delays, "OnRetry calls")
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		var conns atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the TLS handshake errors
		srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		var rec delayRecorder
		base := &http.Transport{} // does not trust the server's certificate
		t.Cleanup(base.CloseIdleConnections)
		rt := retry.NewTransport(base, fast(rec.option())...)
		resp, err := rt.RoundTrip(newRequest(t, t.Context(), http.MethodGet, srv.URL, nil))
		closeResp(resp)
		require.Error(t, err)
		delays, _ := rec.get()
		assert.Empty(t, delays, "OnRetry calls")
		assert.Equal(t, int32(1), conns.Load(), "connections")
	})
}

func TestTransportStopsAtTheDeadline(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	tests := []struct {
		name     string
		steps    []httpStep
		wantHits int32
	}{
		{"slow first attempt", []httpStep{srvStall()}, 1},
		{"slow retry", []httpStep{srvReply(http.StatusServiceUnavailable, "busy"), srvStall()}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScriptedHTTPServer(t, tt.steps...)
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			rt := s.transport(t, retry.WithMaxAttempts(10))
			start := time.Now()
			resp, err := rt.RoundTrip(newRequest(t, ctx, http.MethodGet, s.URL, nil))
			elapsed := time.Since(start)
			closeResp(resp)
			require.ErrorIs(t, err, context.DeadlineExceeded, "RoundTrip() = %v; want %v", err, context.DeadlineExceeded)
			assert.Nil(t, resp)
			assert.Less(t, elapsed, timeout+time.Second, "RoundTrip returns promptly at the deadline")
			time.Sleep(20 * time.Millisecond)
			assert.Equal(t, tt.wantHits, s.hits.Load(), "no attempt after the deadline")
		})
	}
	t.Run("wait past the deadline", func(t *testing.T) {
		t.Parallel()
		s := newScriptedHTTPServer(t, srvReply(http.StatusServiceUnavailable, "busy", "Retry-After", "5"))
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		rt := s.transport(t)
		start := time.Now()
		resp, err := rt.RoundTrip(newRequest(t, ctx, http.MethodGet, s.URL, nil))
		elapsed := time.Since(start)
		require.NoError(t, err, "RoundTrip() error")
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "RoundTrip() status = %d; want 503", resp.StatusCode)
		assert.Equal(t, "busy", readBody(t, resp))
		assert.Less(t, elapsed, time.Second, "a wait that would end past the deadline is not started")
		assert.Equal(t, int32(1), s.hits.Load(), "server hits")
	})
}

func TestTransportRetriesOnlyReplayableMethods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method   string
		key      string
		opts     []retry.TransportOption
		wantHits int32
	}{
		{http.MethodGet, "", nil, 2},
		{http.MethodHead, "", nil, 2},
		{http.MethodOptions, "", nil, 2},
		{http.MethodTrace, "", nil, 2},
		{http.MethodPut, "", nil, 2},
		{http.MethodDelete, "", nil, 2},
		{http.MethodPost, "", nil, 1},
		{http.MethodPatch, "", nil, 1},
		{http.MethodPost, "order-42", nil, 2},
		{http.MethodPatch, "order-42", nil, 2},
		{http.MethodPost, "", []retry.TransportOption{retry.WithAnyMethod()}, 2},
		{http.MethodPatch, "", []retry.TransportOption{retry.WithAnyMethod()}, 2},
	}
	for _, tt := range tests {
		name := tt.method
		if tt.key != "" {
			name += " with Idempotency-Key"
		}
		if tt.opts != nil {
			name += " WithAnyMethod"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newScriptedHTTPServer(t, srvReply(http.StatusServiceUnavailable, "busy"))
			rt := s.transport(t, tt.opts...)
			req := newRequest(t, t.Context(), tt.method, s.URL, nil)
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			resp, err := rt.RoundTrip(req)
			require.NoError(t, err, "RoundTrip() error")
			readBody(t, resp)
			wantStatus := http.StatusOK
			if tt.wantHits == 1 {
				wantStatus = http.StatusServiceUnavailable
			}
			assert.Equal(t, wantStatus, resp.StatusCode, "RoundTrip() status = %d; want %d", resp.StatusCode, wantStatus)
			assert.Equal(t, tt.wantHits, s.hits.Load(), "server hits")
			for _, r := range s.requests() {
				assert.Equal(t, tt.key, r.key, "Idempotency-Key on every attempt")
			}
		})
	}
}

func TestTransportReplaysBodies(t *testing.T) {
	t.Parallel()
	payload := strings.Repeat("payload-", 4096) // 32 KiB
	tests := []struct {
		name   string
		method string
		body   func() io.Reader
		key    string
		opts   []retry.TransportOption
	}{
		{"PUT strings.Reader", http.MethodPut, func() io.Reader { return strings.NewReader(payload) }, "", nil},
		{"POST bytes.Reader with Idempotency-Key", http.MethodPost, func() io.Reader { return bytes.NewReader([]byte(payload)) }, "k1", nil},
		{"PATCH bytes.Buffer WithAnyMethod", http.MethodPatch, func() io.Reader { return bytes.NewBufferString(payload) }, "", []retry.TransportOption{retry.WithAnyMethod()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScriptedHTTPServer(t,
				srvReply(http.StatusServiceUnavailable, "busy"),
				srvReply(http.StatusBadGateway, "bad gateway"))
			rt := s.transport(t, tt.opts...)
			req := newRequest(t, t.Context(), tt.method, s.URL, tt.body())
			require.NotNil(t, req.GetBody, "http.NewRequest sets GetBody for %T", tt.body())
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			resp, err := rt.RoundTrip(req)
			require.NoError(t, err, "RoundTrip() error")
			assert.Equal(t, "ok", readBody(t, resp))
			seen := s.requests()
			require.Len(t, seen, 3, "attempts")
			for i, r := range seen {
				assert.Equal(t, tt.method, r.method, "attempt %d method", i+1)
				assert.True(t, r.body == payload, "attempt %d body: %d bytes; want the %d bytes of the payload", i+1, len(r.body), len(payload))
			}
		})
	}
}

func TestTransportSendsUnreplayableBodiesOnce(t *testing.T) {
	t.Parallel()
	s := newScriptedHTTPServer(t, srvReply(http.StatusServiceUnavailable, "busy"))
	var rec delayRecorder
	rt := s.transport(t, rec.option())
	req := newRequest(t, t.Context(), http.MethodPut, s.URL, nil)
	req.Body = io.NopCloser(strings.NewReader("once"))
	require.Nil(t, req.GetBody)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err, "RoundTrip() error")
	assert.Equal(t, "busy", readBody(t, resp), "the 503 is handed back")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "RoundTrip() status = %d; want 503", resp.StatusCode)
	assert.Equal(t, []seenRequest{{http.MethodPut, "once", ""}}, s.requests(), "sent once")
	delays, _ := rec.get()
	assert.Empty(t, delays, "OnRetry calls")
}

func TestTransportGivesUpWhenTheBodyCannotBeRecreated(t *testing.T) {
	t.Parallel()
	s := newScriptedHTTPServer(t, srvReply(http.StatusServiceUnavailable, "busy"))
	rt := s.transport(t, retry.WithMaxAttempts(5))
	req := newRequest(t, t.Context(), http.MethodPut, s.URL, strings.NewReader("data"))
	errGone := errors.New("body gone")
	req.GetBody = func() (io.ReadCloser, error) { return nil, errGone }
	resp, err := rt.RoundTrip(req)
	closeResp(resp)
	require.ErrorIs(t, err, errGone, "RoundTrip() = %v; want %v", err, errGone)
	assert.ErrorContains(t, err, "recreating the request body")
	assert.Equal(t, int32(1), s.hits.Load(), "server hits")
}

func TestTransportReusesConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		bodySize  int
		wantConns int32
	}{
		{"small bodies are drained", 64, 1},
		{"bodies past the drain limit close the connection", 1 << 20, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := strings.Repeat("x", tt.bodySize)
			s := newScriptedHTTPServer(t,
				srvReply(http.StatusServiceUnavailable, body),
				srvReply(http.StatusTooManyRequests, body),
				srvReply(http.StatusServiceUnavailable, body))
			rt := s.transport(t, retry.WithMaxAttempts(4))
			resp, err := rt.RoundTrip(newRequest(t, t.Context(), http.MethodGet, s.URL, nil))
			require.NoError(t, err, "RoundTrip() error")
			assert.Equal(t, "ok", readBody(t, resp))
			assert.Equal(t, int32(4), s.hits.Load(), "server hits")
			assert.Equal(t, tt.wantConns, s.conns.Load(), "connections")
		})
	}
}

func TestTransportHandsBackTheLastResponseUntouched(t *testing.T) {
	t.Parallel()
	last := strings.Repeat("the last body ", 20000) // 280 KB, past the drain limit
	s := newScriptedHTTPServer(t,
		srvReply(http.StatusServiceUnavailable, "first", "X-Attempt", "1"),
		srvReply(http.StatusServiceUnavailable, "second", "X-Attempt", "2"),
		srvReply(http.StatusServiceUnavailable, last, "X-Attempt", "3"))
	rt := s.transport(t)
	resp, err := rt.RoundTrip(newRequest(t, t.Context(), http.MethodGet, s.URL, nil))
	require.NoError(t, err, "RoundTrip() error")
	body := readBody(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "RoundTrip() status = %d; want 503", resp.StatusCode)
	assert.Equal(t, "3", resp.Header.Get("X-Attempt"), "the last attempt's response")
	assert.True(t, body == last, "body: %d bytes; want all %d bytes of the last response", len(body), len(last))
	assert.Equal(t, int32(3), s.hits.Load(), "server hits")
}

func TestTransportStopsAtAnOpenBreaker(t *testing.T) {
	t.Parallel()
	steps := make([]httpStep, 10)
	for i := range steps {
		steps[i] = srvReply(http.StatusServiceUnavailable, "down")
	}
	s := newScriptedHTTPServer(t, steps...)
	breaker := circuitbreaker.NewTransport(s.base(t),
		circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Minute))
	client := &http.Client{Transport: retry.NewTransport(breaker, fast(retry.WithMaxAttempts(5))...)}

	resp, err := client.Get(s.URL)
	closeResp(resp)
	require.ErrorIs(t, err, circuitbreaker.ErrOpen, "Get() = %v; want %v", err, circuitbreaker.ErrOpen)
	assert.Equal(t, int32(1), s.hits.Load(), "the breaker opened on the first 503 and ended the retries")
	var e *retry.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 2, e.Attempts, "Error.Attempts")

	resp, err = client.Get(s.URL)
	closeResp(resp)
	require.ErrorIs(t, err, circuitbreaker.ErrOpen, "Get() = %v; want %v", err, circuitbreaker.ErrOpen)
	assert.Equal(t, int32(1), s.hits.Load(), "an open breaker is not retried")
}

func TestTransportClientTraceSetsResendCount(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	s := newScriptedHTTPServer(t,
		srvReply(http.StatusServiceUnavailable, "busy"),
		srvReply(http.StatusBadGateway, "bad gateway"))
	next := otelhttp.NewTransport(s.base(t),
		otelhttp.WithClientTrace(retry.ClientTrace),
		otelhttp.WithTracerProvider(p.TracerProvider),
		otelhttp.WithMeterProvider(p.MeterProvider))
	rt := retry.NewTransport(next, fast(retry.WithTracerProvider(p.TracerProvider), retry.WithMeterProvider(p.MeterProvider))...)
	resp, err := rt.RoundTrip(newRequest(t, t.Context(), http.MethodGet, s.URL, nil))
	require.NoError(t, err, "RoundTrip() error")
	assert.Equal(t, "ok", readBody(t, resp))

	var attempts []sdktrace.ReadOnlySpan
	var retrySpan sdktrace.ReadOnlySpan
	for _, sp := range p.Spans.Ended() {
		switch {
		case sp.SpanKind() == trace.SpanKindClient:
			attempts = append(attempts, sp)
		case sp.Name() == "retry":
			retrySpan = sp
		}
	}
	slices.SortFunc(attempts, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	require.Len(t, attempts, 3, "otelhttp spans, one per attempt")
	require.NotNil(t, retrySpan, "the retry span")
	for i, sp := range attempts {
		got, ok := spanAttr(sp, semconv.HTTPRequestResendCountKey)
		if i == 0 {
			assert.False(t, ok, "attempt 1: http.request.resend_count = %v; want none", got.String())
			continue
		}
		if assert.True(t, ok, "attempt %d: no http.request.resend_count", i+1) {
			assert.Equal(t, int64(i), got.AsInt64(), "attempt %d: http.request.resend_count = %d; want %d", i+1, got.AsInt64(), i)
		}
		assert.Equal(t, retrySpan.SpanContext().SpanID(), sp.Parent().SpanID(), "attempt %d is a child of the retry span", i+1)
	}
}

func TestClientTraceWithoutRetry(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	ctx, span := p.TracerProvider.Tracer("test").Start(t.Context(), "call")
	assert.NotNil(t, retry.ClientTrace(ctx), "ClientTrace() = nil; want a trace")
	span.End()
	_, ok := spanAttr(p.Spans.Ended()[0], semconv.HTTPRequestResendCountKey)
	assert.False(t, ok, "a first attempt has no http.request.resend_count")
	assert.NotNil(t, retry.ClientTrace(context.Background()), "ClientTrace() = nil without a span; want a trace")
}

func spanAttr(sp sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range sp.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func TestTransportNilNextIsTheDefaultTransport(t *testing.T) {
	t.Parallel()
	s := newScriptedHTTPServer(t, srvReply(http.StatusServiceUnavailable, "busy"))
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	rt := retry.NewTransport(nil, fast()...)
	resp, err := rt.RoundTrip(newRequest(t, t.Context(), http.MethodGet, s.URL, nil))
	require.NoError(t, err, "RoundTrip() error")
	assert.Equal(t, "ok", readBody(t, resp))
	assert.Equal(t, int32(2), s.hits.Load(), "server hits")
}

func TestTransportCloseIdleConnections(t *testing.T) {
	t.Parallel()
	s := newScriptedHTTPServer(t)
	client := &http.Client{Transport: s.transport(t)}
	resp, err := client.Get(s.URL)
	require.NoError(t, err, "Get() error")
	readBody(t, resp)
	client.CloseIdleConnections()
	assert.Eventually(t, func() bool { return s.closed.Load() == 1 }, 2*time.Second, 5*time.Millisecond,
		"http.Client.CloseIdleConnections reaches the next transport")
}

func TestTransportConcurrentUse(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	base := srv.Client().Transport.(*http.Transport)
	t.Cleanup(base.CloseIdleConnections)
	rt := retry.NewTransport(base, fast()...)

	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			path := fmt.Sprintf("/%d", i)
			resp, err := rt.RoundTrip(newRequest(t, t.Context(), http.MethodGet, srv.URL+path, nil))
			if !assert.NoError(t, err, "RoundTrip(%s) error", path) {
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body) // not readBody: no FailNow off the test goroutine
			assert.NoError(t, err)
			assert.Equal(t, path, string(body), "RoundTrip(%s) body", path)
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		assert.Equal(t, 3, seen[fmt.Sprintf("/%d", i)], "attempts at /%d", i)
	}
}

func TestNewTransportPanicsOnInvalidOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []retry.TransportOption
		want []string
	}{
		{"nil retry status", []retry.TransportOption{retry.WithRetryStatus(nil)}, []string{"retry: NewTransport", "WithRetryStatus(nil)"}},
		{"negative max Retry-After", []retry.TransportOption{retry.WithMaxRetryAfter(-time.Second)}, []string{"retry: NewTransport", "WithMaxRetryAfter(-1s)"}},
		{"both", []retry.TransportOption{retry.WithRetryStatus(nil), retry.WithMaxRetryAfter(-time.Second)}, []string{"WithRetryStatus(nil)", "WithMaxRetryAfter(-1s)"}},
		{"retrier option", []retry.TransportOption{retry.WithMaxAttempts(0)}, []string{"WithMaxAttempts(0)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got any
			func() {
				defer func() { got = recover() }()
				retry.NewTransport(http.DefaultTransport, tt.opts...)
			}()
			require.NotNil(t, got, "NewTransport() did not panic")
			msg := fmt.Sprint(got)
			for _, w := range tt.want {
				assert.Contains(t, msg, w, "NewTransport() panicked with %q; want it to name %q", msg, w)
			}
		})
	}
}

// fakeBody records when it was closed, on the bubble's clock.
type fakeBody struct {
	io.Reader
	closedAt *time.Time
}

func (b fakeBody) Close() error { *b.closedAt = time.Now(); return nil }

type scriptedRoundTripper struct {
	starts   []time.Time
	closed   []time.Time
	statuses []int
}

func (s *scriptedRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	i := len(s.starts)
	s.starts = append(s.starts, time.Now())
	s.closed = append(s.closed, time.Time{})
	return &http.Response{
		StatusCode: s.statuses[i], Status: http.StatusText(s.statuses[i]),
		Header:  http.Header{"Retry-After": {"2"}},
		Body:    fakeBody{strings.NewReader("body"), &s.closed[i]},
		Request: req,
	}, nil
}

// TestRetriedResponseIsDrainedBeforeTheWait protects connection reuse
// during long waits: a retried response's body is closed before the
// retrier sleeps, after the user's hooks have seen it.
func TestRetriedResponseIsDrainedBeforeTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		next := &scriptedRoundTripper{statuses: []int{503, 200}}
		var hookStatus int
		var hookRetryAfter string
		rt := retry.NewTransport(next, retry.WithOnRetry(func(_ context.Context, _ int, err error, _ time.Duration) {
			var se *retry.StatusError
			if errors.As(err, &se) {
				hookStatus, hookRetryAfter = se.Response.StatusCode, se.Response.Header.Get("Retry-After")
			}
		}))
		start := time.Now()
		resp, err := rt.RoundTrip(httptest.NewRequest(http.MethodGet, "http://dep.example/", nil))
		require.NoError(t, err)
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, 503, hookStatus, "hooks see the retried response")
		assert.Equal(t, "2", hookRetryAfter)
		require.Len(t, next.starts, 2)
		assert.Equal(t, start, next.closed[0], "the 503 is closed before the wait")
		assert.Equal(t, start.Add(2*time.Second), next.starts[1])
		assert.True(t, next.closed[1].IsZero(), "the response handed back is untouched")
	})
}
