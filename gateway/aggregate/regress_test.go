package aggregate_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// TestEmptyFieldNotEmptySegment checks that an empty value from an
// earlier answer does not turn /customers/{order.customer_id} into
// /customers/, which is another resource (often the list of all).
func TestEmptyFieldNotEmptySegment(t *testing.T) {
	orders := newUpstream(t, "orders", jsonAnswer(map[string]any{"customer_id": ""}))
	customers := newUpstream(t, "customers", jsonAnswer([]any{"every", "customer"}))
	parts := []aggregate.Part{
		{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
		{Name: "customer", Upstream: "customers", Path: "/customers/{order.customer_id}"},
	}
	st := start(t, []*upstream{orders, customers}, "GET /orders/{id}", parts, nil)
	resp, doc := st.get(t, "/orders/7")
	if resp.StatusCode != http.StatusBadGateway || field(doc, "_failed.customer.error") != `"request"` {
		t.Errorf("empty customer_id: %d %v; want 502 with reason request", resp.StatusCode, doc)
	}
	if n := customers.hits.Load(); n != 0 {
		t.Errorf("customers called %d times with an empty path segment", n)
	}
}

// TestRequestUnsafeMethodNeedsOptIn checks that a Request function
// cannot send a write without WithUnsafeMethods, and that the answers
// to the writes it sends with it are never cached.
func TestRequestUnsafeMethodNeedsOptIn(t *testing.T) {
	var posts atomic.Int64
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		jsonAnswer(map[string]any{"n": posts.Load()})(w, r)
	})
	post := func(*http.Request, aggregate.Results) (*http.Request, error) {
		return http.NewRequest(http.MethodPost, "/orders", strings.NewReader(`{}`))
	}
	st := start(t, []*upstream{u}, "GET /o", []aggregate.Part{{Name: "order", Upstream: "orders", Request: post}}, nil)
	resp, doc := st.get(t, "/o")
	if resp.StatusCode != http.StatusBadGateway || field(doc, "_failed.order.error") != `"request"` {
		t.Errorf("POST from Request without opt-in: %d %v; want 502 with reason request", resp.StatusCode, doc)
	}
	if n := posts.Load(); n != 0 {
		t.Errorf("a POST without opt-in reached the upstream %d times", n)
	}

	posts.Store(0)
	st = start(t, []*upstream{u}, "GET /o", []aggregate.Part{{Name: "order", Upstream: "orders", Request: post, TTL: time.Hour}}, nil,
		aggregate.WithUnsafeMethods(), aggregate.WithCache(newCache(t)))
	for range 2 {
		if resp, doc := st.get(t, "/o"); resp.StatusCode != http.StatusOK {
			t.Fatalf("POST from Request with opt-in: %d %v", resp.StatusCode, doc)
		}
	}
	if n := posts.Load(); n != 2 {
		t.Errorf("two POSTs from a part with a TTL reached the upstream %d times; want 2 (never cached)", n)
	}
}

// TestCallersWithoutSubjectNotShared checks that callers whose
// principal has no subject (a JWT without sub, as gateway/auth accepts)
// do not share documents: a Request function that reads the principal
// makes a different request for each.
func TestCallersWithoutSubjectNotShared(t *testing.T) {
	u := newUpstream(t, "profiles", func(w http.ResponseWriter, r *http.Request) {
		jsonAnswer(map[string]any{"client": r.Header.Get("X-Client-Id")})(w, r)
	})
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			client := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			next.ServeHTTP(w, r.WithContext(gateway.WithPrincipal(r.Context(),
				&gateway.Principal{Scheme: "jwt", Claims: map[string]any{"azp": client}})))
		})
	}
	parts := []aggregate.Part{{Name: "profile", Upstream: "profiles",
		Request: func(in *http.Request, _ aggregate.Results) (*http.Request, error) {
			p, _ := gateway.PrincipalFrom(in.Context())
			req, err := http.NewRequest(http.MethodGet, "/profile", nil)
			if err == nil {
				req.Header.Set("X-Client-Id", p.Claims["azp"].(string))
			}
			return req, err
		}}}
	st := startWith(t, upstreamsOf(u), gateway.Route{Pattern: "GET /me", Middleware: []gateway.Middleware{auth}}, parts, nil,
		aggregate.WithCache(newCache(t)), aggregate.WithTTL(time.Hour))
	for _, client := range []string{"a", "b"} {
		if _, doc := st.get(t, "/me", "Authorization", "Bearer "+client); field(doc, "profile.client") != `"`+client+`"` {
			t.Errorf("caller %s got %v", client, doc)
		}
	}
}

