package aggregate_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// shop is three upstreams of an order page: the order, its customer
// (found by the order's customer_id) and the product's reviews.
type shop struct {
	orders, customers, reviews *upstream
}

func newShop(t *testing.T) *shop {
	t.Helper()
	return &shop{
		orders: newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
			id := strings.TrimPrefix(r.URL.Path, "/orders/")
			jsonAnswer(map[string]any{"id": id, "customer_id": "c-" + id, "total": 42.5})(w, r)
		}),
		customers: newUpstream(t, "customers", func(w http.ResponseWriter, r *http.Request) {
			id := strings.TrimPrefix(r.URL.Path, "/customers/")
			jsonAnswer(map[string]any{"id": id, "name": "Ada " + id, "email": "ada@example.com"})(w, r)
		}),
		reviews: newUpstream(t, "reviews", jsonAnswer([]any{map[string]any{"stars": 5}})),
	}
}

func (s *shop) upstreams() []*upstream { return []*upstream{s.orders, s.customers, s.reviews} }

// parts are the order page: the order and the reviews in the first
// stage, the customer in the second.
func (s *shop) parts() []aggregate.Part {
	return []aggregate.Part{
		{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
		{Name: "customer", Upstream: "customers", Path: "/customers/{order.customer_id}"},
		{Name: "reviews", Upstream: "reviews", Path: "/reviews?order={id}", Optional: true},
	}
}

func TestAggregate(t *testing.T) {
	s := newShop(t)
	var reviewQuery string
	s.reviews.handle(func(w http.ResponseWriter, r *http.Request) {
		reviewQuery = r.URL.RawQuery
		jsonAnswer([]any{map[string]any{"stars": 5}})(w, r)
	})
	st := start(t, s.upstreams(), "GET /orders/{id}", s.parts(), nil)

	resp, doc := st.get(t, "/orders/7")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200: %v", resp.StatusCode, doc)
	}
	if got := field(doc, "customer.id"); got != `"c-7"` {
		t.Errorf("customer.id = %s; want the order's customer_id, \"c-7\"", got)
	}
	if got := field(doc, "order.total"); got != `42.5` {
		t.Errorf("order.total = %s; want 42.5", got)
	}
	if got := field(doc, "reviews.0.stars"); got != `5` {
		t.Errorf("reviews.0.stars = %s; want 5", got)
	}
	if reviewQuery != "order=7" {
		t.Errorf("reviews query = %q; want order=7", reviewQuery)
	}
	for _, k := range []string{aggregate.PartialField, aggregate.StaleField} {
		if _, ok := doc[k]; ok {
			t.Errorf("%s present in a complete document: %v", k, doc)
		}
	}
	if h := resp.Header.Get(aggregate.PartialHeader); h != "" {
		t.Errorf("%s = %q on a complete document", aggregate.PartialHeader, h)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

// TestPathValuesEscaped checks that values from the route and from
// earlier answers cannot change the path the upstream gets.
func TestPathValuesEscaped(t *testing.T) {
	var got string
	orders := newUpstream(t, "orders", jsonAnswer(map[string]any{"customer_id": "../admin?x=1"}))
	customers := newUpstream(t, "customers", func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath() + "?" + r.URL.RawQuery
		jsonAnswer(map[string]any{})(w, r)
	})
	parts := []aggregate.Part{
		{Name: "order", Upstream: "orders", Path: "/orders/{id}"},
		{Name: "customer", Upstream: "customers", Path: "/customers/{order.customer_id}?from={id}"},
	}
	st := start(t, []*upstream{orders, customers}, "GET /orders/{id}", parts, nil)
	if resp, doc := st.get(t, "/orders/a%20b"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", resp.StatusCode, doc)
	}
	if want := "/customers/..%2Fadmin%3Fx=1?from=a+b"; got != want {
		t.Errorf("customer request = %q; want %q", got, want)
	}
}

func TestRequiredFailureStatus(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		closed  bool // the upstream is not listening
		part    aggregate.Part
		want    int
		reason  string
	}{
		{name: "404", handler: status(404), want: 404, reason: "status"},
		{name: "403", handler: status(403), want: 403, reason: "status"},
		{name: "500", handler: status(500), want: 502, reason: "status"},
		{name: "503", handler: status(503), want: 502, reason: "status"},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.com/", http.StatusFound)
		}, want: 502, reason: "status"},
		{name: "unreachable", closed: true, want: 502, reason: "unreachable"},
		{name: "timeout", handler: blocked(release), part: aggregate.Part{Timeout: 20 * time.Millisecond}, want: 504, reason: "timeout"},
		{name: "not JSON", handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>") }, want: 502, reason: "invalid"},
		{name: "trailing data", handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{} {}`) }, want: 502, reason: "invalid"},
		{name: "too large", handler: jsonAnswer(strings.Repeat("x", 100)), part: aggregate.Part{MaxBytes: 64}, want: 502, reason: "too_large"},
		{name: "unknown upstream", handler: status(200), part: aggregate.Part{Upstream: "nowhere"}, want: 503, reason: "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newShop(t)
			s.orders.handle(tt.handler)
			if tt.closed {
				s.orders.Close()
			}
			parts := s.parts()
			p := &parts[0]
			p.Timeout, p.MaxBytes = tt.part.Timeout, tt.part.MaxBytes
			if tt.part.Upstream != "" {
				p.Upstream = tt.part.Upstream
			}
			st := start(t, s.upstreams(), "GET /orders/{id}", parts, nil)
			resp, doc := st.get(t, "/orders/7")
			if resp.StatusCode != tt.want {
				t.Errorf("status %d; want %d: %v", resp.StatusCode, tt.want, doc)
			}
			if got := field(doc, aggregate.FailedField+".order.error"); got != jsonString(tt.reason) {
				t.Errorf("%s.order.error = %s; want %q: %v", aggregate.FailedField, got, tt.reason, doc)
			}
			if s.customers.hits.Load() != 0 {
				t.Errorf("the customer was fetched after its order failed")
			}
		})
	}
}

// TestBreakerOpen checks that a part whose upstream's breaker is open
// fails the response with 503, not 502.
func TestBreakerOpen(t *testing.T) {
	s := newShop(t)
	s.orders.handle(status(500))
	var ups []gateway.Upstream
	for _, u := range s.upstreams() {
		gu := gateway.Upstream{Name: u.name, Targets: []gateway.Target{{URL: u.URL}}}
		if u == s.orders {
			gu.Breaker = &gateway.Breaker{Options: []circuitbreaker.Option{
				circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour)}}
		}
		ups = append(ups, gu)
	}
	st := startWith(t, ups, gateway.Route{Pattern: "GET /orders/{id}"}, s.parts(), nil)
	if resp, doc := st.get(t, "/orders/7"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("first failure: status %d; want 502: %v", resp.StatusCode, doc)
	}
	resp, doc := st.get(t, "/orders/7")
	if resp.StatusCode != http.StatusServiceUnavailable || field(doc, "_failed.order.error") != `"unavailable"` {
		t.Fatalf("breaker open: status %d %v; want 503, unavailable", resp.StatusCode, doc)
	}
	if n := s.orders.hits.Load(); n != 1 {
		t.Errorf("orders got %d requests; want 1 (the breaker keeps the second)", n)
	}
}

func TestOptionalFailure(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		reason  string
		status  int
	}{
		{"timeout", blocked(release), "timeout", 0},
		{"500", status(500), "status", 500},
		{"404", status(404), "status", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newShop(t)
			s.reviews.handle(tt.handler)
			parts := s.parts()
			parts[2].Timeout = 20 * time.Millisecond
			// A part that needs the reviews fails with them.
			parts = append(parts, aggregate.Part{Name: "top", Upstream: "reviews", Path: "/top/{reviews.0.stars}", Optional: true})
			st := start(t, s.upstreams(), "GET /orders/{id}", parts, nil)
			resp, doc := st.get(t, "/orders/7")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d; want 200: %v", resp.StatusCode, doc)
			}
			if got := field(doc, "_partial.reviews.error"); got != jsonString(tt.reason) {
				t.Errorf("_partial.reviews.error = %s; want %q", got, tt.reason)
			}
			wantStatus := "<missing>"
			if tt.status != 0 {
				wantStatus = jsonString(tt.status)
			}
			if got := field(doc, "_partial.reviews.status"); got != wantStatus {
				t.Errorf("_partial.reviews.status = %s; want %s", got, wantStatus)
			}
			if got := field(doc, "_partial.top.error"); got != `"dependency"` {
				t.Errorf("_partial.top.error = %s; want \"dependency\"", got)
			}
			if got := resp.Header.Get(aggregate.PartialHeader); got != "reviews, top" {
				t.Errorf("%s = %q; want \"reviews, top\"", aggregate.PartialHeader, got)
			}
			if _, ok := doc["reviews"]; ok {
				t.Errorf("the failed part is in the document: %v", doc)
			}
			if field(doc, "customer.id") != `"c-7"` {
				t.Errorf("the required parts are missing: %v", doc)
			}
		})
	}
}

// TestRequiredFailureDoesNotWaitForSlowParts checks that a required
// failure ends the stage: the slow part of the same stage is cancelled,
// and the response does not wait for it.
func TestRequiredFailureDoesNotWaitForSlowParts(t *testing.T) {
	s := newShop(t)
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	s.reviews.handle(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // held until the gateway gives up on it
		close(cancelled)
	})
	s.orders.handle(func(w http.ResponseWriter, r *http.Request) {
		<-arrived // both parts are in flight
		status(404)(w, r)
	})
	st := start(t, s.upstreams(), "GET /orders/{id}", s.parts(), nil)
	resp, doc := st.get(t, "/orders/7")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d; want 404: %v", resp.StatusCode, doc)
	}
	<-cancelled // would hang if the slow part were not cancelled
}

// TestSlowPartHoldsOnlyItsDependents checks that the customer is
// fetched as soon as the order has answered, while the (slow) reviews
// are still on their way: the reviews answer only once the customer has
// been asked for, and their timeout is far beyond the test's.
func TestSlowPartHoldsOnlyItsDependents(t *testing.T) {
	s := newShop(t)
	customerAsked := make(chan struct{})
	s.customers.handle(func(w http.ResponseWriter, r *http.Request) {
		close(customerAsked)
		jsonAnswer(map[string]any{"id": "c-7"})(w, r)
	})
	s.reviews.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-customerAsked:
			jsonAnswer([]any{})(w, r)
		case <-r.Context().Done():
		}
	})
	parts := s.parts()
	parts[2].Timeout = time.Minute
	st := start(t, s.upstreams(), "GET /orders/{id}", parts, nil)
	resp, doc := st.get(t, "/orders/7")
	if resp.StatusCode != http.StatusOK || doc[aggregate.PartialField] != nil {
		t.Fatalf("%d %v; want 200, complete", resp.StatusCode, doc)
	}
}

func TestSkip(t *testing.T) {
	s := newShop(t)
	parts := s.parts()
	parts[2] = aggregate.Part{Name: "reviews", Upstream: "reviews", Optional: true,
		Request: func(in *http.Request, earlier aggregate.Results) (*http.Request, error) {
			if in.URL.Query().Get("reviews") == "" {
				return nil, aggregate.ErrSkip
			}
			return http.NewRequest(http.MethodGet, "/reviews", nil)
		}}
	st := start(t, s.upstreams(), "GET /orders/{id}", parts, nil)
	resp, doc := st.get(t, "/orders/7")
	if _, ok := doc["reviews"]; ok || resp.StatusCode != 200 || resp.Header.Get(aggregate.PartialHeader) != "" {
		t.Errorf("skipped part: %d %v", resp.StatusCode, doc)
	}
	if s.reviews.hits.Load() != 0 {
		t.Errorf("a skipped part was called")
	}
	if _, doc := st.get(t, "/orders/7?reviews=1"); field(doc, "reviews.0.stars") != "5" {
		t.Errorf("part not skipped: %v", doc)
	}
}

func TestUnsafeMethods(t *testing.T) {
	s := newShop(t)
	st := start(t, s.upstreams(), "/orders/{id}", s.parts(), nil)
	req, _ := http.NewRequest(http.MethodPost, st.srv.URL+"/orders/7", strings.NewReader(`{}`))
	resp, doc := st.do(t, req)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" || doc[aggregate.ErrorField] != "method_not_allowed" {
		t.Errorf("POST without opt-in: %d %v %v; want 405 with Allow", resp.StatusCode, resp.Header, doc)
	}
	if n := s.orders.hits.Load(); n != 0 {
		t.Errorf("a refused POST reached an upstream %d times", n)
	}

	_, err := aggregate.New([]aggregate.Part{{Name: "a", Upstream: "a", Path: "/", Method: http.MethodPost}})
	if err == nil || !strings.Contains(err.Error(), "WithUnsafeMethods") {
		t.Errorf("POST part without opt-in: New() = %v; want an error naming WithUnsafeMethods", err)
	}

	// With the opt-in, the body goes to the parts that send one.
	var got []string
	echo := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+string(b)+" "+r.Header.Get("Content-Type"))
		jsonAnswer(map[string]any{"ok": true})(w, r)
	})
	parts := []aggregate.Part{
		{Name: "create", Upstream: "orders", Method: http.MethodPost, Path: "/orders"},
		{Name: "after", Upstream: "orders", Path: "/orders/x", After: []string{"create"}},
	}
	st = start(t, []*upstream{echo}, "POST /orders", parts, nil, aggregate.WithUnsafeMethods())
	req, _ = http.NewRequest(http.MethodPost, st.srv.URL+"/orders", strings.NewReader(`{"sku":1}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, doc := st.do(t, req); resp.StatusCode != 200 {
		t.Fatalf("POST with opt-in: %d %v", resp.StatusCode, doc)
	}
	want := []string{`POST {"sku":1} application/json`, "GET  "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("upstream got %q; want %q", got, want)
	}
}

func TestHeaders(t *testing.T) {
	var got http.Header
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		jsonAnswer(map[string]any{})(w, r)
	})
	parts := []aggregate.Part{{Name: "order", Upstream: "orders", Path: "/o", Header: []string{"authorization"}}}
	st := start(t, []*upstream{u}, "GET /o", parts, nil)
	st.get(t, "/o", "Authorization", "Bearer t", "Cookie", "secret=1")
	if got.Get("Authorization") != "Bearer t" || got.Get("Cookie") != "" {
		t.Errorf("upstream headers %v; want Authorization alone of the client's", got)
	}
}

