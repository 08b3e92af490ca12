package aggregate_test

// Second reading of 48f51c2 (aggregate: fixes from an audit).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// serveAsync serves one request through mux in a goroutine of its own,
// reporting a panic of the handler as a value rather than ending the
// test binary.
func serveAsync(mux http.Handler, req *http.Request) <-chan asyncResult {
	out := make(chan asyncResult, 1)
	go func() {
		w := httptest.NewRecorder()
		defer func() {
			if v := recover(); v != nil {
				out <- asyncResult{panicked: fmt.Sprint(v)}
				return
			}
			out <- asyncResult{w: w}
		}()
		mux.ServeHTTP(w, req)
	}()
	return out
}

type asyncResult struct {
	w        *httptest.ResponseRecorder
	panicked string
}

func (r asyncResult) String() string {
	if r.panicked != "" {
		return "panic: " + r.panicked
	}
	return fmt.Sprintf("%d %s", r.w.Code, strings.TrimSpace(r.w.Body.String()))
}

func waitAnswer(t *testing.T, ch <-chan asyncResult, within time.Duration, what string) asyncResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(within):
		t.Fatalf("%s: no answer within %v", what, within)
		return asyncResult{}
	}
}

// TestExpiredFlightTakesNoNewRequests: a shared aggregation whose
// deadline (its leader's) has passed but which has not landed, because
// a call in it does not heed its context, still takes the requests that
// arrive after that deadline. Each newcomer, with a whole route Timeout
// of its own, makes no call: it waits its deadline plus lateAnswer and
// gets 504, for as long as the hung call lasts (for ever, if it never
// returns). The key is poisoned although the table knows the flight's
// deadline.
func TestExpiredFlightTakesNoNewRequests(t *testing.T) {
	release, expired := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	var calls atomic.Int64
	rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if calls.Add(1) == 1 {
			<-req.Context().Done()
			close(expired)
			<-release // deaf to its context from here: a hung call
			return nil, req.Context().Err()
		}
		return jsonResponse(req, `{"id":"7"}`), nil
	})
	h, err := aggregate.New([]aggregate.Part{{Name: "order", Upstream: "orders", Path: "/orders/{id}"}},
		aggregate.WithTransport(rt))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orders/{id}", h)

	ctx1, cancel1 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel1()
	first := serveAsync(mux, httptest.NewRequestWithContext(ctx1, http.MethodGet, "/orders/7", nil))
	<-expired // the flight's deadline has passed; its call hangs

	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	second := waitAnswer(t, serveAsync(mux, httptest.NewRequestWithContext(ctx2, http.MethodGet, "/orders/7", nil)),
		10*time.Second, "request after the flight's deadline")
	if second.panicked != "" || second.w.Code != http.StatusOK || second.w.Body.String() != `{"order":{"id":"7"}}` {
		t.Errorf("request arriving after the shared flight's deadline passed (flight hung): %v after %d call(s); "+
			"want 200 from an aggregation of its own", second, calls.Load())
	}
	unblock()
	waitAnswer(t, first, 10*time.Second, "leader")
}

// TestUnsafeRequestBoundedPastDeadline: the commit bounds a GET
// whose aggregation hangs (a call deaf to its context) at its deadline
// plus lateAnswer, but a request that is not collapsed (a POST with
// WithUnsafeMethods, or any request of a handler whose parts may
// write) runs the aggregation on its own goroutine and waits for the
// hung call for ever.
func TestUnsafeRequestBoundedPastDeadline(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	h, err := aggregate.New([]aggregate.Part{{Name: "order", Upstream: "orders", Path: "/orders/{id}"}},
		aggregate.WithUnsafeMethods(),
		aggregate.WithTransport(roundTripFunc(func(req *http.Request) (*http.Response, error) {
			<-release // deaf to the request's context
			return nil, context.Canceled
		})))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/orders/{id}", h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	ch := serveAsync(mux, httptest.NewRequestWithContext(ctx, http.MethodPost, "/orders/7", strings.NewReader("{}")))
	select {
	case r := <-ch:
		if r.panicked != "" || r.w.Code != http.StatusGatewayTimeout {
			t.Errorf("POST with a hung part: %v; want 504", r)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("POST: no answer 3s after its deadline (30ms); a GET gets its 504 after lateAnswer (1s)")
		unblock()
		<-ch
	}
}

// TestGoexitInShapeLandsAnswer: a Shape (or Request function) that
// calls runtime.Goexit (t.FailNow in a test double, say) ends the
// flight's goroutine without a panic: its deferred land publishes a nil
// response, and every request waiting on it dereferences nil in
// ServeHTTP. singleflight handled Goexit (its waiters timed out); the
// flight should land a 500 like a panic's.
func TestGoexitInShapeLandsAnswer(t *testing.T) {
	rt := roundTripFunc(func(req *http.Request) (*http.Response, error) { return jsonResponse(req, `{"id":"7"}`), nil })
	h, err := aggregate.New([]aggregate.Part{{Name: "order", Upstream: "orders", Path: "/orders/{id}"}},
		aggregate.WithTransport(rt),
		aggregate.WithShapes(nil, map[string]aggregate.Shape{"": func(doc map[string]any) map[string]any {
			runtime.Goexit()
			return doc
		}}))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orders/{id}", h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := waitAnswer(t, serveAsync(mux, httptest.NewRequestWithContext(ctx, http.MethodGet, "/orders/7", nil)),
		10*time.Second, "Goexit in a Shape")
	if r.panicked != "" || r.w.Code != http.StatusInternalServerError {
		t.Errorf("Shape that calls runtime.Goexit: %v; want 500 {\"_error\":\"internal\"}", r)
	}
}

