package rediscache_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/internal/faultproxy"
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
	src    *source
	a, b   *instance
	pa, pb *faultproxy.Proxy
	prefix string
}

func newPair(t *testing.T, opts ...rediscache.Option) *pair {
	t.Helper()
	addr := testenv.RedisAddr(t)
	prefix, channel := namespace(t)
	t.Cleanup(func() { deleteKeys(t, sharedClient(t), prefix) })
	p := &pair{src: newSource(), pa: faultproxy.New(t, addr), pb: faultproxy.New(t, addr), prefix: prefix}
	opts = append([]rediscache.Option{rediscache.WithTimeout(faultTimeout)}, opts...)
	p.a = newInstance(t, "a", p.pa.Addr(), prefix, channel, p.src, opts...)
	p.b = newInstance(t, "b", p.pb.Addr(), prefix, channel, p.src, opts...)
	return p
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
// returned; once the writer has repaired L2, no instance may.
func TestWriteDuringCutIsNotUndone(t *testing.T) {
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

	p.cut()
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
	p.restore()

	settled(t, map[string]string{"k": "v2", "gone": ""}, 5*time.Second, p.a, p.b)
	st.forbid("b", "k", "v1")
	st.forbid("b", "gone", "")
	time.Sleep(400 * time.Millisecond) // and after it
	stop()
	assert.Empty(t, st.violations(), "stale values served")
}

func (s *source) delete(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, k)
}