// answerAfterDone is a transport whose orders answer arrives only once
// the request's time has run out: the part succeeds, and the parts that
// depend on it are left no time to run.
type answerAfterDone struct{}

func (answerAfterDone) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == "orders" {
		<-req.Context().Done()
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: req,
		Body: io.NopCloser(strings.NewReader(`{"customer_id":"c-7"}`))}, nil
}

// TestDeadlineBeforeDependentStarts checks that a required part that
// could not start because the request's time ran out fails the response
// (504), instead of leaving a null in a 200 document (which WithTTL
// would keep, the aggregation of a GET running to its end after the
// request gave up on it). The request is a POST, which is not
// collapsed, so that its answer is the aggregation's.
func TestDeadlineBeforeDependentStarts(t *testing.T) {
	parts := []aggregate.Part{
		{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
		{Name: "customer", Upstream: "customers", Path: "/customers/{order.customer_id}"},
	}
	h, err := aggregate.New(parts, aggregate.WithTransport(answerAfterDone{}), aggregate.WithUnsafeMethods())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/orders/{id}", h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodPost, "/orders/7", nil))
	if w.Code != http.StatusGatewayTimeout || !strings.Contains(w.Body.String(), `"customer":{"error":"timeout"}`) {
		t.Errorf("customer never ran: %d %s; want 504 naming it", w.Code, w.Body)
	}
}

// TestSelectNestsIntoSelected checks that Select puts a field into an
// object it also selects whole, whatever the order of the map it is
// given, and leaves the document as it was.
func TestSelectNestsIntoSelected(t *testing.T) {
	shape := aggregate.Select(map[string]string{"customer": "customer", "customer.order_id": "order.id"})
	for range 50 {
		customer := map[string]any{"name": "Ada"}
		doc := map[string]any{"order": map[string]any{"id": "7"}, "customer": customer}
		if got := jsonString(shape(doc)); got != `{"customer":{"name":"Ada","order_id":"7"}}` {
			t.Fatalf("Select() = %s", got)
		}
		if got := jsonString(customer); got != `{"name":"Ada"}` {
			t.Fatalf("the document's customer became %s", got)
		}
	}
}

// TestRequestWithoutHeader checks that a Request function may return a
// request built without a Header map (as http.Client accepts), even
// when the part forwards headers into it.
func TestRequestWithoutHeader(t *testing.T) {
	var got string
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Accept-Language")
		jsonAnswer(map[string]any{})(w, r)
	})
	parts := []aggregate.Part{{Name: "order", Upstream: "orders", Header: []string{"Accept-Language"},
		Request: func(*http.Request, aggregate.Results) (*http.Request, error) {
			return &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/orders"}}, nil
		}}}
	st := start(t, []*upstream{u}, "GET /o", parts, nil)
	if resp, doc := st.get(t, "/o", "Accept-Language", "fr"); resp.StatusCode != http.StatusOK || got != "fr" {
		t.Errorf("request without Header: %d %v, Accept-Language %q; want 200 and fr", resp.StatusCode, doc, got)
	}
}

// TestLeaderGoesAway checks that the requests that joined an
// aggregation get its answer when the request that started it goes
// away (its context cancelled) before it ends.
func TestLeaderGoesAway(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		blocked(release)(w, r)
	})
	var served, keyed atomic.Int64
	leaderGone, followerKeyed := make(chan struct{}), make(chan struct{})
	first := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			leader := served.Add(1) == 1
			next.ServeHTTP(w, r)
			if leader {
				close(leaderGone)
			}
		})
	}
	key := func(*http.Request) string {
		if keyed.Add(1) == 2 {
			close(followerKeyed) // about to join the leader's aggregation
		}
		return ""
	}
	st := startWith(t, upstreamsOf(u), gateway.Route{Pattern: "GET /o", Middleware: []gateway.Middleware{first}},
		[]aggregate.Part{{Name: "order", Upstream: "orders", Path: "/o"}}, nil, aggregate.WithKey(key))

	ctx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.srv.URL+"/o", nil)
		resp, err := st.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		leaderErr <- err
	}()
	<-arrived
	follower := make(chan int, 1)
	go func() {
		resp, err := st.srv.Client().Get(st.srv.URL + "/o")
		if err != nil {
			follower <- 0
			return
		}
		resp.Body.Close()
		follower <- resp.StatusCode
	}()
	<-followerKeyed
	cancel()
	<-leaderErr
	<-leaderGone // the leader's handler has returned, its context done
	close(release)
	if code := <-follower; code != http.StatusOK {
		t.Errorf("the request that joined got %d after the leader went away; want 200", code)
	}
}

