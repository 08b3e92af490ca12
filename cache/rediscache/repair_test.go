package rediscache_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/faultproxy"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestFailedWritesAreMissedThenRepaired checks the store on its own: a
// key whose Set, Delete or Publish failed is missed by Get without a
// round trip, refused by Add, and, once Redis answers, deleted and
// announced by a source that is no cache's, then trusted again.
func TestFailedWritesAreMissedThenRepaired(t *testing.T) {
	client := sharedClient(t)
	proxy := faultproxy.New(t, testenv.RedisAddr(t))
	tel := telemetrytest.New(t)
	prefix, channel := namespace(t)
	t.Cleanup(func() { deleteKeys(t, client, prefix) })
	s := newStoreIn(t, newClient(t, proxy.Addr()), prefix, channel, rediscache.WithTimeout(faultTimeout),
		rediscache.WithTracerProvider(tel.TracerProvider), rediscache.WithMeterProvider(tel.MeterProvider))
	watcher := newEvents()
	subscribe(t, newStoreIn(t, client, prefix, channel), watcher)
	ctx := ctxWithin(t, 10*time.Second)
	for _, k := range []string{"set", "deleted", "published"} {
		require.NoError(t, s.Set(ctx, k, []byte("v1"), 0))
	}

	proxy.Cut()
	assert.Error(t, s.Set(ctx, "set", []byte("v2"), 0))
	assert.Error(t, s.Delete(ctx, "deleted"))
	assert.Error(t, s.Publish(ctx, "src", "published"))
	assert.Equal(t, int64(3), tel.Int64(t, "rediscache.dirty.keys"))
	spans := len(tel.Spans.Ended())
	for _, k := range []string{"set", "deleted", "published"} {
		_, err := s.Get(ctx, k)
		assert.ErrorIs(t, err, cache.ErrNotFound, "Get(%q) of a dirty key", k)
		added, err := s.Add(ctx, k, []byte("v3"), 0)
		assert.False(t, added, "Add(%q) of a dirty key", k)
		assert.NoError(t, err, "Add(%q) of a dirty key", k)
	}
	assert.Len(t, tel.Spans.Ended(), spans, "round trips for dirty keys")
	_, err := s.Get(ctx, "clean")
	assert.False(t, errors.Is(err, cache.ErrNotFound), "Get of a clean key with Redis cut off = %v; want a failure", err)

	proxy.Restore()
	got := map[string]bool{}
	for len(got) < 3 {
		a := watcher.nextRaw(t, 5*time.Second)
		source, key, _ := strings.Cut(a, " ")
		require.True(t, strings.HasPrefix(source, "rediscache-repair-"), "announcement %q", a)
		got[key] = true
	}
	assert.Equal(t, map[string]bool{"set": true, "deleted": true, "published": true}, got, "keys announced")
	require.Eventually(t, func() bool { return tel.Int64(t, "rediscache.dirty.keys") == 0 },
		5*time.Second, 10*time.Millisecond, "dirty keys after the repair")
	assert.Equal(t, int64(3), tel.Int64(t, "rediscache.repairs"))
	for _, k := range []string{"set", "deleted", "published"} {
		assert.ErrorIs(t, client.Get(ctx, prefix+k).Err(), redis.Nil, "%s in Redis after the repair", k)
	}
	added, err := s.Add(ctx, "set", []byte("v3"), 0)
	require.NoError(t, err)
	assert.True(t, added, "Add once repaired")
	v, err := s.Get(ctx, "set")
	require.NoError(t, err)
	assert.Equal(t, []byte("v3"), v)
	require.NoError(t, s.Close())
}

// TestBreakerRejectsOnlyAfterInfrastructureFailures: missing keys and
// error replies do not open the breaker; connection failures do, after
// DefaultBreakerFailures, and then calls fail with ErrOpen. Without the
// breaker every call goes to Redis.
func TestBreakerRejectsOnlyAfterInfrastructureFailures(t *testing.T) {
	client := sharedClient(t)
	s := newStore(t, client)
	ctx := ctxWithin(t, 5*time.Second)
	require.NoError(t, client.LPush(ctx, s.Prefix()+"list", "x").Err())
	for range 3 * rediscache.DefaultBreakerFailures {
		_, err := s.Get(ctx, "missing")
		require.ErrorIs(t, err, cache.ErrNotFound)
		_, err = s.Get(ctx, "list")
		require.ErrorContains(t, err, "WRONGTYPE")
	}

	dead := newClient(t, "127.0.0.1:"+itoa(freePort(t)))
	for _, tt := range []struct {
		name     string
		opts     []rediscache.Option
		rejected int
	}{
		{"default", nil, 10 - rediscache.DefaultBreakerFailures},
		{"WithBreaker", []rediscache.Option{rediscache.WithBreaker(circuitbreaker.WithConsecutiveFailures(2))}, 8},
		{"WithoutBreaker", []rediscache.Option{rediscache.WithoutBreaker()}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newServerStore(t, dead, tt.opts...)
			rejected := 0
			for range 10 {
				_, err := s.Get(ctxWithin(t, time.Second), "k")
				require.Error(t, err)
				require.False(t, errors.Is(err, cache.ErrNotFound))
				if errors.Is(err, circuitbreaker.ErrOpen) {
					rejected++
				}
			}
			assert.Equal(t, tt.rejected, rejected, "Gets rejected of 10 to a dead server")
		})
	}
}

