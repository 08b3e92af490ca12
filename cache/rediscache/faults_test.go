package rediscache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/faultproxy"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// The scenarios of issue 12 with two cache instances, each reaching the
// shared Redis through a fault-injecting proxy of its own, read by
// concurrent readers while Redis is cut off or frozen.

// faultTimeout is the store timeout of the scenarios: short, so that each
// scenario stays within a few seconds.
const faultTimeout = 200 * time.Millisecond

// pair is two cache instances sharing a prefix and channel, each behind
// its own proxy to the shared Redis.
type pair struct {
	src     *source
	a, b    *instance
	pa, pb  *faultproxy.Proxy
	prefix  string
	channel string
	// telA is where a's store sends its spans and metrics (and those of
	// its breaker).
	telA *telemetrytest.Providers
}

func newPair(t *testing.T, opts ...rediscache.Option) *pair {
	t.Helper()
	addr := testenv.RedisAddr(t)
	prefix, channel := namespace(t)
	t.Cleanup(func() { deleteKeys(t, sharedClient(t), prefix) })
	p := &pair{src: newSource(), pa: faultproxy.New(t, addr), pb: faultproxy.New(t, addr),
		prefix: prefix, channel: channel, telA: telemetrytest.New(t)}
	opts = append([]rediscache.Option{rediscache.WithTimeout(faultTimeout)}, opts...)
	optsA := append(opts[:len(opts):len(opts)],
		rediscache.WithTracerProvider(p.telA.TracerProvider), rediscache.WithMeterProvider(p.telA.MeterProvider))
	p.a = newInstance(t, "a", p.pa.Addr(), prefix, channel, p.src, optsA...)
	p.b = newInstance(t, "b", p.pb.Addr(), prefix, channel, p.src, opts...)
	return p
}

// roundTrips returns how many round trips a's store started (its spans
// named after the commands).
func (p *pair) roundTrips(commands ...string) int {
	n := 0
	for _, c := range commands {
		n += len(p.telA.SpansNamed(c))
	}
	return n
}

func (p *pair) cut() {
	p.pa.Cut()
	p.pb.Cut()
}

func (p *pair) restore() {
	p.pa.Restore()
	p.pb.Restore()
}

// staleness watches the values concurrent readers get: a value is stale
// for an instance once the instance has acknowledged a newer write or
// delete (for the writer) or once the scenario declares the outage
// repaired (for every instance).
type staleness struct {
	mu    sync.Mutex
	stale map[string]map[string]string // instance → key → stale value ("" for any value: deleted)
	seen  []string
}

func newStaleness() *staleness { return &staleness{stale: map[string]map[string]string{}} }

// forbid makes value (or, for a deleted key, any value) of key stale for
// instance from now on.
func (s *staleness) forbid(instance, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stale[instance] == nil {
		s.stale[instance] = map[string]string{}
	}
	s.stale[instance][key] = value
}

// snapshot returns what is stale for instance now, to check a Get that
// starts now against.
func (s *staleness) snapshot(instance string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]string, len(s.stale[instance]))
	for k, v := range s.stale[instance] {
		m[k] = v
	}
	return m
}

func (s *staleness) check(instance string, before map[string]string, key, got string, err error) {
	stale, forbidden := before[key]
	if !forbidden || err != nil {
		return
	}
	if stale == "" || got == stale {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.seen) < 20 {
			s.seen = append(s.seen, fmt.Sprintf("%s.Get(%q) = %q after it was overwritten or deleted", instance, key, got))
		}
	}
}