// TestRequestsHeaderOwn checks that Request functions, which run at
// once, each get a request of their own: one that sends the incoming
// headers on, or sets one, writes to no other's (which would be a
// concurrent map write, a crash of the process).
func TestRequestsHeaderOwn(t *testing.T) {
	var got sync.Map
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Path, r.Header.Get("X-Part"))
		jsonAnswer(map[string]any{})(w, r)
	})
	request := func(name string) func(*http.Request, aggregate.Results) (*http.Request, error) {
		return func(in *http.Request, _ aggregate.Results) (*http.Request, error) {
			req, err := http.NewRequest(http.MethodGet, "/"+name, nil)
			if err != nil {
				return nil, err
			}
			in.Header.Set("X-Part", name)
			req.Header = in.Header // every header on
			return req, nil
		}
	}
	var parts []aggregate.Part
	for _, name := range []string{"a", "b", "c", "d"} {
		parts = append(parts, aggregate.Part{Name: name, Upstream: "orders", Request: request(name), Header: []string{"Accept"}})
	}
	st := start(t, []*upstream{u}, "GET /o", parts, nil)
	if resp, doc := st.get(t, "/o", "Accept", "application/json"); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, doc)
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		if v, _ := got.Load("/" + name); v != name {
			t.Errorf("part %s sent X-Part %v", name, v)
		}
	}
}

// TestCachedAnswerBounded checks that a part's MaxBytes bounds the
// answers it takes from the cache too: two handlers (a web and a mobile
// BFF) share one cache, and the one with the smaller bound does not get
// the other's larger answer.
func TestCachedAnswerBounded(t *testing.T) {
	u := newUpstream(t, "catalog", jsonAnswer(map[string]any{"items": strings.Repeat("x", 100)}))
	c := newCache(t)
	web, err := aggregate.New([]aggregate.Part{{Name: "catalog", Upstream: "catalog", Path: "/catalog", TTL: time.Hour, Public: true}},
		aggregate.WithCache(c))
	if err != nil {
		t.Fatal(err)
	}
	mobile, err := aggregate.New([]aggregate.Part{{Name: "catalog", Upstream: "catalog", Path: "/catalog", TTL: time.Hour, Public: true, MaxBytes: 64}},
		aggregate.WithCache(c))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.WithUpstreams(upstreamsOf(u)...), gateway.WithRoutes(
		gateway.Route{Pattern: "GET /web", Handler: web}, gateway.Route{Pattern: "GET /mobile", Handler: mobile}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})
	st := &setup{gw: g, srv: srv}
	if resp, doc := st.get(t, "/web"); resp.StatusCode != http.StatusOK {
		t.Fatalf("web: %d %v", resp.StatusCode, doc)
	}
	if resp, doc := st.get(t, "/mobile"); resp.StatusCode != http.StatusBadGateway || field(doc, "_failed.catalog.error") != `"too_large"` {
		t.Errorf("mobile, the web's larger answer cached: %d %v; want 502 too_large", resp.StatusCode, doc)
	}
}