func TestPanicInRequest(t *testing.T) {
	u := newUpstream(t, "orders", jsonAnswer(map[string]any{}))
	parts := []aggregate.Part{{Name: "order", Upstream: "orders", Request: func(*http.Request, aggregate.Results) (*http.Request, error) {
		panic("boom")
	}}}
	st := start(t, []*upstream{u}, "GET /o", parts, nil)
	resp, doc := st.get(t, "/o")
	if resp.StatusCode != http.StatusBadGateway || field(doc, "_failed.order.error") != `"request"` {
		t.Errorf("panicking Request: %d %v; want 502 with reason request", resp.StatusCode, doc)
	}
}

func TestNew(t *testing.T) {
	_, err := aggregate.New([]aggregate.Part{
		{Name: "", Upstream: "a", Path: "/"},
		{Name: "a", Path: "x"},
		{Name: "a", Upstream: "a", Path: "/{b.c}", Timeout: -1, MaxBytes: -1, TTL: -1},
		{Name: "d.e", Upstream: "a", Request: func(*http.Request, aggregate.Results) (*http.Request, error) { return nil, nil }, Path: "/"},
		{Name: "f", Upstream: "a", After: []string{"g"}, Path: "/{unclosed"},
		{Name: "g", Upstream: "a", Optional: true, Path: "/", TTL: time.Second},
		{Name: "h", Upstream: "a", After: []string{"g"}, Path: "/", Header: []string{"bad header"}},
		{Name: "_meta", Upstream: "a"},
		{Name: "i", Upstream: "a", Path: "/a%zz/{id}"},
	}, aggregate.WithTTL(-time.Second), aggregate.WithShapes(nil, map[string]aggregate.Shape{"web": nil}))
	if err == nil {
		t.Fatal("New() = nil error")
	}
	for _, want := range []string{
		`parts[0]: name: must not be empty`,
		`parts[1] "a": upstream: must not be empty`,
		`parts[1] "a": path: "x" must start with /`,
		`parts[2] "a": name: also the name of parts[1]`,
		`parts[2] "a": after: "b" is not an earlier part`,
		`parts[2] "a": timeout: must not be negative`,
		`parts[2] "a": max_bytes: must not be negative`,
		`parts[2] "a": ttl: must not be negative`,
		`parts[3] "d.e": name: must not contain`,
		`parts[3] "d.e": request: cannot be set with a path`,
		`parts[4] "f": path: "/{unclosed": unmatched {`,
		`parts[4] "f": after: "g" is not an earlier part`,
		`parts[5] "g": ttl: needs a cache (WithCache)`,
		`parts[6] "h": header[0]: "bad header" is not a header name`,
		`parts[6] "h": after: a required part cannot depend on optional part "g"`,
		`parts[7] "_meta": name: must not start with _`,
		`parts[7] "_meta": path: set a path or a request function`,
		`parts[8] "i": path: "/a%zz/{id}" is not a URL path: invalid URL escape "%zz"`,
		`WithTTL(-1s): must not be negative`,
		`WithShapes: shape "web": must not be nil`,
		`WithShapes: shape "web" needs a client type function`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New() error lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("New() = %v", err)
	}
	if _, err := aggregate.New(nil); err == nil || !strings.Contains(err.Error(), "parts: must not be empty") {
		t.Errorf("New(no parts) = %v", err)
	}
}

