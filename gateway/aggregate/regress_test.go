package aggregate_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
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