func (s *staleness) violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// read runs readers goroutines per instance, each getting keys in turn,
// until the returned stop is called.
func (s *staleness) read(t *testing.T, readers int, keys []string, ins ...*instance) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, in := range ins {
		for r := range readers {
			wg.Go(func() {
				for i := r; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					k := keys[i%len(keys)]
					before := s.snapshot(in.name)
					got, err := in.cache.Get(ctxWithin(t, 2*time.Second), k)
					s.check(in.name, before, k, got, err)
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	var once sync.Once
	stop = func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
	t.Cleanup(stop)
	return stop
}

// settled waits until every instance gets want for every key ("" for a
// missing key).
func settled(t *testing.T, want map[string]string, wait time.Duration, ins ...*instance) {
	t.Helper()
	var last string
	ok := assert.Eventually(t, func() bool {
		for _, in := range ins {
			for k, w := range want {
				got, err := in.cache.Get(ctxWithin(t, time.Second), k)
				switch {
				case w == "" && errors.Is(err, cache.ErrNotFound):
				case w != "" && err == nil && got == w:
				default:
					last = fmt.Sprintf("%s.Get(%q) = %q, %v; want %q", in.name, k, got, err, w)
					return false
				}
			}
		}
		return true
	}, wait, 20*time.Millisecond)
	if !ok {
		t.Fatalf("the caches did not settle after the outage: %s", last)
	}
}

// TestWriteDuringCutIsNotUndone protects issue 12.1: a Set and a Delete
// that instance a acknowledged locally while Redis was cut off used to be
// undone once Redis came back: each instance dropped its L1 on
// resubscribing and served the old value from L2 (v1, and the deleted
// key's value) until its TTL, the writer too.
//
// The writer must never serve the old values once its Set and Delete
// returned; once the writer has repaired L2, no instance may. When only
// the writer is cut off, b never resubscribes: only the writer's
// announcement of the repaired keys drops b's copies.
func TestWriteDuringCutIsNotUndone(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cut     func(p *pair)
		restore func(p *pair)
	}{
		{"every instance cut off", (*pair).cut, (*pair).restore},
		{"only the writer cut off", func(p *pair) { p.pa.Cut() }, func(p *pair) { p.pa.Restore() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t)
			p.src.put("k", "v1")
			p.src.put("gone", "old")
			keys := []string{"k", "gone"}
			for _, in := range []*instance{p.a, p.b} {
				in.mustGet(t, "k", "v1")
				in.mustGet(t, "gone", "old")
			}
			st := newStaleness()
			stop := st.read(t, 4, keys, p.a, p.b)

			tt.cut(p)
			// The application writes the source of truth, then the cache.
			p.src.put("k", "v2")
			err := p.a.cache.Set(ctxWithin(t, time.Second), "k", "v2")
			require.Error(t, err, "Set with Redis cut off")
			st.forbid("a", "k", "v1")
			p.src.delete("gone")
			err = p.a.cache.Delete(ctxWithin(t, time.Second), "gone")
			require.Error(t, err, "Delete with Redis cut off")
			st.forbid("a", "gone", "")
			time.Sleep(300 * time.Millisecond) // readers run through the outage
			tt.restore(p)

			settled(t, map[string]string{"k": "v2", "gone": ""}, 5*time.Second, p.a, p.b)
			st.forbid("b", "k", "v1")
			st.forbid("b", "gone", "")
			time.Sleep(400 * time.Millisecond) // and after it
			stop()
			assert.Empty(t, st.violations(), "stale values served")
		})
	}
}

// TestFrozenRedisCostsOneTimeoutThenRejections protects issue 12.2: with
// instance a's Redis frozen (every byte it sends dropped), every miss used
// to wait for the L2 GET and then for the L2 SET, each up to the store
// timeout, and every Set and Delete for the SET or DEL and then for the
// PUBLISH. Now the store's breaker opens after a few timeouts and the
// rest fail at once, without a round trip, while the loader answers every
// Get. Counted, not timed: the round trips a's store started.
func TestFrozenRedisCostsOneTimeoutThenRejections(t *testing.T) {
	p := newPair(t)
	const readers, gets = 8, 16
	for i := range readers * gets {
		p.src.put(fmt.Sprint("key-", i), fmt.Sprint("value-", i))
	}
	p.src.put("k", "v1")
	p.a.mustGet(t, "k", "v1")
	p.b.mustGet(t, "k", "v1")
	st := newStaleness()
	stopB := st.read(t, 2, []string{"k"}, p.b) // b's Redis is fine

	freeze := p.pa.Blackhole(faultproxy.Upstream)
	before := p.roundTrips("GET", "SET", "DEL", "PUBLISH")
	var wg sync.WaitGroup
	var failed sync.Map
	for r := range readers {
		wg.Go(func() {
			for i := r * gets; i < (r+1)*gets; i++ {
				k := fmt.Sprint("key-", i)
				if got, err := p.a.cache.Get(ctxWithin(t, 5*time.Second), k); err != nil || got != fmt.Sprint("value-", i) {
					failed.Store(k, fmt.Sprintf("%q, %v", got, err))
				}
			}
		})
	}
	wg.Wait()
	failed.Range(func(k, v any) bool {
		t.Errorf("a.Get(%q) with Redis frozen = %v; want the loaded value", k, v)
		return true
	})
	// Each Get is a GET, and a SET (the fill, in the background, dropped
	// when 64 are in flight) when the breaker lets them through. It opens
	// after DefaultBreakerFailures timeouts, with up to one round trip per
	// reader (and fill) in flight then, and lets a probe through each
	// DefaultBreakerOpenDuration.
	require.NoError(t, p.a.cache.Flush(ctxWithin(t, 5*time.Second)), "waiting for a's L2 fills")
	calls := 2 * readers * gets
	trips := p.roundTrips("GET", "SET", "DEL", "PUBLISH") - before
	assert.LessOrEqual(t, trips, rediscache.DefaultBreakerFailures+2*readers+4,
		"round trips of up to %d L2 calls with Redis frozen; want the breaker to reject most", calls)
	// Every Get's GET reaches the store; those that made no round trip
	// were rejected.
	rejected := p.telA.Int64(t, "circuitbreaker.calls", circuitbreaker.AttrName.String("rediscache:"+p.prefix),
		circuitbreaker.AttrOutcome.String("rejected"))
	assert.GreaterOrEqual(t, rejected, int64(readers*gets-trips), "rejected calls")

	// Set and Delete fail at once once the breaker is open: no SET, DEL
	// or PUBLISH is sent.
	require.Equal(t, circuitbreaker.StateOpen.String(), breakerState(t, p.telA, p.prefix), "the breaker after the frozen misses")
	before = p.roundTrips("SET", "DEL", "PUBLISH")
	p.src.put("k", "v2")
	err := p.a.cache.Set(ctxWithin(t, 5*time.Second), "k", "v2")
	assert.ErrorIs(t, err, circuitbreaker.ErrOpen, "Set with the breaker open")
	st.forbid("a", "k", "v1")
	err = p.a.cache.Delete(ctxWithin(t, 5*time.Second), "key-0")
	assert.ErrorIs(t, err, circuitbreaker.ErrOpen, "Delete with the breaker open")
	assert.Equal(t, before, p.roundTrips("SET", "DEL", "PUBLISH"), "round trips of Set and Delete with the breaker open")
	stopA := st.read(t, 2, []string{"k"}, p.a)

	freeze.Remove()
	// A probe closes the breaker; the failed Set is repaired, and b
	// drops its copy of v1.
	settled(t, map[string]string{"k": "v2"}, 5*time.Second, p.a, p.b)
	assert.Eventually(t, func() bool { return breakerState(t, p.telA, p.prefix) == circuitbreaker.StateClosed.String() },
		5*time.Second, 20*time.Millisecond, "the breaker once Redis answers")
	assert.Eventually(t, func() bool { return p.telA.Int64(t, "rediscache.dirty.keys") == 0 },
		5*time.Second, 20*time.Millisecond, "dirty keys once Redis answers")
	st.forbid("b", "k", "v1")
	time.Sleep(200 * time.Millisecond)
	stopA()
	stopB()
	assert.Empty(t, st.violations(), "stale values served")
}

// breakerState returns the state the circuitbreaker.state gauge reports.
// The store's breaker is named after its prefix.
func breakerState(t *testing.T, tel *telemetrytest.Providers, prefix string) string {
	t.Helper()
	for _, s := range []circuitbreaker.State{circuitbreaker.StateClosed, circuitbreaker.StateOpen, circuitbreaker.StateHalfOpen} {
		if tel.Int64(t, "circuitbreaker.state", circuitbreaker.AttrName.String("rediscache:"+prefix),
			circuitbreaker.AttrState.String(s.String())) == 1 {
			return s.String()
		}
	}
	return "unknown"
}

// TestOverflowBypassesThenFlushes writes more keys during a cut than a's
// store remembers: a then trusts no key in Redis (every Get misses)
// until it has deleted every key under the prefix, and only those, and
// announced a clear of every L1; no instance serves a value overwritten
// during the cut once that is done, and a never does.
func TestOverflowBypassesThenFlushes(t *testing.T) {
	p := newPair(t, rediscache.WithMaxDirtyKeys(3))
	client := sharedClient(t)
	ctx := ctxWithin(t, 10*time.Second)
	// A key of another namespace, whose name starts like the prefix.
	sibling := strings.TrimSuffix(p.prefix, ":") + "-sibling"
	require.NoError(t, client.Set(ctx, sibling, "x", time.Minute).Err())
	t.Cleanup(func() { client.Del(context.Background(), sibling) })
	// A subscriber whose connection is not cut: its reconnected is called
	// only by the announcement of the clear.
	watcher := newEvents()
	subscribe(t, newStoreIn(t, client, p.prefix, p.channel), watcher)

	var keys []string
	for i := range 6 {
		k := fmt.Sprint("o", i)
		keys = append(keys, k)
		p.src.put(k, "v1")
		p.a.mustGet(t, k, "v1")
		p.b.mustGet(t, k, "v1")
	}
	p.src.put("untouched", "u1")
	p.a.mustGet(t, "untouched", "u1")
	// Loaded values reach L2 in the background: wait for them.
	require.NoError(t, p.a.cache.Flush(ctx))
	require.NoError(t, p.b.cache.Flush(ctx))
	require.Equal(t, int64(1), client.Exists(ctx, p.prefix+"untouched").Val())
	st := newStaleness()
	stop := st.read(t, 3, keys, p.a, p.b)

	p.cut()
	for _, k := range keys {
		p.src.put(k, "v2")
		require.Error(t, p.a.cache.Set(ctxWithin(t, time.Second), k, "v2"), "Set(%q) with Redis cut off", k)
		st.forbid("a", k, "v1")
	}
	assert.Equal(t, int64(1), p.telA.Int64(t, "rediscache.bypass"), "bypass after more failed writes than remembered")
	time.Sleep(200 * time.Millisecond)
	p.restore()

	want := map[string]string{}
	for _, k := range keys {
		want[k] = "v2"
	}
	settled(t, want, 5*time.Second, p.a, p.b)
	require.Eventually(t, func() bool { return p.telA.Int64(t, "rediscache.flushes") >= 1 },
		5*time.Second, 20*time.Millisecond, "the prefix should be flushed")
	for _, k := range keys {
		st.forbid("b", k, "v1")
	}
	assert.Equal(t, int64(0), p.telA.Int64(t, "rediscache.bypass"), "bypass after the flush")
	assert.Equal(t, int64(0), client.Exists(ctx, p.prefix+"untouched").Val(), "a key under the prefix after the flush")
	assert.Equal(t, "x", client.Get(ctx, sibling).Val(), "a key outside the prefix after the flush")
	watcher.waitReconnected(t, 2*time.Second)
	time.Sleep(300 * time.Millisecond)
	stop()
	assert.Empty(t, st.violations(), "stale values served")
}

func (s *source) delete(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, k)
}