func TestPartErrorStatus(t *testing.T) {
	for _, tt := range []struct {
		e    aggregate.PartError
		want int
	}{
		{aggregate.PartError{Reason: "status", Status: 404}, 404},
		{aggregate.PartError{Reason: "status", Status: 409}, 409},
		{aggregate.PartError{Reason: "status", Status: 500}, 502},
		{aggregate.PartError{Reason: "status", Status: 302}, 502},
		{aggregate.PartError{Reason: "status", Status: 401}, 502}, // without a challenge
		{aggregate.PartError{Reason: "status", Status: 407}, 502},
		{aggregate.PartError{Reason: "status", Status: 421}, 502},
		{aggregate.PartError{Reason: "status", Status: 431}, 502},
		{aggregate.PartError{Reason: "unavailable"}, 503},
		{aggregate.PartError{Reason: "timeout"}, 504},
		{aggregate.PartError{Reason: "unreachable"}, 502},
		{aggregate.PartError{Reason: "canceled"}, gateway.StatusClientClosedRequest},
	} {
		if got := tt.e.HTTPStatus(); got != tt.want {
			t.Errorf("PartError{%s %d}.HTTPStatus() = %d; want %d", tt.e.Reason, tt.e.Status, got, tt.want)
		}
	}
	e := &aggregate.PartError{Part: "p", Reason: "timeout", Err: errors.New("x")}
	if !errors.Is(e, e.Err) {
		t.Errorf("PartError does not unwrap to its cause")
	}
}