// TestRequestBodyNotCachedAway checks that a part whose request has a
// body (a GET with a search in it, as Elasticsearch takes) is not
// answered from the cache with the answer to another body: the key
// does not hold the body, so such a request is not cached.
func TestRequestBodyNotCachedAway(t *testing.T) {
	u := newUpstream(t, "search", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		jsonAnswer(map[string]any{"query": string(b)})(w, r)
	})
	parts := []aggregate.Part{{Name: "hits", Upstream: "search", TTL: time.Hour, Public: true,
		Request: func(in *http.Request, _ aggregate.Results) (*http.Request, error) {
			return http.NewRequest(http.MethodGet, "/_search", strings.NewReader(in.URL.Query().Get("q")))
		}}}
	st := start(t, []*upstream{u}, "GET /search", parts, nil, aggregate.WithCache(newCache(t)))
	for _, q := range []string{"shoes", "hats"} {
		if _, doc := st.get(t, "/search?q="+q); field(doc, "hits.query") != `"`+q+`"` {
			t.Errorf("search for %s got %v", q, doc)
		}
	}
}

// TestHeadPart checks that a part may send HEAD, which New accepts: an
// existence check whose answer has no body, null in the document, and
// whose 404 is the response's.
func TestHeadPart(t *testing.T) {
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/orders/7" {
			http.NotFound(w, r)
			return
		}
		jsonAnswer(map[string]any{"id": "7"})(w, r)
	})
	parts := []aggregate.Part{{Name: "exists", Upstream: "orders", Method: http.MethodHead, Path: "/orders/{id}"}}
	st := start(t, []*upstream{u}, "GET /orders/{id}", parts, nil)
	if resp, doc := st.get(t, "/orders/7"); resp.StatusCode != http.StatusOK || field(doc, "exists") != "null" {
		t.Errorf("HEAD part: %d %v; want 200 with exists null", resp.StatusCode, doc)
	}
	if resp, doc := st.get(t, "/orders/8"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD part of a missing order: %d %v; want 404", resp.StatusCode, doc)
	}
}

// TestRouteBodyLimit checks that a body over the route's MaxBodyBytes,
// found while reading it (it came chunked), gets 413 as the gateway
// gives it, not 400.
func TestRouteBodyLimit(t *testing.T) {
	u := newUpstream(t, "orders", jsonAnswer(map[string]any{}))
	st := startWith(t, upstreamsOf(u), gateway.Route{Pattern: "POST /o", MaxBodyBytes: 16},
		[]aggregate.Part{{Name: "order", Upstream: "orders", Method: http.MethodPost, Path: "/o"}}, nil,
		aggregate.WithUnsafeMethods())
	req, _ := http.NewRequest(http.MethodPost, st.srv.URL+"/o", io.MultiReader(strings.NewReader(strings.Repeat("x", 64))))
	if resp, doc := st.do(t, req); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("body over the route's bound: %d %v; want 413", resp.StatusCode, doc)
	}
	if n := u.hits.Load(); n != 0 {
		t.Errorf("upstream called %d times", n)
	}
}

// TestWritesNeverShared checks that an aggregation whose parts may write
// (WithUnsafeMethods) is never answered from another request's: a GET
// whose fan-out sends a POST sends it every time, neither collapsed
// nor kept by WithTTL.
func TestWritesNeverShared(t *testing.T) {
	var posts atomic.Int64
	u := newUpstream(t, "views", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		jsonAnswer(map[string]any{})(w, r)
	})
	parts := []aggregate.Part{{Name: "view", Upstream: "views", Method: http.MethodPost, Path: "/views"}}
	st := start(t, []*upstream{u}, "GET /o", parts, nil,
		aggregate.WithUnsafeMethods(), aggregate.WithCache(newCache(t)), aggregate.WithTTL(time.Hour))
	for range 2 {
		if resp, doc := st.get(t, "/o"); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %v", resp.StatusCode, doc)
		}
	}
	if n := posts.Load(); n != 2 {
		t.Errorf("two GETs whose part POSTs sent %d POSTs; want 2", n)
	}
}

// TestPanicInClientTypeOrKey checks that a panic in a ClientType or a
// WithKey function is answered as one in a Shape is, a 500 with the
// document, not by dropping the connection.
func TestPanicInClientTypeOrKey(t *testing.T) {
	u := newUpstream(t, "orders", jsonAnswer(map[string]any{}))
	parts := []aggregate.Part{{Name: "order", Upstream: "orders", Path: "/o"}}
	boom := func(*http.Request) string { panic("boom") }
	for name, opt := range map[string]aggregate.Option{
		"client type": aggregate.WithShapes(boom, map[string]aggregate.Shape{"mobile": aggregate.Select(nil)}),
		"key":         aggregate.WithKey(boom),
	} {
		t.Run(name, func(t *testing.T) {
			st := start(t, []*upstream{u}, "GET /o", parts, nil, opt)
			if resp, doc := st.get(t, "/o"); resp.StatusCode != http.StatusInternalServerError || doc[aggregate.ErrorField] != "internal" {
				t.Errorf("%d %v; want 500 internal", resp.StatusCode, doc)
			}
		})
	}
}

