package ratelimit_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
)

func newLimiter(t testing.TB, l ratelimit.Limit, opts ...ratelimit.Option) *ratelimit.Limiter {
	t.Helper()
	lim, err := ratelimit.New(l, opts...)
	require.NoError(t, err)
	return lim
}

// request returns a request on route from client (set as the gateway sets
// it), with the given remote address.
func request(route, client string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://gw.test/x", nil)
	r.RemoteAddr = "192.0.2.200:4000" // the proxy in front, say
	ctx := context.Background()
	if route != "" {
		ctx = gateway.WithRoute(ctx, route)
	}
	if client != "" {
		ctx = gateway.WithClientIP(ctx, netip.MustParseAddr(client))
	}
	return r.WithContext(ctx)
}

func ctxWithRoute(ctx context.Context, route string) context.Context {
	return gateway.WithClientIP(gateway.WithRoute(ctx, route), netip.MustParseAddr("198.51.100.7"))
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

// do runs r through the middleware of each limiter, outermost first.
func do(r *http.Request, limiters ...*ratelimit.Limiter) *http.Response {
	var h http.Handler = ok
	for i := len(limiters) - 1; i >= 0; i-- {
		h = limiters[i].Middleware(h)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Result()
}

func codes(t testing.TB, n int, r func() *http.Request, limiters ...*ratelimit.Limiter) []int {
	t.Helper()
	var out []int
	for range n {
		out = append(out, do(r(), limiters...).StatusCode)
	}
	return out
}

// TestHeaders: each allowed response says the policy and what is left;
// the limited one is a 429 with Retry-After, the same fields and the
// problem body (draft-ietf-httpapi-ratelimit-headers-10).
func TestHeaders(t *testing.T) {
	l := newLimiter(t, ratelimit.Limit{Name: "api", Requests: 3, Per: time.Minute, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes})
	var remaining []string
	for range 3 {
		resp := do(request("GET /x", "198.51.100.7"), l)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, `"api";q=3;w=60`, resp.Header.Get("RateLimit-Policy"))
		remaining = append(remaining, resp.Header.Get("RateLimit"))
	}
	assert.Equal(t, []string{`"api";r=2;t=20`, `"api";r=1;t=20`, `"api";r=0;t=20`}, remaining)

	resp := do(request("GET /x", "198.51.100.7"), l)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "20", resp.Header.Get("Retry-After"))
	assert.Equal(t, `"api";r=0;t=20`, resp.Header.Get("RateLimit"))
	assert.Equal(t, `"api";q=3;w=60`, resp.Header.Get("RateLimit-Policy"))
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	body, _ := io.ReadAll(resp.Body)
	assert.JSONEq(t, `{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded",
		"title":"Request cannot be satisfied as assigned quota has been exceeded",
		"status":429,"violated-policies":["api"]}`, string(body))

	resp = do(request("GET /x", "198.51.100.8"), l)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another client")
	assert.Equal(t, `"api";r=2;t=20`, resp.Header.Get("RateLimit"))
}

// TestPolicyWindows: the policy's q and w for rates whose period is not a
// whole number of seconds; a full bucket's RateLimit has no t.
func TestPolicyWindows(t *testing.T) {
	for _, c := range []struct {
		per      time.Duration
		requests int
		want     string
	}{
		{time.Second, 10, `"p";q=10;w=1`},
		{100 * time.Millisecond, 5, `"p";q=50;w=1`},
		{1500 * time.Millisecond, 3, `"p";q=4;w=2`},
		{time.Hour, 1000, `"p";q=1000;w=3600`},
	} {
		l := newLimiter(t, ratelimit.Limit{Name: "p", Requests: c.requests, Per: c.per, Burst: 1000, Key: ratelimit.AllClients(), Scope: ratelimit.PerRoute})
		resp := do(request("GET /x", "198.51.100.1"), l)
		assert.Equal(t, c.want, resp.Header.Get("RateLimit-Policy"), "%d per %v", c.requests, c.per)
	}
}

