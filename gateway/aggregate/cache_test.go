package aggregate_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

func newCache(t testing.TB) *cache.Cache[aggregate.Entry] {
	t.Helper()
	c, err := cache.New[aggregate.Entry](cache.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// authenticate stands for gateway/auth: the bearer token is the user.
func authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			r = r.WithContext(gateway.WithPrincipal(r.Context(), &gateway.Principal{Scheme: "jwt", Subject: user,
				Claims: map[string]any{"client": r.Header.Get("X-Claimed-Client")}}))
		}
		next.ServeHTTP(w, r)
	})
}

// routeFor is the order page's route with authentication.
func routeFor(pattern string) gateway.Route {
	return gateway.Route{Pattern: pattern, Middleware: []gateway.Middleware{authenticate}}
}

func upstreamsOf(us ...*upstream) []gateway.Upstream {
	var out []gateway.Upstream
	for _, u := range us {
		out = append(out, gateway.Upstream{Name: u.name, Targets: []gateway.Target{{URL: u.URL}}})
	}
	return out
}

func TestPartCache(t *testing.T) {
	s := newShop(t)
	parts := s.parts()
	parts[1].TTL = time.Hour // the customer
	st := startWith(t, upstreamsOf(s.upstreams()...), routeFor("GET /orders/{id}"), parts, nil,
		aggregate.WithCache(newCache(t)))

	for i := range 3 {
		if resp, doc := st.get(t, "/orders/7", "Authorization", "Bearer ada"); resp.StatusCode != 200 || field(doc, "customer.id") != `"c-7"` {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, doc)
		}
	}
	if n := s.customers.hits.Load(); n != 1 {
		t.Errorf("customers called %d times for one user; want 1", n)
	}
	if n := s.orders.hits.Load(); n != 3 {
		t.Errorf("orders (not cached) called %d times; want 3", n)
	}
	// Another user never gets the first one's answer.
	st.get(t, "/orders/7", "Authorization", "Bearer bob")
	if n := s.customers.hits.Load(); n != 2 {
		t.Errorf("customers called %d times for two users; want 2", n)
	}
	// Another order, another customer.
	if _, doc := st.get(t, "/orders/8", "Authorization", "Bearer ada"); field(doc, "customer.id") != `"c-8"` {
		t.Errorf("order 8 got %v", doc)
	}
}

func TestPublicPartShared(t *testing.T) {
	s := newShop(t)
	parts := s.parts()
	parts[2].TTL, parts[2].Public = time.Hour, true // the reviews
	st := startWith(t, upstreamsOf(s.upstreams()...), routeFor("GET /orders/{id}"), parts, nil,
		aggregate.WithCache(newCache(t)))
	st.get(t, "/orders/7", "Authorization", "Bearer ada")
	st.get(t, "/orders/7", "Authorization", "Bearer bob")
	if n := s.reviews.hits.Load(); n != 1 {
		t.Errorf("a public part was called %d times for two users; want 1", n)
	}
}

func TestStale(t *testing.T) {
	s := newShop(t)
	parts := s.parts()
	// Answers kept but never fresh: every request calls the upstream,
	// and a failed call finds an older answer.
	parts[1].TTL = time.Nanosecond
	parts[2].TTL = time.Nanosecond
	st := startWith(t, upstreamsOf(s.upstreams()...), routeFor("GET /orders/{id}"), parts, nil,
		aggregate.WithCache(newCache(t)), aggregate.WithTTL(time.Hour))

	if resp, doc := st.get(t, "/orders/7"); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %v", resp.StatusCode, doc)
	}
	s.customers.handle(status(http.StatusServiceUnavailable))
	s.reviews.Close()                   // unreachable
	resp, doc := st.get(t, "/orders/8") // customer c-8: never answered
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("a customer never cached, its upstream down: %d %v; want 502", resp.StatusCode, doc)
	}
	// The document of order 7 was kept whole by WithTTL: a query makes
	// another document, whose parts send the same requests as before.
	resp, doc = st.get(t, "/orders/7?v=2")
	if resp.StatusCode != 200 {
		t.Fatalf("stale parts: %d %v; want 200", resp.StatusCode, doc)
	}
	if got := field(doc, "_stale"); got != `["customer","reviews"]` {
		t.Errorf("_stale = %s; want [\"customer\",\"reviews\"]", got)
	}
	if got := resp.Header.Get(aggregate.StaleHeader); got != "customer, reviews" {
		t.Errorf("%s = %q", aggregate.StaleHeader, got)
	}
	if field(doc, "customer.id") != `"c-7"` || field(doc, "reviews.0.stars") != "5" {
		t.Errorf("stale values missing: %v", doc)
	}
	// A document with stale parts is not kept whole.
	before := s.customers.hits.Load()
	st.get(t, "/orders/7?v=2")
	if s.customers.hits.Load() == before {
		t.Errorf("a document with stale parts was served from the cache")
	}
	// A 4xx says the resource is gone: no stale answer stands in.
	s.customers.handle(status(http.StatusNotFound))
	if resp, doc := st.get(t, "/orders/7?v=3"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("customer 404 with a stale answer kept: %d %v; want 404", resp.StatusCode, doc)
	}
}