// TestRoutesOfOnePatternNotShared checks that two handlers on routes of
// one pattern, told apart by a header matcher, do not answer each
// other's requests from the cache they share.
func TestRoutesOfOnePatternNotShared(t *testing.T) {
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		jsonAnswer(map[string]any{"path": r.URL.Path})(w, r)
	})
	c := newCache(t)
	handler := func(path string) *aggregate.Handler {
		h, err := aggregate.New([]aggregate.Part{{Name: "order", Upstream: "orders", Path: path}},
			aggregate.WithCache(c), aggregate.WithTTL(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	g, err := gateway.New(gateway.WithUpstreams(upstreamsOf(u)...), gateway.WithRoutes(
		gateway.Route{Pattern: "GET /o", Handler: handler("/v1/o")},
		gateway.Route{Pattern: "GET /o", Handler: handler("/v2/o"), Headers: []gateway.Match{{Name: "X-Version", Value: "2"}}}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})
	st := &setup{gw: g, srv: srv}
	if _, doc := st.get(t, "/o"); field(doc, "order.path") != `"/v1/o"` {
		t.Fatalf("v1: %v", doc)
	}
	if _, doc := st.get(t, "/o", "X-Version", "2"); field(doc, "order.path") != `"/v2/o"` {
		t.Errorf("v2 after v1: %v; want v2's document", doc)
	}
}

// TestRouteDeadlineLeavesOutLateOptionalPart checks that a request whose
// deadline runs out while only an optional part (without a Timeout of
// its own) is on its way gets the documented 200 without that part,
// listed in _partial: a GET, which waits for the aggregation it shares
// (whose deadline is its own), as a POST, which runs its own.
func TestRouteDeadlineLeavesOutLateOptionalPart(t *testing.T) {
	rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		switch req.URL.Host {
		case "orders":
			return jsonResponse(req, `{"id":"7","customer_id":"c-7"}`), nil
		case "customers":
			return jsonResponse(req, `{"id":"c-7"}`), nil
		}
		return slowToNotice(req) // reviews
	})
	parts := []aggregate.Part{
		{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
		{Name: "customer", Upstream: "customers", Path: "/customers/{order.customer_id}"},
		{Name: "reviews", Upstream: "reviews", Path: "/reviews?order={id}", Optional: true},
	}
	h, err := aggregate.New(parts, aggregate.WithTransport(rt), aggregate.WithUnsafeMethods())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/orders/{id}", h)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequestWithContext(ctx, method, "/orders/7", nil))
			const want = `{"_partial":{"reviews":{"error":"timeout"}},"customer":{"id":"c-7"},"order":{"customer_id":"c-7","id":"7"}}`
			if w.Code != http.StatusOK || w.Body.String() != want {
				t.Errorf("only the optional part late at the deadline: %d %s; want 200 %s", w.Code, w.Body, want)
			}
			if got := w.Header().Get(aggregate.PartialHeader); got != "reviews" {
				t.Errorf("%s = %q; want reviews", aggregate.PartialHeader, got)
			}
		})
	}
}