// TestAcrossRoutes is the regression test of the Traefik bug that applied
// a limit configured once N times over N routes: one AcrossRoutes limiter
// listed on two routes gives a client one budget for both.
func TestAcrossRoutes(t *testing.T) {
	l := newLimiter(t, ratelimit.Limit{Name: "shared", Requests: 3, Per: time.Hour, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes})
	got := []int{
		do(request("GET /orders", "198.51.100.7"), l).StatusCode,
		do(request("GET /users", "198.51.100.7"), l).StatusCode,
		do(request("GET /orders", "198.51.100.7"), l).StatusCode,
		do(request("GET /users", "198.51.100.7"), l).StatusCode,
		do(request("GET /orders", "198.51.100.7"), l).StatusCode,
	}
	assert.Equal(t, []int{200, 200, 200, 429, 429}, got)
}

// TestPerRoute: one PerRoute limiter listed on two routes gives a client a
// budget on each.
func TestPerRoute(t *testing.T) {
	l := newLimiter(t, ratelimit.Limit{Name: "each", Requests: 2, Per: time.Hour, Key: ratelimit.ByClientIP(), Scope: ratelimit.PerRoute})
	assert.Equal(t, []int{200, 200, 429}, codes(t, 3, func() *http.Request { return request("GET /orders", "198.51.100.7") }, l))
	assert.Equal(t, []int{200, 200, 429}, codes(t, 3, func() *http.Request { return request("GET /users", "198.51.100.7") }, l))
}

// TestLimitersDoNotShare is the regression test of the Traefik bug that
// let two middlewares share a budget: two limiters, even of the same name,
// keep their own; stacked on one route, both apply and both report.
func TestLimitersDoNotShare(t *testing.T) {
	limit := ratelimit.Limit{Name: "same", Requests: 1, Per: time.Hour, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes}
	a, b := newLimiter(t, limit), newLimiter(t, limit)
	assert.Equal(t, 200, do(request("GET /a", "198.51.100.7"), a).StatusCode)
	assert.Equal(t, 200, do(request("GET /b", "198.51.100.7"), b).StatusCode, "b spent a's budget")

	perMinute := newLimiter(t, ratelimit.Limit{Name: "minute", Requests: 5, Per: time.Minute, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes})
	perHour := newLimiter(t, ratelimit.Limit{Name: "hour", Requests: 2, Per: time.Hour, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes})
	resp := do(request("GET /c", "198.51.100.9"), perMinute, perHour)
	assert.Equal(t, []string{`"minute";q=5;w=60`, `"hour";q=2;w=3600`}, resp.Header.Values("RateLimit-Policy"))
	assert.Equal(t, []string{`"minute";r=4;t=12`, `"hour";r=1;t=1800`}, resp.Header.Values("RateLimit"))
	assert.Equal(t, []int{200, 429}, codes(t, 2, func() *http.Request { return request("GET /c", "198.51.100.9") }, perMinute, perHour))
}

// TestClientIPNotHeaders: the key is the address the gateway derived, not
// X-Forwarded-For, which a client sets to anything; outside a gateway,
// the connection's peer address.
func TestClientIPNotHeaders(t *testing.T) {
	l := newLimiter(t, ratelimit.Limit{Name: "ip", Requests: 2, Per: time.Hour, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes})
	i := 0
	spoofed := func() *http.Request {
		r := request("GET /x", "198.51.100.7")
		i++
		r.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		r.Header.Set("Forwarded", fmt.Sprintf("for=203.0.113.%d", i))
		return r
	}
	assert.Equal(t, []int{200, 200, 429, 429}, codes(t, 4, spoofed, l))

	bare := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://svc.test/x", nil)
		r.RemoteAddr = "203.0.113.50:1234"
		i++
		r.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		return r
	}
	assert.Equal(t, []int{200, 200, 429}, codes(t, 3, bare, l), "outside a gateway")
}