// TestPathWithFragmentRefused: New now refuses a Path that is no
// URL path and query (Part.Path: "must ... parse as a URL's path and
// query"), but takes one with a fragment, which is never sent: the
// reference after '#' is dropped silently and the part calls another
// resource than its template says.
func TestPathWithFragmentRefused(t *testing.T) {
	_, err := aggregate.New([]aggregate.Part{{Name: "search", Upstream: "orders", Path: "/search#{id}"}})
	if err == nil {
		t.Errorf(`New with Path "/search#{id}" = nil error; want one naming the path (a fragment is no request target)`)
	}
}

// TestCollapseStress is a regression check for -race: many
// identical and different GETs at once through a gateway on a real
// server, some of whose clients go away or run out of time, sharing
// flights whose Request function changes and sends on its in, with a
// Shape, FromHeader, forwarded headers, a document cache and a
// middleware that sets Vary. Every answer is the caller's own and
// names the headers it varies on.
func TestCollapseStress(t *testing.T) {
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		jsonAnswer(map[string]any{"user": r.Header.Get("Authorization"), "lang": r.Header.Get("Accept-Language")})(w, r)
	})
	parts := []aggregate.Part{
		{Name: "me", Upstream: "orders", Request: func(in *http.Request, _ aggregate.Results) (*http.Request, error) {
			in.Header.Set("X-Touched", "1")
			in.URL.Path = "/me" + in.URL.Path
			return in, nil
		}},
		{Name: "lang", Upstream: "orders", Path: "/lang", Header: []string{"Accept-Language"}, Optional: true},
	}
	vary := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Origin")
			next.ServeHTTP(w, r)
		})
	}
	st := startWith(t, upstreamsOf(u), gateway.Route{Pattern: "GET /o/{id}", Middleware: []gateway.Middleware{vary}}, parts, nil,
		aggregate.WithCache(newCache(t)), aggregate.WithTTL(20*time.Millisecond),
		aggregate.WithShapes(aggregate.FromHeader("X-Client"), map[string]aggregate.Shape{
			"mobile": aggregate.Select(map[string]string{"u": "me.user"}),
			"":       func(doc map[string]any) map[string]any { return doc },
		}))
	var (
		wg  sync.WaitGroup
		oks atomic.Int64
	)
	for i := range 200 {
		wg.Go(func() {
			user := fmt.Sprintf("Bearer u%d", i%3)
			client := []string{"mobile", "web"}[i%2]
			ctx, cancel := context.WithCancel(context.Background())
			if i%11 == 0 {
				time.AfterFunc(time.Duration(i%3)*time.Millisecond, cancel)
			}
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.srv.URL+"/o/1", nil)
			req.Header.Set("Authorization", user)
			req.Header.Set("X-Client", client)
			req.Header.Set("Accept-Language", "fr")
			resp, err := st.srv.Client().Do(req)
			if err != nil {
				return // the client went away
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				return
			}
			oks.Add(1)
			if !strings.Contains(string(b), `"`+user+`"`) {
				t.Errorf("%s got %s", user, b)
			}
			if got := resp.Header.Get("Vary"); got != "Origin, Accept-Language, X-Client" {
				t.Errorf("Vary = %q", got)
			}
		})
	}
	wg.Wait()
	if oks.Load() < 100 {
		t.Errorf("%d of 200 answered 200", oks.Load())
	}
}