// TestCloseReportsUnrepairedKeys: Close makes a last attempt, stops the
// repair goroutine (goleak checks), and says what it leaves behind.
func TestCloseReportsUnrepairedKeys(t *testing.T) {
	dead := newClient(t, "127.0.0.1:"+itoa(freePort(t)))
	s := newServerStore(t, dead, rediscache.WithTimeout(100*time.Millisecond))
	require.Error(t, s.Set(ctxWithin(t, time.Second), "k", []byte("v"), 0))
	err := s.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 keys")
	assert.NoError(t, s.Close(), "a second Close")
	_, err = s.Get(context.Background(), "k")
	assert.ErrorIs(t, err, cache.ErrNotFound, "Get of a key left dirty after Close")
}

// TestDoneContextIsRemembered: a Set or Delete whose context ended before
// the store's own check (after the cache's) sends nothing, but the key is
// remembered: the caller may have changed its L1, so Redis's older value
// must not be served before the repair deletes it.
func TestDoneContextIsRemembered(t *testing.T) {
	client := sharedClient(t)
	s := newStore(t, client)
	ctx := ctxWithin(t, 5*time.Second)
	for _, k := range []string{"set", "del"} {
		require.NoError(t, s.Set(ctx, k, []byte("v1"), 0))
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.Set(done, "set", []byte("v2"), 0), context.Canceled)
	require.ErrorIs(t, s.Delete(done, "del"), context.Canceled)
	for _, k := range []string{"set", "del"} {
		_, err := s.Get(ctx, k)
		assert.ErrorIs(t, err, cache.ErrNotFound, "Get(%q) after a call with a done context", k)
		assert.Eventually(t, func() bool {
			return errors.Is(client.Get(ctx, s.Prefix()+k).Err(), redis.Nil)
		}, 5*time.Second, 20*time.Millisecond, "the repair deletes %q", k)
	}
	require.NoError(t, s.Close())
}

// TestHurriedCallersDoNotOpenTheBreaker: a round trip ended by the
// caller's deadline, under half the store's timeout, is the caller's
// hurry, not Redis's failure. Counted as failures, callers with tight
// deadlines (the cache gives an L2 read half its caller's remaining time)
// opened the breaker in front of Redis; calls bounded by the store's
// timeout still open it.
func TestHurriedCallersDoNotOpenTheBreaker(t *testing.T) {
	proxy := faultproxy.New(t, testenv.RedisAddr(t))
	tel := telemetrytest.New(t)
	prefix, channel := namespace(t)
	s := newStoreIn(t, newClient(t, proxy.Addr()), prefix, channel, rediscache.WithTimeout(time.Second),
		rediscache.WithMeterProvider(tel.MeterProvider))
	freeze := proxy.Blackhole(faultproxy.Upstream)
	for range 2 * rediscache.DefaultBreakerFailures {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := s.Get(ctx, "k")
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	assert.Equal(t, circuitbreaker.StateClosed.String(), breakerState(t, tel, prefix), "after hurried callers timed out")

	hasty := newStoreIn(t, newClient(t, proxy.Addr()), prefix, channel, rediscache.WithTimeout(20*time.Millisecond),
		rediscache.WithMeterProvider(tel.MeterProvider))
	for range rediscache.DefaultBreakerFailures {
		_, err := hasty.Get(ctxWithin(t, 5*time.Second), "k")
		require.Error(t, err)
	}
	_, err := hasty.Get(ctxWithin(t, 5*time.Second), "k")
	assert.ErrorIs(t, err, circuitbreaker.ErrOpen, "after the store's own timeouts")
	freeze.Remove()
}