// TestIPv6Prefix: addresses of one /64 share a budget by default; with
// WithIPv6Prefix(128) each address has its own.
func TestIPv6Prefix(t *testing.T) {
	limit := ratelimit.Limit{Name: "v6", Requests: 2, Per: time.Hour, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes}
	l := newLimiter(t, limit)
	i := 0
	rotating := func() *http.Request { i++; return request("GET /x", fmt.Sprintf("2001:db8:1:2::%x", i)) }
	assert.Equal(t, []int{200, 200, 429}, codes(t, 3, rotating, l))
	assert.Equal(t, 200, do(request("GET /x", "2001:db8:1:3::1"), l).StatusCode, "another /64")

	each := newLimiter(t, limit, ratelimit.WithIPv6Prefix(128))
	assert.Equal(t, []int{200, 200, 200}, codes(t, 3, rotating, each))
	mapped := newLimiter(t, limit)
	assert.Equal(t, 200, do(request("GET /x", "::ffff:198.51.100.7"), mapped).StatusCode)
	assert.Equal(t, 200, do(request("GET /x", "198.51.100.7"), mapped).StatusCode)
	assert.Equal(t, 429, do(request("GET /x", "::ffff:198.51.100.7"), mapped).StatusCode, "an IPv4-mapped address is its IPv4 address")
}

// TestByClaim: budgets per subject (an API key's name, a JWT's sub) or
// per claim; a request without the claim is keyed by its address.
func TestByClaim(t *testing.T) {
	l := newLimiter(t, ratelimit.Limit{Name: "user", Requests: 1, Per: time.Hour, Key: ratelimit.ByClaim("sub"), Scope: ratelimit.AcrossRoutes})
	as := func(sub, ip string) *http.Request {
		r := request("GET /x", ip)
		if sub == "" {
			return r
		}
		return r.WithContext(gateway.WithPrincipal(r.Context(), &gateway.Principal{Subject: sub}))
	}
	assert.Equal(t, 200, do(as("alice", "198.51.100.1"), l).StatusCode)
	assert.Equal(t, 429, do(as("alice", "198.51.100.2"), l).StatusCode, "alice from another address")
	assert.Equal(t, 200, do(as("bob", "198.51.100.1"), l).StatusCode)
	assert.Equal(t, 200, do(as("", "198.51.100.1"), l).StatusCode, "anonymous: by address")
	assert.Equal(t, 429, do(as("", "198.51.100.1"), l).StatusCode)

	tenant := newLimiter(t, ratelimit.Limit{Name: "tenant", Requests: 1, Per: time.Hour, Key: ratelimit.ByClaim("tenant"), Scope: ratelimit.AcrossRoutes})
	withTenant := func(tn any) *http.Request {
		r := request("GET /x", "198.51.100.1")
		return r.WithContext(gateway.WithPrincipal(r.Context(), &gateway.Principal{Subject: "x", Claims: map[string]any{"tenant": tn}}))
	}
	assert.Equal(t, 200, do(withTenant("acme"), tenant).StatusCode)
	assert.Equal(t, 429, do(withTenant("acme"), tenant).StatusCode)
	assert.Equal(t, 200, do(withTenant(7.0), tenant).StatusCode)

	// Numbers past 2^53 lost digits when the token was read (these two
	// IDs read as one float64): they count as no claim, and the requests,
	// from two addresses, get a budget each.
	ids := newLimiter(t, ratelimit.Limit{Name: "uid", Requests: 1, Per: time.Hour, Key: ratelimit.ByClaim("uid"), Scope: ratelimit.AcrossRoutes})
	withUID := func(uid float64, ip string) *http.Request {
		r := request("GET /x", ip)
		return r.WithContext(gateway.WithPrincipal(r.Context(), &gateway.Principal{Subject: "x", Claims: map[string]any{"uid": uid}}))
	}
	assert.Equal(t, 200, do(withUID(1234567890123456789, "198.51.100.3"), ids).StatusCode)
	assert.Equal(t, 200, do(withUID(1234567890123456790, "198.51.100.4"), ids).StatusCode, "another user, read as the same number")
}

