package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/internal/faultproxy"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// redisClient returns a client of the Redis at addr as the package asks
// for one (ContextTimeoutEnabled), closed when the test ends.
func redisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// keyPrefix returns a Redis key prefix private to this test run, whose
// keys are deleted when the test ends.
func keyPrefix(t testing.TB, addr string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "ratelimit-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, _ := c.Keys(ctx, "rate:"+p+"*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return p
}

// TestRedisSharedBudget: two limiters of the same name on two clients, as
// in two gateway instances, spend one budget, one by one and at once;
// a limiter of another name has its own.
func TestRedisSharedBudget(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := keyPrefix(t, addr)
	limit := ratelimit.Limit{Name: "shared", Requests: 5, Per: time.Minute, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes}
	// A generous timeout and failing closed: this test is about the shared
	// budget, and a call timed out under load must not let a request
	// through (fail open, the default) nor count as allowed.
	opts := func() []ratelimit.Option {
		return []ratelimit.Option{ratelimit.WithRedis(redisClient(t, addr)), ratelimit.WithRedisKeyPrefix(prefix),
			ratelimit.WithRedisTimeout(5 * time.Second), ratelimit.WithFailClosed()}
	}
	gw1 := newLimiter(t, limit, opts()...)
	gw2 := newLimiter(t, limit, opts()...)

	var got []int
	var states []string
	for i := range 8 {
		l := gw1
		if i%2 == 1 {
			l = gw2
		}
		resp := do(request("GET /x", "198.51.100.7"), l)
		got = append(got, resp.StatusCode)
		states = append(states, resp.Header.Get("RateLimit"))
		if resp.StatusCode == http.StatusTooManyRequests {
			assert.Equal(t, "12", resp.Header.Get("Retry-After"))
		}
	}
	assert.Equal(t, []int{200, 200, 200, 200, 200, 429, 429, 429}, got)
	assert.Equal(t, []string{`"shared";r=4;t=12`, `"shared";r=3;t=12`, `"shared";r=2;t=12`, `"shared";r=1;t=12`, `"shared";r=0;t=12`,
		`"shared";r=0;t=12`, `"shared";r=0;t=12`, `"shared";r=0;t=12`}, states)

	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			l := gw1
			if i%2 == 1 {
				l = gw2
			}
			if do(request("GET /x", "198.51.100.8"), l).StatusCode == http.StatusOK {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 5, allowed.Load(), "requests allowed of 40 at once through two gateways")

	other := newLimiter(t, ratelimit.Limit{Name: "other", Requests: 5, Per: time.Minute, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes},
		ratelimit.WithRedis(redisClient(t, addr)), ratelimit.WithRedisKeyPrefix(prefix))
	assert.Equal(t, http.StatusOK, do(request("GET /x", "198.51.100.7"), other).StatusCode, "another limit's budget")

	perRoute := newLimiter(t, ratelimit.Limit{Name: "per-route", Requests: 1, Per: time.Minute, Key: ratelimit.ByClientIP(), Scope: ratelimit.PerRoute},
		ratelimit.WithRedis(redisClient(t, addr)), ratelimit.WithRedisKeyPrefix(prefix))
	assert.Equal(t, 200, do(request("GET /a", "198.51.100.7"), perRoute).StatusCode)
	assert.Equal(t, 200, do(request("GET /b", "198.51.100.7"), perRoute).StatusCode)
	assert.Equal(t, 429, do(request("GET /a", "198.51.100.7"), perRoute).StatusCode)
}

