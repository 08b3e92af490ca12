package circuitbreaker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/circuitbreaker"
)

// scriptedServer answers with the status codes it is given, in turn, and
// counts the requests that reach it.
type scriptedServer struct {
	*httptest.Server
	hits  atomic.Int32
	codes chan int
}

func newScriptedServer(t *testing.T) *scriptedServer {
	s := &scriptedServer{codes: make(chan int, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		code := http.StatusOK
		select {
		case code = <-s.codes:
		default:
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "body "+http.StatusText(code))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptedServer) script(codes ...int) {
	for _, c := range codes {
		s.codes <- c
	}
}

func TestTransportCountsStatuses(t *testing.T) {
	tests := []struct {
		name     string
		opts     []circuitbreaker.TransportOption
		codes    []int
		wantOpen bool
	}{
		{"5xx fail", nil, []int{500, 502, 503}, true},
		{"429 fails", nil, []int{429, 429, 429}, true},
		{"4xx succeed", nil, []int{400, 404, 409}, false},
		{"2xx and 3xx succeed", nil, []int{200, 204, 304}, false},
		{"custom", []circuitbreaker.TransportOption{circuitbreaker.WithFailureStatus(func(c int) bool { return c == 404 })}, []int{404, 404, 404}, true},
		{"custom spares 5xx", []circuitbreaker.TransportOption{circuitbreaker.WithFailureStatus(func(c int) bool { return c == 404 })}, []int{500, 500, 500}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptedServer(t)
			g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(3))
			client := &http.Client{Transport: circuitbreaker.NewTransport(srv.Client().Transport, append(tt.opts, circuitbreaker.WithGroup(g))...)}
			srv.script(tt.codes...)
			for range tt.codes {
				resp, err := client.Get(srv.URL)
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
					assert.Equal(t, "body "+http.StatusText(resp.StatusCode), string(body), "the body reaches the caller untouched")
				}
			}
			host := strings.TrimPrefix(srv.URL, "http://")
			if got := g.Get(host).State() == circuitbreaker.StateOpen; got != tt.wantOpen {
				t.Errorf("open after %v = %v; want %v", tt.codes, got, tt.wantOpen)
			}
		})
	}
}

func TestTransportRejectsWithoutTouchingTheNetwork(t *testing.T) {
	srv := newScriptedServer(t)
	client := &http.Client{Transport: circuitbreaker.NewTransport(srv.Client().Transport, circuitbreaker.WithConsecutiveFailures(2))}
	srv.script(503, 503)
	for range 2 {
		resp, err := client.Get(srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
	}
	body := &closeRecorder{Reader: strings.NewReader("payload")}
	req, err := http.NewRequest(http.MethodPost, srv.URL, body)
	require.NoError(t, err)
	_, err = client.Do(req)
	require.ErrorIs(t, err, circuitbreaker.ErrOpen)
	var re *circuitbreaker.RejectedError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, strings.TrimPrefix(srv.URL, "http://"), re.Breaker)
	assert.Equal(t, int32(2), srv.hits.Load(), "a rejected request must not reach the server")
	assert.True(t, body.closed.Load(), "the transport must close the request body of a rejected request")
}

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

func TestTransportPerHost(t *testing.T) {
	bad, good := newScriptedServer(t), newScriptedServer(t)
	client := &http.Client{Transport: circuitbreaker.NewTransport(nil, circuitbreaker.WithConsecutiveFailures(1))}
	bad.script(500)
	resp, err := client.Get(bad.URL)
	require.NoError(t, err)
	resp.Body.Close()
	_, err = client.Get(bad.URL)
	require.ErrorIs(t, err, circuitbreaker.ErrOpen)
	resp, err = client.Get(good.URL)
	require.NoError(t, err, "another host has its own breaker")
	resp.Body.Close()
}

func TestTransportKey(t *testing.T) {
	srv := newScriptedServer(t)
	g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(1))
	client := &http.Client{Transport: circuitbreaker.NewTransport(nil, circuitbreaker.WithGroup(g),
		circuitbreaker.WithKey(func(r *http.Request) string { return r.URL.Path }))}
	srv.script(500)
	resp, err := client.Get(srv.URL + "/a")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, circuitbreaker.StateOpen, g.Get("/a").State())
	assert.Equal(t, circuitbreaker.StateClosed, g.Get("/b").State())
}