// TestRouteDeadlineBoundsHungAggregation: a request whose time ran out
// waits for the aggregation it leads only a moment longer. A part whose
// call ignores its context (a transport of one's own that hangs) held
// the leader for as long as the call did: for ever.
func TestRouteDeadlineBoundsHungAggregation(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h, err := aggregate.New([]aggregate.Part{{Name: "order", Upstream: "orders", Path: "/orders/{id}"}},
		aggregate.WithTransport(roundTripFunc(func(req *http.Request) (*http.Response, error) {
			<-release // deaf to the request's context
			return nil, errors.New("released")
		})))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orders/{id}", h)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, "/orders/7", nil))
		done <- w.Code
	}()
	select {
	case code := <-done:
		if code != http.StatusGatewayTimeout {
			t.Errorf("status %d; want 504", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer 10s after the request's deadline (50ms): the leader waits for a hung part")
	}
}

// TestRouteDeadlineNamesLateRequiredPart checks that a GET whose
// deadline runs out while a required part is on its way gets the
// documented 504 naming the part in _failed, and that its aggregation
// span has status Error and the error.type of the part's failure.
func TestRouteDeadlineNamesLateRequiredPart(t *testing.T) {
	tel := telemetrytest.New(t)
	h, err := aggregate.New([]aggregate.Part{{Name: "order", Upstream: "orders", Path: "/orders/{id}"}},
		aggregate.WithTransport(roundTripFunc(slowToNotice)),
		aggregate.WithTracerProvider(tel.TracerProvider), aggregate.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orders/{id}", h)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, "/orders/7", nil))
	const body = `{"_failed":{"order":{"error":"timeout"}}}`
	if w.Code != http.StatusGatewayTimeout || w.Body.String() != body {
		t.Errorf("required part late at the deadline: %d %s; want 504 %s", w.Code, w.Body, body)
	}
	aggs := tel.SpansNamed(aggregate.SpanAggregation)
	if len(aggs) != 1 {
		t.Fatalf("%d aggregation spans; want 1", len(aggs))
	}
	want := telemetry.ErrorTypeString(context.DeadlineExceeded)
	if st, typ := aggs[0].Status().Code, telemetrytest.Attrs(aggs[0])[semconv.ErrorTypeKey].AsString(); st != codes.Error || typ != want {
		t.Errorf("aggregation span of the 504: status %v, %s %q; want Error, %q", st, semconv.ErrorTypeKey, typ, want)
	}
}

// TestJoinerStopsWaitingAtItsDeadline checks the requests that joined
// an aggregation which has more time than they have: one whose deadline
// runs out gets 504 {"_error":"timeout"}, one whose client goes away
// 499, each with an aggregation span of status Error and the context's
// error.type; the aggregation goes on, and answers its leader.
func TestJoinerStopsWaitingAtItsDeadline(t *testing.T) {
	tel := telemetrytest.New(t)
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	var calls atomic.Int64
	rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		calls.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
			return jsonResponse(req, `{"id":"7"}`), nil
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	})
	h, err := aggregate.New([]aggregate.Part{{Name: "order", Upstream: "orders", Path: "/orders/{id}"}},
		aggregate.WithTransport(rt), aggregate.WithTracerProvider(tel.TracerProvider), aggregate.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orders/{id}", h)
	serve := func(ctx context.Context) <-chan *httptest.ResponseRecorder {
		out := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, "/orders/7", nil))
			out <- w
		}()
		return out
	}
	answer := func(ch <-chan *httptest.ResponseRecorder) *httptest.ResponseRecorder {
		t.Helper()
		select {
		case w := <-ch:
			return w
		case <-time.After(5 * time.Second):
			t.Fatal("no answer: the request waits for the aggregation past its own deadline")
			return nil
		}
	}
	leader := serve(context.Background()) // no deadline
	<-arrived

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if w := answer(serve(ctx)); w.Code != http.StatusGatewayTimeout || w.Body.String() != `{"_error":"timeout"}` {
		t.Errorf("joiner whose deadline ran out: %d %s; want 504 {\"_error\":\"timeout\"}", w.Code, w.Body)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if w := answer(serve(ctx)); w.Code != gateway.StatusClientClosedRequest || w.Body.String() != `{"_error":"canceled"}` {
		t.Errorf("joiner whose client went away: %d %s; want 499 {\"_error\":\"canceled\"}", w.Code, w.Body)
	}
	spans := tel.SpansNamed(aggregate.SpanAggregation) // the joiners'; the leader's has not ended
	if len(spans) != 2 {
		t.Fatalf("%d aggregation spans ended; want the joiners' 2", len(spans))
	}
	for i, want := range []string{telemetry.ErrorTypeString(context.DeadlineExceeded), telemetry.ErrorTypeString(context.Canceled)} {
		if st, typ := spans[i].Status().Code, telemetrytest.Attrs(spans[i])[semconv.ErrorTypeKey].AsString(); st != codes.Error || typ != want {
			t.Errorf("joiner %d's aggregation span: status %v, %s %q; want Error, %q", i, st, semconv.ErrorTypeKey, typ, want)
		}
	}

	close(release)
	if w := answer(leader); w.Code != http.StatusOK || w.Body.String() != `{"order":{"id":"7"}}` {
		t.Errorf("leader: %d %s; want 200", w.Code, w.Body)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("orders called %d times; want 1, the joiners sharing the leader's call", n)
	}
}