// TestRedisSharedByTwoGateways: two gateways, each with its own limiter
// and Redis client as two instances have, in front of one upstream,
// spend one budget per client: requests sent to each in turn, and
// requests sent to both at once.
func TestRedisSharedByTwoGateways(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := keyPrefix(t, addr)
	var served atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }))
	defer up.Close()
	limit := ratelimit.Limit{Name: "per-client", Requests: 5, Per: time.Minute, Key: ratelimit.ByHeader("X-Client"), Scope: ratelimit.AcrossRoutes}
	instance := func() *httptest.Server {
		// Failing closed, with a generous timeout: a call timed out under
		// load must not let a request through uncounted.
		lim := newLimiter(t, limit, ratelimit.WithRedis(redisClient(t, addr)), ratelimit.WithRedisKeyPrefix(prefix),
			ratelimit.WithRedisTimeout(5*time.Second), ratelimit.WithFailClosed())
		g, err := gateway.New(
			gateway.WithUpstreams(gateway.Upstream{Name: "items", Targets: []gateway.Target{{URL: up.URL}}}),
			gateway.WithRoutes(gateway.Route{Pattern: "GET /items/{id}", Upstream: "items", Middleware: []gateway.Middleware{lim.Middleware}}))
		require.NoError(t, err)
		srv := httptest.NewServer(g)
		t.Cleanup(func() {
			srv.Close()
			_ = g.Close()
		})
		return srv
	}
	gateways := []*httptest.Server{instance(), instance()}
	send := func(i int, client string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, gateways[i%2].URL+"/items/42", nil)
		require.NoError(t, err)
		req.Header.Set("X-Client", client)
		resp, err := gateways[i%2].Client().Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp
	}

	var got []int
	for i := range 8 {
		resp := send(i, "alice")
		got = append(got, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			assert.NotEmpty(t, resp.Header.Get("Retry-After"), "429 from gateway %d", i%2+1)
			assert.Equal(t, `"per-client";r=0;t=12`, resp.Header.Get("RateLimit"), "429 from gateway %d", i%2+1)
		}
	}
	assert.Equal(t, []int{200, 200, 200, 200, 200, 429, 429, 429}, got, "alice's requests through the two gateways in turn")
	assert.EqualValues(t, 5, served.Load(), "requests that reached the upstream")

	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if send(i, "bob").StatusCode == http.StatusOK {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 5, allowed.Load(), "bob's requests allowed of 40 at once through two gateways")
	assert.EqualValues(t, 10, served.Load(), "requests that reached the upstream")
}

// TestRedisUnreachable cuts and then freezes the connection to Redis: a
// request is never held longer than the limiter's timeout; the fail-open
// limiter lets it through and the fail-closed one answers 503, and each
// counts the error with its fail mode; once Redis is back, decisions are
// made again.
func TestRedisUnreachable(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := keyPrefix(t, addr)
	proxy := faultproxy.New(t, addr)
	tel := telemetrytest.New(t)
	const timeout = 50 * time.Millisecond
	const slack = 400 * time.Millisecond
	client := redisClient(t, proxy.Addr())
	limit := func(name string) ratelimit.Limit {
		return ratelimit.Limit{Name: name, Requests: 100, Per: time.Minute, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes}
	}
	opts := []ratelimit.Option{ratelimit.WithRedis(client), ratelimit.WithRedisKeyPrefix(prefix),
		ratelimit.WithRedisTimeout(timeout), ratelimit.WithMeterProvider(tel.MeterProvider)}
	open := newLimiter(t, limit("open"), opts...)
	closed := newLimiter(t, limit("closed"), append(opts, ratelimit.WithFailClosed())...)

	timed := func(l *ratelimit.Limiter) (*http.Response, time.Duration) {
		start := time.Now()
		resp := do(request("GET /x", "198.51.100.7"), l)
		return resp, time.Since(start)
	}
	resp, _ := timed(open)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("RateLimit"), "a decision from Redis")

	for _, fault := range []struct {
		name  string
		apply func() func()
	}{
		{"cut", func() func() { proxy.Cut(); return proxy.Restore }},
		{"frozen", func() func() { return proxy.Blackhole(faultproxy.Upstream).Remove }},
	} {
		t.Run(fault.name, func(t *testing.T) {
			undo := fault.apply()
			resp, took := timed(open)
			assert.Equal(t, http.StatusOK, resp.StatusCode, "fail open")
			assert.Empty(t, resp.Header.Get("RateLimit"), "headers without a decision")
			assert.Less(t, took, timeout+slack)

			resp, took = timed(closed)
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "fail closed")
			assert.Equal(t, "1", resp.Header.Get("Retry-After"))
			assert.Less(t, took, timeout+slack)
			undo()
			assert.Eventually(t, func() bool {
				resp, _ := timed(closed)
				return resp.StatusCode == http.StatusOK && resp.Header.Get("RateLimit") != ""
			}, 5*time.Second, 20*time.Millisecond, "decisions once Redis is back")
		})
	}

	errorPoints := map[string]int64{}
	for _, sm := range tel.Collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "gateway.ratelimit.decisions" {
				continue
			}
			for _, set := range telemetrytest.AttributeSets(m) {
				if d, _ := set.Value(ratelimit.AttrDecision); d.AsString() != ratelimit.DecisionError {
					continue
				}
				name, _ := set.Value(ratelimit.AttrName)
				mode, _ := set.Value(ratelimit.AttrFailMode)
				et, _ := set.Value(semconv.ErrorTypeKey)
				assert.NotEmpty(t, et.AsString(), "error.type")
				errorPoints[name.AsString()+"/"+mode.AsString()]++
				t.Logf("error point: %s", set.Encoded(attribute.DefaultEncoder()))
			}
		}
	}
	assert.NotZero(t, errorPoints["open/open"], "error points of the fail-open limiter: %v", errorPoints)
	assert.NotZero(t, errorPoints["closed/closed"], "error points of the fail-closed limiter: %v", errorPoints)
	assert.NotZero(t, tel.Int64(t, "gateway.ratelimit.decisions", ratelimit.AttrName.String("open"),
		ratelimit.AttrDecision.String(ratelimit.DecisionAllowed), semconv.HTTPRouteKey.String("/x")))
}