// TestVary checks that the response names in Vary the request headers
// its document depends on (RFC 9110, 12.5.5): FromHeader's, which
// chooses the shape, and those the parts forward, canonical, added to
// those a middleware set, each once. Without them, a cache in front of
// the gateway serves one client type's document, or one language's,
// to another.
func TestVary(t *testing.T) {
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		jsonAnswer(map[string]any{"lang": r.Header.Get("Accept-Language")})(w, r)
	})
	shapes := aggregate.WithShapes(aggregate.FromHeader("x-client"), map[string]aggregate.Shape{
		"mobile": aggregate.Select(map[string]string{"l": "order.lang"}),
		"":       func(doc map[string]any) map[string]any { return doc },
	})
	setVary := func(v string) gateway.Middleware {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Vary", v)
				next.ServeHTTP(w, r)
			})
		}
	}
	forwarding := []aggregate.Part{{Name: "order", Upstream: "orders", Path: "/o", Header: []string{"accept-language"}}}
	plain := []aggregate.Part{{Name: "order", Upstream: "orders", Path: "/o"}}
	for _, tt := range []struct {
		name  string
		parts []aggregate.Part
		mw    []gateway.Middleware
		opts  []aggregate.Option
		want  string
	}{
		{"shape and forwarded header", forwarding, nil, []aggregate.Option{shapes}, "Accept-Language, X-Client"},
		{"forwarded header", forwarding, nil, nil, "Accept-Language"},
		{"shape", plain, nil, []aggregate.Option{shapes}, "X-Client"},
		{"neither", plain, nil, nil, ""},
		{"merged with the middleware's", forwarding, []gateway.Middleware{setVary("accept-encoding,  accept-language")},
			[]aggregate.Option{shapes}, "Accept-Encoding, Accept-Language, X-Client"},
		{"everything already", forwarding, []gateway.Middleware{setVary("*")}, nil, "*"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := startWith(t, upstreamsOf(u), gateway.Route{Pattern: "GET /o", Middleware: tt.mw}, tt.parts, nil, tt.opts...)
			resp, doc := st.get(t, "/o", "X-Client", "mobile", "Accept-Language", "fr")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %v", resp.StatusCode, doc)
			}
			if got := strings.Join(resp.Header.Values("Vary"), ", "); got != tt.want {
				t.Errorf("Vary = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestHopStatusesNotPassedOn checks that an upstream's 4xx about the
// gateway's own hop to it, not about the client's request, becomes a
// 502: a 407 asks the client to authenticate to a proxy it never met,
// a 421 to retry on another connection. A 401 is passed on only with
// its WWW-Authenticate challenge, which the response carries (RFC 9110,
// 11.6.1 and 15.5.2 require one); without one it is a 502 too.
func TestHopStatusesNotPassedOn(t *testing.T) {
	type want struct {
		status    int
		challenge []string
	}
	tests := map[string]struct {
		code      int
		challenge []string
		want      want
	}{
		"401 with challenges": {http.StatusUnauthorized, []string{`Bearer realm="orders"`, `Basic realm="orders"`},
			want{http.StatusUnauthorized, []string{`Bearer realm="orders"`, `Basic realm="orders"`}}},
		"401 without": {code: http.StatusUnauthorized, want: want{status: http.StatusBadGateway}},
		"403":         {code: http.StatusForbidden, want: want{status: http.StatusForbidden}},
	}
	for _, code := range []int{http.StatusProxyAuthRequired, http.StatusRequestTimeout, http.StatusLengthRequired,
		http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong, http.StatusExpectationFailed,
		http.StatusMisdirectedRequest, http.StatusUpgradeRequired, http.StatusRequestHeaderFieldsTooLarge} {
		tests[strconv.Itoa(code)] = struct {
			code      int
			challenge []string
			want      want
		}{code: code, want: want{status: http.StatusBadGateway}}
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
				for _, c := range tt.challenge {
					w.Header().Add("WWW-Authenticate", c)
				}
				if tt.code == http.StatusProxyAuthRequired {
					w.Header().Set("Proxy-Authenticate", `Basic realm="mesh"`)
				}
				status(tt.code)(w, r)
			})
			st := start(t, []*upstream{u}, "GET /o", []aggregate.Part{{Name: "order", Upstream: "orders", Path: "/o"}}, nil)
			resp, doc := st.get(t, "/o")
			if resp.StatusCode != tt.want.status || field(doc, "_failed.order.status") != strconv.Itoa(tt.code) {
				t.Errorf("upstream's %d: %d %v; want %d naming its status", tt.code, resp.StatusCode, doc, tt.want.status)
			}
			if got := resp.Header.Values("WWW-Authenticate"); !slices.Equal(got, tt.want.challenge) {
				t.Errorf("WWW-Authenticate = %q; want %q", got, tt.want.challenge)
			}
			if got := resp.Header.Get("Proxy-Authenticate"); got != "" {
				t.Errorf("Proxy-Authenticate = %q passed on", got)
			}
		})
	}
}