// TestDotSegmentFailsPart checks that a value "." or ".." in a path
// position of a template fails the part with reason request instead of
// being sent: escaped (%2E%2E) it is still a dot segment (RFC 3986,
// 2.3 and 6.2.2.2), which an upstream that normalizes paths (nginx,
// Envoy, most Java containers) resolves, reaching another resource
// than the template's. In the query it is a value like any other.
func TestDotSegmentFailsPart(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	orders := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.RequestURI())
		mu.Unlock()
		jsonAnswer(map[string]any{"ref": ".."})(w, r)
	})
	t.Run("path value", func(t *testing.T) {
		parts := []aggregate.Part{{Name: "lines", Upstream: "orders", Path: "/orders/{id}/lines"}}
		st := start(t, []*upstream{orders}, "GET /orders/{id}", parts, nil)
		for _, v := range []string{"%2E%2E", "%2e", ".%2E"} {
			if resp, doc := st.get(t, "/orders/"+v); resp.StatusCode != http.StatusBadGateway || field(doc, "_failed.lines.error") != `"request"` {
				t.Errorf("path value %s: %d %v; want 502 with reason request", v, resp.StatusCode, doc)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 0 {
			t.Errorf("the upstream got %q", got)
		}
	})
	t.Run("field", func(t *testing.T) {
		parts := []aggregate.Part{
			{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
			{Name: "lines", Upstream: "orders", Path: "/lines/{order.ref}", Optional: true},
			{Name: "search", Upstream: "orders", Path: "/search?ref={order.ref}"},
		}
		st := start(t, []*upstream{orders}, "GET /orders/{id}", parts, nil)
		resp, doc := st.get(t, "/orders/7")
		if resp.StatusCode != http.StatusOK || field(doc, "_partial.lines.error") != `"request"` || field(doc, "search.ref") != `".."` {
			t.Errorf("field \"..\": %d %v; want 200, lines failed with reason request, search sent", resp.StatusCode, doc)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"/orders/7", "/search?ref=.."}; !slices.Equal(got, want) {
			t.Errorf("the upstream got %q; want %q", got, want)
		}
	})
}

// TestFunctionsTellHandlersApart checks that two handlers on routes of
// one pattern (told apart by a header matcher) that share a cache, and
// differ only in their functions (Request functions, or shapes), do not
// answer each other's requests with their documents.
func TestFunctionsTellHandlersApart(t *testing.T) {
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		jsonAnswer(map[string]any{"path": r.URL.Path})(w, r)
	})
	v1 := func(*http.Request, aggregate.Results) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, "/v1/o", nil)
	}
	v2 := func(*http.Request, aggregate.Results) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, "/v2/o", nil)
	}
	shape1 := func(doc map[string]any) map[string]any { return map[string]any{"version": "/v1/o"} }
	shape2 := func(doc map[string]any) map[string]any { return map[string]any{"version": "/v2/o"} }
	for _, tt := range []struct {
		name   string
		parts  [2][]aggregate.Part
		opts   [2][]aggregate.Option
		result string
	}{
		{name: "request functions", result: "order.path",
			parts: [2][]aggregate.Part{
				{{Name: "order", Upstream: "orders", Request: v1}},
				{{Name: "order", Upstream: "orders", Request: v2}},
			}},
		{name: "shapes", result: "version",
			parts: [2][]aggregate.Part{
				{{Name: "order", Upstream: "orders", Path: "/o"}},
				{{Name: "order", Upstream: "orders", Path: "/o"}},
			},
			opts: [2][]aggregate.Option{
				{aggregate.WithShapes(nil, map[string]aggregate.Shape{"": shape1})},
				{aggregate.WithShapes(nil, map[string]aggregate.Shape{"": shape2})},
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			var routes []gateway.Route
			for i := range 2 {
				h, err := aggregate.New(tt.parts[i], append(tt.opts[i], aggregate.WithCache(c), aggregate.WithTTL(time.Hour))...)
				if err != nil {
					t.Fatal(err)
				}
				r := gateway.Route{Pattern: "GET /o", Handler: h}
				if i == 1 {
					r.Headers = []gateway.Match{{Name: "X-Version", Value: "2"}}
				}
				routes = append(routes, r)
			}
			g, err := gateway.New(gateway.WithUpstreams(upstreamsOf(u)...), gateway.WithRoutes(routes...))
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(g)
			t.Cleanup(func() {
				srv.Close()
				_ = g.Close()
			})
			st := &setup{gw: g, srv: srv}
			if _, doc := st.get(t, "/o"); field(doc, tt.result) != `"/v1/o"` {
				t.Fatalf("v1: %v", doc)
			}
			if _, doc := st.get(t, "/o", "X-Version", "2"); field(doc, tt.result) != `"/v2/o"` {
				t.Errorf("v2 after v1: %v; want v2's document", doc)
			}
		})
	}
}