// TestHugeKeysAreShortenedInErrors: the store's errors held the whole key,
// so that a cache's Set or Delete of a 1 MiB key failing at L2 returned
// (and its cache.l2.* span recorded) a 1 MiB error, although the cache
// shortens the keys in its own part of the text.
func TestHugeKeysAreShortenedInErrors(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix, channel := namespace(t)
	p := faultproxy.New(t, addr)
	t.Cleanup(func() { deleteKeys(t, sharedClient(t), prefix) })
	store := newStoreIn(t, newClient(t, p.Addr()), prefix, channel,
		rediscache.WithTimeout(faultTimeout), rediscache.WithoutBreaker())
	p.Cut()
	huge := strings.Repeat("k", 1<<20)
	ctx := context.Background()
	_, getErr := store.Get(ctx, huge)
	_, addErr := store.Add(ctx, huge, []byte("v"), time.Minute)
	for what, err := range map[string]error{
		"Get":               getErr,
		"Set":               store.Set(ctx, huge, []byte("v"), time.Minute),
		"Set, negative ttl": store.Set(ctx, huge, []byte("v"), -1),
		"Add":               addErr,
		"Delete":            store.Delete(ctx, huge),
		"Publish":           store.Publish(ctx, "src", huge),
	} {
		require.Error(t, err, what)
		assert.LessOrEqual(t, len(err.Error()), 1024, "%s of a 1 MiB key: error of %d bytes: %.200s…", what, len(err.Error()), err.Error())
	}
	p.Restore()
}