func TestTransportErrors(t *testing.T) {
	srv := newScriptedServer(t)
	g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(1))
	client := &http.Client{Transport: circuitbreaker.NewTransport(nil, circuitbreaker.WithGroup(g))}
	host := strings.TrimPrefix(srv.URL, "http://")

	// The caller giving up is not the server's fault.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	_, err := client.Do(req)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, circuitbreaker.StateClosed, g.Get(host).State())

	// A connection refused is.
	srv.Close()
	_, err = client.Get(srv.URL)
	require.Error(t, err)
	assert.Equal(t, circuitbreaker.StateOpen, g.Get(host).State())
}

// The caller giving up says nothing about the host, even when it cancels
// with a cause (as errgroup.WithContext does when a sibling goroutine
// fails), for which net/http returns the cause, not context.Canceled: the
// in-flight request to a healthy host does not count as a failure, and
// with WithConsecutiveFailures(1) the host's breaker stays closed.
func TestTransportIgnoresCallerCancelWithCause(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select { // a healthy but slow answer; the caller gives up first
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}))
	defer srv.Close()
	g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(1))
	client := &http.Client{Transport: circuitbreaker.NewTransport(srv.Client().Transport, circuitbreaker.WithGroup(g))}
	defer client.CloseIdleConnections()

	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("sibling request failed")
	go func() {
		<-started
		cancel(cause) // what errgroup does
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	_, err := client.Do(req)
	require.ErrorIs(t, err, cause, "the caller gets the cause back")
	host := strings.TrimPrefix(srv.URL, "http://")
	s := g.Get(host).Snapshot()
	assert.Equal(t, circuitbreaker.StateClosed, s.State)
	assert.Zero(t, s.Failures)
}

type panicTransport struct{}

func (panicTransport) RoundTrip(*http.Request) (*http.Response, error) { panic("transport bug") }

func TestTransportPanicCountsAsFailure(t *testing.T) {
	g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(1))
	rt := circuitbreaker.NewTransport(panicTransport{}, circuitbreaker.WithGroup(g))
	req := httptest.NewRequest(http.MethodGet, "http://dep.example/", nil)
	assert.Panics(t, func() { _, _ = rt.RoundTrip(req) })
	assert.Equal(t, circuitbreaker.StateOpen, g.Get("dep.example").State())
}

func TestMiddleware(t *testing.T) {
	b := circuitbreaker.New("orders", circuitbreaker.WithConsecutiveFailures(2), circuitbreaker.WithOpenDuration(10*time.Second))
	var calls atomic.Int32
	code := atomic.Int32{}
	code.Store(http.StatusInternalServerError)
	h := circuitbreaker.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(int(code.Load()))
	}))
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		return rec
	}
	assert.Equal(t, 500, serve().Code)
	assert.Equal(t, 500, serve().Code)
	rec := serve()
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "10", rec.Header().Get("Retry-After"))
	assert.Contains(t, rec.Body.String(), `"orders"`)
	assert.Equal(t, int32(2), calls.Load(), "the handler is not called while open")

	b.Reset()
	code.Store(http.StatusNotFound)
	for range 3 {
		assert.Equal(t, 404, serve().Code)
	}
	assert.Equal(t, circuitbreaker.StateClosed, b.State(), "4xx are the client's own mistakes")
}

func TestMiddlewareImplicitStatusAndFlush(t *testing.T) {
	b := circuitbreaker.New("orders", circuitbreaker.WithConsecutiveFailures(1))
	h := circuitbreaker.Middleware(b, circuitbreaker.WithFailureStatus(func(c int) bool { return c != http.StatusOK }))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello")
			require.NoError(t, http.NewResponseController(w).Flush())
			w.WriteHeader(http.StatusTeapot) // too late: the status is 200
		}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.True(t, rec.Flushed, "Flush must reach the underlying writer")
	assert.Equal(t, circuitbreaker.StateClosed, b.State())
}

func TestMiddlewarePanics(t *testing.T) {
	b := circuitbreaker.New("orders", circuitbreaker.WithConsecutiveFailures(1))
	abort := circuitbreaker.Middleware(b)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() {
		abort.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	})
	assert.Equal(t, circuitbreaker.StateClosed, b.State(), "an aborted handler counts for nothing")

	bug := circuitbreaker.Middleware(b)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(errors.New("bug")) }))
	assert.Panics(t, func() { bug.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)) })
	assert.Equal(t, circuitbreaker.StateOpen, b.State())
}

type idleCloser struct {
	http.RoundTripper
	closed bool
}

func (c *idleCloser) CloseIdleConnections() { c.closed = true }

func TestTransportCloseIdleConnections(t *testing.T) {
	next := &idleCloser{RoundTripper: http.DefaultTransport}
	client := &http.Client{Transport: circuitbreaker.NewTransport(next)}
	client.CloseIdleConnections()
	assert.True(t, next.closed, "CloseIdleConnections must reach the next transport")
}