// TestCollapse checks that N identical requests at once make one call
// to each upstream, and that requests of different users are not
// collapsed together.
func TestCollapse(t *testing.T) {
	const n = 16
	s := newShop(t)
	var arrived atomic.Int64
	all := make(chan struct{})
	count := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if arrived.Add(1) == n {
				close(all)
			}
			next.ServeHTTP(w, r)
		})
	}
	orders := s.orders
	orders.handle(func(w http.ResponseWriter, r *http.Request) {
		<-all // every request has reached the gateway's route
		jsonAnswer(map[string]any{"id": "7", "customer_id": "c-7", "user": r.Header.Get("Authorization")})(w, r)
	})
	parts := s.parts()
	parts[0].Header = []string{"Authorization"}
	route := gateway.Route{Pattern: "GET /orders/{id}", Middleware: []gateway.Middleware{count, authenticate}}
	tel := telemetrytest.New(t)
	st := startWith(t, upstreamsOf(s.upstreams()...), route, parts, nil,
		aggregate.WithCache(newCache(t)), aggregate.WithTTL(time.Hour),
		aggregate.WithTracerProvider(tel.TracerProvider), aggregate.WithMeterProvider(tel.MeterProvider))

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		bodies = map[string]int{}
	)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, st.srv.URL+"/orders/7", nil)
			req.Header.Set("Authorization", "Bearer ada")
			resp, err := st.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			mu.Lock()
			bodies[resp.Status+" "+string(b)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(bodies) != 1 {
		t.Errorf("collapsed requests got different answers: %v", bodies)
	}
	for body := range bodies {
		if !strings.HasPrefix(body, "200 ") || !strings.Contains(body, `"user":"Bearer ada"`) {
			t.Errorf("answer %q", body)
		}
	}
	for _, u := range s.upstreams() {
		if got := u.hits.Load(); got != 1 {
			t.Errorf("%s called %d times for %d identical requests; want 1", u.name, got, n)
		}
	}

	// A request that joined another's aggregation says so and links to
	// its span; one that came after it ended was answered from the
	// cache.
	leaders := map[trace.SpanID]bool{}
	var followers []sdktrace.ReadOnlySpan
	for _, sp := range tel.SpansNamed(aggregate.SpanAggregation) {
		if telemetrytest.Attrs(sp)[aggregate.AttrCollapsed].AsBool() {
			followers = append(followers, sp)
		} else {
			leaders[sp.SpanContext().SpanID()] = true
		}
	}
	for _, sp := range followers {
		if l := sp.Links(); len(l) != 1 || !leaders[l[0].SpanContext.SpanID()] {
			t.Errorf("collapsed span's links %v; want the span of the aggregation it joined", l)
		}
	}
	if parts := len(tel.SpansNamed(aggregate.SpanPart)); parts != 3 {
		t.Errorf("%d part spans; want 3, of the one aggregation", parts)
	}
	t.Logf("%d of %d requests joined the aggregation in flight; the others found its document", len(followers), n-1)

	// Another user: another aggregation, with that user's data.
	_, doc := st.get(t, "/orders/7", "Authorization", "Bearer bob")
	if got := field(doc, "order.user"); got != `"Bearer bob"` {
		t.Errorf("bob got order.user = %s", got)
	}
	if got := orders.hits.Load(); got != 2 {
		t.Errorf("orders called %d times for two users; want 2", got)
	}
}