// TestInvalidUTF8Replaced checks that a part's answer with invalid
// UTF-8 in a string, which json.Valid takes, is put in the document
// with U+FFFD for each invalid byte, as when it is decoded (read by a
// Shape): the document, application/json, must be UTF-8 (RFC 8259,
// 8.1).
func TestInvalidUTF8Replaced(t *testing.T) {
	u := newUpstream(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "{\"name\":\"a\xff\xfeb\",\"ok\":\"\u00e9\ufffd\"}")
	})
	parts := []aggregate.Part{{Name: "order", Upstream: "orders", Path: "/o"}}
	const want = "{\"order\":{\"name\":\"a\ufffd\ufffdb\",\"ok\":\"\u00e9\ufffd\"}}"
	for name, opts := range map[string][]aggregate.Option{
		"as it came": nil,
		"decoded": {aggregate.WithShapes(nil, map[string]aggregate.Shape{
			"": func(doc map[string]any) map[string]any { return doc },
		})},
	} {
		t.Run(name, func(t *testing.T) {
			st := start(t, []*upstream{u}, "GET /o", parts, nil, opts...)
			resp, err := st.srv.Client().Get(st.srv.URL + "/o")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != want {
				t.Errorf("document %q; want %q", b, want)
			}
		})
	}
}