// TestRedisClientWithoutContextTimeout: New refuses a client whose calls a
// deadline could not interrupt.
func TestRedisClientWithoutContextTimeout(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	_, err := ratelimit.New(ratelimit.Limit{Name: "x", Requests: 1, Per: time.Second, Key: ratelimit.AllClients(), Scope: ratelimit.PerRoute}, ratelimit.WithRedis(c))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ContextTimeoutEnabled")
}

// The Redis limiter's RateLimit field says what the in-process one says
// of the same bucket: redis_rate's own count of the tokens left comes
// back one short for rates whose emission interval is not a binary
// fraction of a second (100 a minute, 10 a second, 1000 an hour).
func TestRedisHeadersMatchInProcess(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := keyPrefix(t, addr)
	header := func(l *ratelimit.Limiter) string {
		w := httptest.NewRecorder()
		l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, request("/x", "198.51.100.7"))
		require.Equal(t, http.StatusOK, w.Code)
		return w.Header().Get("RateLimit")
	}
	for _, lim := range []ratelimit.Limit{
		{Name: "doc", Requests: 100, Per: time.Minute, Burst: 20, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes},
		{Name: "ten", Requests: 10, Per: time.Second, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes},
		{Name: "seven", Requests: 7, Per: time.Second, Burst: 10, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes},
		{Name: "hourly", Requests: 1000, Per: time.Hour, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes},
	} {
		inProcess := newLimiter(t, lim)
		shared := newLimiter(t, lim, ratelimit.WithRedis(redisClient(t, addr)), ratelimit.WithRedisKeyPrefix(prefix),
			ratelimit.WithRedisTimeout(5*time.Second), ratelimit.WithFailClosed())
		for i := range 3 {
			want, got := header(inProcess), header(shared)
			assert.Equal(t, want, got, "%d a %v, burst %d, request %d: Redis's field against the in-process one's", lim.Requests, lim.Per, lim.Burst, i+1)
		}
	}
}

// The Redis keys of a limit per route have no braces of the route's
// pattern ("{id}"), which Redis Cluster would read as a hash tag and
// hash every bucket of such routes to one node; two routes that differ
// only in how they spell a brace keep two buckets.
func TestRedisKeysHaveNoHashTag(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := keyPrefix(t, addr)
	lim := newLimiter(t, ratelimit.Limit{Name: "tags", Requests: 5, Per: time.Minute, Key: ratelimit.ByClientIP(), Scope: ratelimit.PerRoute},
		ratelimit.WithRedis(redisClient(t, addr)), ratelimit.WithRedisKeyPrefix(prefix))
	h := lim.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, route := range []string{"GET /orders/{id}", "GET /orders/%7Bid%7D"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request(route, "198.51.100.7"))
		require.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, `"tags";r=4;t=12`, w.Header().Get("RateLimit"), "route %s: its own bucket", route)
	}
	c := redisClient(t, addr)
	keys, err := c.Keys(context.Background(), "*"+prefix+"*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 2, "one key a route: %q", keys)
	for _, k := range keys {
		assert.NotContains(t, strings.TrimPrefix(k, prefix), "{", "key %q", k)
	}
}