// TestByHeaderAndAllClients: a header's value keys the budget (a long one
// by its digest); AllClients has one budget for everybody.
func TestByHeaderAndAllClients(t *testing.T) {
	l := newLimiter(t, ratelimit.Limit{Name: "tenant", Requests: 1, Per: time.Hour, Key: ratelimit.ByHeader("x-tenant"), Scope: ratelimit.PerRoute})
	with := func(v string) *http.Request {
		r := request("GET /x", "198.51.100.1")
		r.Header.Set("X-Tenant", v)
		return r
	}
	long := string(make([]byte, 200)) + "a"
	assert.Equal(t, 200, do(with("acme"), l).StatusCode)
	assert.Equal(t, 429, do(with("acme"), l).StatusCode)
	assert.Equal(t, 200, do(with(long), l).StatusCode)
	assert.Equal(t, 429, do(with(long), l).StatusCode)

	all := newLimiter(t, ratelimit.Limit{Name: "all", Requests: 2, Per: time.Hour, Key: ratelimit.AllClients(), Scope: ratelimit.PerRoute})
	assert.Equal(t, 200, do(request("GET /x", "198.51.100.1"), all).StatusCode)
	assert.Equal(t, 200, do(request("GET /x", "198.51.100.2"), all).StatusCode)
	assert.Equal(t, 429, do(request("GET /x", "198.51.100.3"), all).StatusCode)
	assert.Equal(t, 200, do(request("GET /y", "198.51.100.3"), all).StatusCode, "another route")
}

// TestAllow: the non-HTTP form.
func TestAllow(t *testing.T) {
	l := newLimiter(t, ratelimit.Limit{Name: "jobs", Requests: 2, Per: time.Minute, Key: ratelimit.AllClients(), Scope: ratelimit.AcrossRoutes})
	d, err := l.Allow(t.Context(), "tenant-1")
	require.NoError(t, err)
	assert.Equal(t, ratelimit.Decision{Allowed: true, Limit: 2, Remaining: 1, Reset: d.Reset}, d)
	assert.InDelta(t, 30*time.Second, d.Reset, float64(time.Second))
	_, _ = l.Allow(t.Context(), "tenant-1")
	d, err = l.Allow(t.Context(), "tenant-1")
	require.NoError(t, err)
	assert.False(t, d.Allowed)
	assert.InDelta(t, 30*time.Second, d.RetryAfter, float64(time.Second))
}

// TestConfigErrors: New names every bad field and option at once.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name  string
		limit ratelimit.Limit
		opts  []ratelimit.Option
		want  []string
	}{
		{"zero", ratelimit.Limit{}, nil, []string{"Limit.Name", "Limit.Requests", "Limit.Per", "Limit.Key", "Limit.Scope"}},
		{"bad name", ratelimit.Limit{Name: `a"b`, Requests: 1, Per: time.Second, Key: ratelimit.AllClients(), Scope: ratelimit.PerRoute}, nil, []string{"Limit.Name"}},
		{"bad header", ratelimit.Limit{Name: "a", Requests: 1, Per: time.Second, Key: ratelimit.ByHeader("a b"), Scope: ratelimit.PerRoute}, nil, []string{"ByHeader"}},
		{"empty claim", ratelimit.Limit{Name: "a", Requests: 1, Per: time.Second, Key: ratelimit.ByClaim(""), Scope: ratelimit.PerRoute}, nil, []string{"ByClaim"}},
		{"options", ratelimit.Limit{Name: "a", Requests: 1, Per: time.Second, Burst: -1, Key: ratelimit.AllClients(), Scope: ratelimit.Scope(7)},
			[]ratelimit.Option{ratelimit.WithMaxKeys(0), ratelimit.WithRedisTimeout(0), ratelimit.WithIPv6Prefix(0)},
			[]string{"Limit.Burst", "Limit.Scope", "WithMaxKeys(0)", "WithRedisTimeout(0s)", "WithIPv6Prefix(0)"}},
		{"nil option", ratelimit.Limit{Name: "a", Requests: 1, Per: time.Second, Key: ratelimit.AllClients(), Scope: ratelimit.PerRoute},
			[]ratelimit.Option{ratelimit.WithMaxKeys(10), nil}, []string{"ratelimit: opts[1] is nil"}},
		{"nil option among bad fields", ratelimit.Limit{}, []ratelimit.Option{nil}, []string{"opts[0] is nil", "Limit.Name", "Limit.Requests"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := ratelimit.New(c.limit, c.opts...)
			require.Error(t, err)
			assert.Nil(t, l)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