// TestPartErrorType checks the error.type values of part failures: the
// upstream's status, the type of a cause that has one (the context's,
// the gateway's), and aggregate.{reason} for a plain transport error,
// whose Go type (net/url.Error) is none of the documented values.
func TestPartErrorType(t *testing.T) {
	dial := &url.Error{Op: "Get", URL: "http://orders/o", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	deadline := &url.Error{Op: "Get", URL: "http://orders/o", Err: context.DeadlineExceeded}
	for _, tt := range []struct {
		e    aggregate.PartError
		want string
	}{
		{aggregate.PartError{Reason: "status", Status: 404}, "404"},
		{aggregate.PartError{Reason: "unreachable", Err: dial}, "aggregate.unreachable"},
		{aggregate.PartError{Reason: "unavailable", Err: &url.Error{Op: "Get", URL: "http://x/", Err: gateway.ErrUnknownUpstream}}, "aggregate.unavailable"},
		{aggregate.PartError{Reason: "timeout", Err: deadline}, telemetry.ErrorTypeString(context.DeadlineExceeded)},
		{aggregate.PartError{Reason: "timeout", Err: dial}, "aggregate.timeout"},
		{aggregate.PartError{Reason: "request", Err: errors.New("no such field")}, "aggregate.request"},
	} {
		if got := tt.e.ErrorType(); got != tt.want {
			t.Errorf("PartError{%s, %v}.ErrorType() = %q; want %q", tt.e.Reason, tt.e.Err, got, tt.want)
		}
	}
}