func TestShapes(t *testing.T) {
	mobile := aggregate.Select(map[string]string{
		"id":            "order.id",
		"customer.name": "customer.name",
		"stars":         "reviews.0.stars",
	})
	web := func(doc map[string]any) map[string]any { return doc }
	tests := []struct {
		name    string
		source  aggregate.ClientType
		pattern string
		path    string
		headers []string
	}{
		{"header", aggregate.FromHeader("X-Client"), "GET /orders/{id}", "/orders/7", []string{"X-Client", "mobile"}},
		{"path value", aggregate.FromPathValue("client"), "GET /{client}/orders/{id}", "/mobile/orders/7", nil},
		{"claim", aggregate.FromClaim("client"), "GET /orders/{id}", "/orders/7", []string{"Authorization", "Bearer ada", "X-Claimed-Client", "mobile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newShop(t)
			s.reviews.handle(status(500))
			st := startWith(t, upstreamsOf(s.upstreams()...), routeFor(tt.pattern), s.parts(), nil,
				aggregate.WithShapes(tt.source, map[string]aggregate.Shape{"mobile": mobile, "web": web}))
			_, doc := st.get(t, tt.path, tt.headers...)
			want := `{"_partial":{"reviews":{"error":"status","status":500}},"customer":{"name":"Ada c-7"},"id":"7"}`
			if got := jsonString(doc); got != want {
				t.Errorf("mobile document %s; want %s", got, want)
			}
		})
	}
	t.Run("unknown type", func(t *testing.T) {
		s := newShop(t)
		st := start(t, s.upstreams(), "GET /orders/{id}", s.parts(), nil,
			aggregate.WithShapes(aggregate.FromHeader("X-Client"), map[string]aggregate.Shape{"mobile": mobile}))
		if _, doc := st.get(t, "/orders/7", "X-Client", "tv"); field(doc, "customer.email") != `"ada@example.com"` {
			t.Errorf("unknown client type: %v; want the merged document", doc)
		}
	})
	t.Run("cached per type", func(t *testing.T) {
		s := newShop(t)
		st := start(t, s.upstreams(), "GET /orders/{id}", s.parts(), nil,
			aggregate.WithCache(newCache(t)), aggregate.WithTTL(time.Hour),
			aggregate.WithShapes(aggregate.FromHeader("X-Client"), map[string]aggregate.Shape{"mobile": mobile, "": web}))
		st.get(t, "/orders/7", "X-Client", "mobile")
		if _, doc := st.get(t, "/orders/7"); field(doc, "order.id") != `"7"` {
			t.Errorf("web after mobile got %v", doc)
		}
	})
}

func TestSelect(t *testing.T) {
	doc := map[string]any{"order": map[string]any{"id": 1, "lines": []any{map[string]any{"sku": "a"}}}}
	got := aggregate.Select(map[string]string{"a.b.c": "order.id", "sku": "order.lines.0.sku", "gone": "customer.name"})(doc)
	if s := jsonString(got); s != `{"a":{"b":{"c":1}},"sku":"a"}` {
		t.Errorf("Select() = %s", s)
	}
}

// TestBodyBound checks the bound of an optional part's body.
func TestBodyBound(t *testing.T) {
	s := newShop(t)
	s.reviews.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// No Content-Length: the bound is found while reading.
		w.(http.Flusher).Flush()
		_, _ = w.Write(bytes.Repeat([]byte(" "), 2048))
		_, _ = w.Write([]byte("[]"))
	})
	parts := s.parts()
	parts[2].MaxBytes = 1024
	st := start(t, s.upstreams(), "GET /orders/{id}", parts, nil)
	resp, doc := st.get(t, "/orders/7")
	if resp.StatusCode != 200 || field(doc, "_partial.reviews.error") != `"too_large"` {
		t.Errorf("%d %v; want 200 with reviews too_large", resp.StatusCode, doc)
	}
}

// TestDocumentCache checks WithTTL: a complete document is served whole,
// its parts counted as cached; one with a failed part is not kept.
func TestDocumentCache(t *testing.T) {
	tel := telemetrytest.New(t)
	s := newShop(t)
	st := start(t, s.upstreams(), "GET /orders/{id}", s.parts(), nil,
		aggregate.WithCache(newCache(t)), aggregate.WithTTL(time.Hour),
		aggregate.WithTracerProvider(tel.TracerProvider), aggregate.WithMeterProvider(tel.MeterProvider))
	_, first := st.get(t, "/orders/7")
	_, second := st.get(t, "/orders/7")
	if jsonString(first) != jsonString(second) {
		t.Errorf("cached document %v; want %v", second, first)
	}
	for _, u := range s.upstreams() {
		if n := u.hits.Load(); n != 1 {
			t.Errorf("%s called %d times; want 1", u.name, n)
		}
	}
	route := semconv.HTTPRoute("/orders/{id}")
	for _, part := range []string{"order", "customer", "reviews"} {
		if n := tel.Int64(t, aggregate.MetricParts, route, aggregate.AttrPart.String(part), aggregate.AttrOutcome.String(aggregate.OutcomeCached)); n != 1 {
			t.Errorf("%s{part=%s, outcome=cached} = %d; want 1", aggregate.MetricParts, part, n)
		}
	}

	s.reviews.handle(status(500))
	st.get(t, "/orders/8")
	st.get(t, "/orders/8")
	if n := s.orders.hits.Load(); n != 3 {
		t.Errorf("orders called %d times; want 3 (a partial document is not kept)", n)
	}
}