// TestRequestMaySendIn checks that a Request function may change its
// copy of the incoming request and send it on, as Part.Request says:
// return it (a pass-through part), or send it itself; and that it may
// return a request with a RequestURI of its own. http.Client refuses
// to send a request with a RequestURI, which a server's request has.
func TestRequestMaySendIn(t *testing.T) {
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		jsonAnswer(map[string]any{"path": r.URL.Path})(w, r)
	})
	for _, tt := range []struct {
		name    string
		request func(*http.Request, aggregate.Results) (*http.Request, error)
		want    string
	}{
		{"in, changed", func(in *http.Request, _ aggregate.Results) (*http.Request, error) {
			in.URL.Path = "/internal" + in.URL.Path
			return in, nil
		}, "/internal/o/1"},
		{"in, sent by the function", func(in *http.Request, _ aggregate.Results) (*http.Request, error) {
			// A call of its own before the part's, to the upstream's
			// address: in is a request it may send.
			target, err := url.Parse(u.URL + "/probe")
			if err != nil {
				return nil, err
			}
			in.URL, in.Host = target, ""
			resp, err := u.Client().Do(in)
			if err != nil {
				return nil, err
			}
			resp.Body.Close()
			return http.NewRequest(http.MethodGet, "/probed", nil)
		}, "/probed"},
		{"read from the wire", func(*http.Request, aggregate.Results) (*http.Request, error) {
			return http.ReadRequest(bufio.NewReader(strings.NewReader("GET /wire HTTP/1.1\r\nHost: orders\r\n\r\n")))
		}, "/wire"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parts := []aggregate.Part{{Name: "order", Upstream: "orders", Request: tt.request}}
			st := start(t, []*upstream{u}, "GET /o/{id}", parts, nil)
			if resp, doc := st.get(t, "/o/1"); resp.StatusCode != http.StatusOK || field(doc, "order.path") != jsonString(tt.want) {
				t.Errorf("%d %v; want 200 from %s", resp.StatusCode, doc, tt.want)
			}
		})
	}
}

// TestPanicInCacheWriterAnswers checks that a panic in the user's code
// that a cache write runs (WithCache's writer) while a shared
// aggregation stores its document neither ends the process nor leaves
// the requests that share it waiting: they get the document, which
// was complete, and later requests are answered too.
func TestPanicInCacheWriterAnswers(t *testing.T) {
	c, err := cache.New[aggregate.Entry](cache.WithTTL(time.Hour),
		cache.WithWriter(func(context.Context, string, aggregate.Entry) error { panic("boom") }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	u := newUpstream(t, "orders", jsonAnswer(map[string]any{"id": "7"}))
	st := start(t, []*upstream{u}, "GET /o", []aggregate.Part{{Name: "order", Upstream: "orders", Path: "/o"}}, nil,
		aggregate.WithCache(c), aggregate.WithTTL(time.Hour))
	for i := range 2 {
		if resp, doc := st.get(t, "/o"); resp.StatusCode != http.StatusOK || field(doc, "order.id") != `"7"` {
			t.Errorf("request %d: %d %v; want 200 with the order", i, resp.StatusCode, doc)
		}
	}
}