// TestCredentialsKeepCallersApart checks that callers with different
// credentials (Authorization, Proxy-Authorization, Cookie) never share
// an aggregation or a document, though the gateway found no principal
// for them: a Request function that sends them on (as for an upstream
// that checks the token itself) makes the document theirs.
func TestCredentialsKeepCallersApart(t *testing.T) {
	forward := func(name string) []aggregate.Part {
		return []aggregate.Part{{Name: "me", Upstream: "profiles",
			Request: func(in *http.Request, _ aggregate.Results) (*http.Request, error) {
				req, err := http.NewRequest(http.MethodGet, "/me", nil)
				if err == nil {
					req.Header.Set(name, in.Header.Get(name))
				}
				return req, err
			}}}
	}
	t.Run("collapsed", func(t *testing.T) {
		// Two users at once, no cache at all.
		const n = 2
		var arrived atomic.Int64
		all := make(chan struct{})
		count := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if arrived.Add(1) == n {
					close(all)
				}
				next.ServeHTTP(w, r)
			})
		}
		u := newUpstream(t, "profiles", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-all:
			case <-time.After(2 * time.Second):
			}
			time.Sleep(20 * time.Millisecond) // let the second request join, if it is to
			jsonAnswer(map[string]any{"user": r.Header.Get("Authorization")})(w, r)
		})
		st := startWith(t, upstreamsOf(u), gateway.Route{Pattern: "GET /me", Middleware: []gateway.Middleware{count}},
			forward("Authorization"), nil)
		users := []string{"Bearer ada", "Bearer bob"}
		var wg sync.WaitGroup
		got := make([]string, n)
		for i, user := range users {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodGet, st.srv.URL+"/me", nil)
				req.Header.Set("Authorization", user)
				resp, err := st.srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				got[i] = string(b)
			})
		}
		wg.Wait()
		for i, user := range users {
			if !strings.Contains(got[i], `"user":"`+user+`"`) {
				t.Errorf("%s got %s", user, got[i])
			}
		}
	})
	for _, name := range []string{"Authorization", "Proxy-Authorization", "Cookie"} {
		t.Run("cached by "+name, func(t *testing.T) {
			u := newUpstream(t, "profiles", func(w http.ResponseWriter, r *http.Request) {
				jsonAnswer(map[string]any{"user": r.Header.Get(name)})(w, r)
			})
			st := startWith(t, upstreamsOf(u), gateway.Route{Pattern: "GET /me"}, forward(name), nil,
				aggregate.WithCache(newCache(t)), aggregate.WithTTL(time.Hour))
			for _, user := range []string{"ada", "bob", "ada"} {
				if _, doc := st.get(t, "/me", name, user); field(doc, "me.user") != `"`+user+`"` {
					t.Errorf("%s %s got %v", name, user, doc)
				}
			}
			if n := u.hits.Load(); n != 2 {
				t.Errorf("profiles called %d times for two users, one twice; want 2", n)
			}
		})
	}
}

// countingStore is an L2 that counts the reads of documents.
type countingStore struct {
	cache.MemoryStore
	docReads atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.Contains(key, "aggregate:doc:") {
		s.docReads.Add(1)
	}
	return s.MemoryStore.Get(ctx, key)
}

// TestDocumentCacheReadOnce checks that a request not in the cache
// (WithTTL) reads it once, not once before joining the aggregation and
// again in it: with an L2 such as Redis, each read is a round trip.
func TestDocumentCacheReadOnce(t *testing.T) {
	store := &countingStore{}
	c, err := cache.New[aggregate.Entry](cache.WithStore(store), cache.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s := newShop(t)
	st := start(t, s.upstreams(), "GET /orders/{id}", s.parts(), nil, aggregate.WithCache(c), aggregate.WithTTL(time.Hour))
	if resp, doc := st.get(t, "/orders/7"); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, doc)
	}
	if n := store.docReads.Load(); n != 1 {
		t.Errorf("one request read the document's key from L2 %d times; want 1", n)
	}
}
