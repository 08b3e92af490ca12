package cache_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// The benchmarks' workload: requests for benchKeys distinct keys, drawn
// from a Zipf distribution (s = 1.01, v = 1: a few hot keys and a long
// tail, as in most caches' traffic) with a fixed seed, and precomputed so
// that the random number generator is not measured.
const (
	benchKeys  = 100_000
	benchTrace = 1 << 18 // requests in the trace; a power of two, for masking
	benchZipfS = 1.01
	// benchCountersFactor is ristretto's NumCounters per entry that New
	// uses (defaultCountersFactor in cache.go).
	benchCountersFactor = 10
)

// benchZipf is the Zipf trace of every benchmark, built once.
var benchZipf = sync.OnceValue(func() []string {
	names := make([]string, benchKeys)
	for i := range names {
		names[i] = "product:" + strconv.Itoa(i)
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), benchZipfS, 1, benchKeys-1)
	trace := make([]string, benchTrace)
	for i := range trace {
		trace[i] = names[z.Uint64()]
	}
	return trace
})

// benchMissKeys are distinct keys that no benchmark stores beforehand,
// cycled through by the miss benchmarks: a key comes round again only after
// about a million other loads, by which time a cache of a few thousand
// entries has long forgotten it.
var benchMissKeys = sync.OnceValue(func() []string {
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = "missing:" + strconv.Itoa(i)
	}
	return keys
})

// benchTelemetry are the cache rows of every benchmark, after the raw
// ristretto one: noop gives no provider, so the cache uses the global ones,
// no-ops unless a program installs an SDK; sdk records every span and
// metric into OpenTelemetry SDK providers (an in-memory span recorder and a
// manual metric reader).
var benchTelemetry = []struct {
	name string
	opts func(testing.TB) []cache.Option[string]
}{
	{"noop", func(testing.TB) []cache.Option[string] { return nil }},
	{"sdk", func(tb testing.TB) []cache.Option[string] {
		p := telemetrytest.New(tb)
		return []cache.Option[string]{cache.WithTracerProvider(p.TracerProvider), cache.WithMeterProvider(p.MeterProvider)}
	}},
}

// newBenchCache returns a cache closed when the benchmark ends.
func newBenchCache(tb testing.TB, opts ...cache.Option[string]) *cache.Cache[string] {
	tb.Helper()
	c, err := cache.New(opts...)
	if err != nil {
		tb.Fatalf("New() error = %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// newBenchRistretto returns a raw ristretto cache configured as New
// configures its L1 for maxEntries entries, closed when the benchmark ends.
func newBenchRistretto(tb testing.TB, maxEntries int64) *ristretto.Cache[string, string] {
	tb.Helper()
	r, err := ristretto.NewCache(&ristretto.Config[string, string]{
		NumCounters:        maxEntries * benchCountersFactor,
		MaxCost:            maxEntries,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		tb.Fatalf("ristretto.NewCache() error = %v", err)
	}
	tb.Cleanup(r.Close)
	return r
}

// distinct returns the keys of trace, each once, in order of first use.
func distinct(trace []string) []string {
	seen := make(map[string]bool)
	var keys []string
	for _, k := range trace {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// runHits runs get over the Zipf trace from GOMAXPROCS goroutines, each
// starting at its own point of the trace, and fails the benchmark if any
// lookup missed: every row must measure hits only.
func runHits(b *testing.B, get func(key string) bool) {
	trace := benchZipf()
	var start, misses atomic.Uint64
	// Collect the fill's garbage, and the previous row's cache, now
	// rather than while this row is timed.
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := start.Add(1) * 7919 // a prime: spread the starting points
		var missed uint64
		for pb.Next() {
			if !get(trace[i&(benchTrace-1)]) {
				missed++
			}
			i++
		}
		misses.Add(missed)
	})
	if n := misses.Load(); n > 0 {
		b.Fatalf("%d of %d lookups missed; want every key present", n, b.N)
	}
}

// BenchmarkGet measures [cache.Cache.Get] against a raw ristretto Get.
//
//   - l1-hit: parallel lookups (b.RunParallel) of keys drawn from the Zipf
//     trace, all present, in a cache sized to hold them all (twice
//     benchKeys entries) with the default TTL. The ristretto row is a raw
//     ristretto/v2 Get on the same keys, in a ristretto cache with the
//     configuration New gives its L1 (NumCounters 10× the entries, MaxCost
//     the entries, BufferItems 64, IgnoreInternalCost) and entries set with
//     the same TTL: the floor the L1 hit builds on. An L1 hit should cost
//     at most 1.2× that, with no allocation of its own, whatever the
//     providers.
//   - miss-load: sequential Gets of keys never seen before, each one a
//     miss that calls a loader returning at once, in a default-sized
//     cache: the cost of the read-through path itself (L1 lookup,
//     singleflight, load span and metrics, the L1 write, and a share of a
//     wait for ristretto: see writeL1). The ristretto row does the same by
//     hand: Get, load, SetWithTTL, Wait, so that the next Get finds the
//     key; ristretto-nowait leaves out the Wait (its next Get may miss).
//     Each row reports loads/op, which must be 1.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	hot := distinct(benchZipf())
	const hitEntries = 2 * benchKeys

	b.Run("l1-hit/ristretto", func(b *testing.B) {
		r := newBenchRistretto(b, hitEntries)
		for _, k := range hot {
			r.SetWithTTL(k, k, 1, cache.DefaultTTL)
			r.Wait() // ristretto drops sets when its buffer is full
		}
		runHits(b, func(k string) bool {
			_, ok := r.Get(k)
			return ok
		})
	})
	for _, tel := range benchTelemetry {
		b.Run("l1-hit/"+tel.name, func(b *testing.B) {
			c := newBenchCache(b, append(tel.opts(b), cache.WithMaxEntries(hitEntries))...)
			for _, k := range hot {
				if err := c.Set(ctx, k, k); err != nil {
					b.Fatalf("Set(%q) error = %v", k, err)
				}
			}
			runHits(b, func(k string) bool {
				_, err := c.Get(ctx, k)
				return err == nil
			})
		})
	}

	b.Run("miss-load/ristretto", func(b *testing.B) {
		keys := benchMissKeys()
		r := newBenchRistretto(b, cache.DefaultMaxEntries)
		var loads int
		load := func(_ context.Context, k string) (string, error) { loads++; return k, nil }
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := keys[i&(len(keys)-1)]
			i++
			if _, ok := r.Get(k); ok {
				continue
			}
			v, err := load(ctx, k)
			if err != nil {
				continue
			}
			r.SetWithTTL(k, v, 1, cache.DefaultTTL)
			r.Wait()
		}
		b.ReportMetric(float64(loads)/float64(b.N), "loads/op")
	})
	// The hand-written load without the Wait: the floor of ristretto's
	// share, but the next Get of a key ristretto has not admitted yet
	// misses and loads again (the cache's queued writes keep it from that).
	b.Run("miss-load/ristretto-nowait", func(b *testing.B) {
		keys := benchMissKeys()
		r := newBenchRistretto(b, cache.DefaultMaxEntries)
		var loads int
		load := func(_ context.Context, k string) (string, error) { loads++; return k, nil }
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := keys[i&(len(keys)-1)]
			i++
			if _, ok := r.Get(k); ok {
				continue
			}
			v, err := load(ctx, k)
			if err != nil {
				continue
			}
			r.SetWithTTL(k, v, 1, cache.DefaultTTL)
		}
		b.ReportMetric(float64(loads)/float64(b.N), "loads/op")
	})
	for _, tel := range benchTelemetry {
		b.Run("miss-load/"+tel.name, func(b *testing.B) {
			keys := benchMissKeys()
			var loads atomic.Int64 // the loader runs on singleflight's goroutine
			c := newBenchCache(b, append(tel.opts(b), cache.WithLoader(func(_ context.Context, k string) (string, error) {
				loads.Add(1)
				return k, nil
			}))...)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := c.Get(ctx, keys[i&(len(keys)-1)]); err != nil {
					b.Fatalf("Get() error = %v", err)
				}
				i++
			}
			b.ReportMetric(float64(loads.Load())/float64(b.N), "loads/op")
		})
	}
}

// BenchmarkSet measures [cache.Cache.Set] of an L1-only cache with default
// options: sequential writes of keys drawn from the Zipf trace, each one
// readable by the next Get when Set returns. The ristretto row is what that
// takes from raw ristretto, configured as New configures its L1: SetWithTTL
// with the default TTL, then Wait, since ristretto applies writes
// asynchronously. The trace has ten times as many keys as the cache holds,
// so the rows include ristretto's admission decisions and evictions.
func BenchmarkSet(b *testing.B) {
	ctx := context.Background()
	trace := benchZipf()

	b.Run("ristretto", func(b *testing.B) {
		r := newBenchRistretto(b, cache.DefaultMaxEntries)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := trace[i&(benchTrace-1)]
			r.SetWithTTL(k, k, 1, cache.DefaultTTL)
			r.Wait()
			i++
		}
	})
	for _, tel := range benchTelemetry {
		b.Run(tel.name, func(b *testing.B) {
			c := newBenchCache(b, tel.opts(b)...)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := trace[i&(benchTrace-1)]
				if err := c.Set(ctx, k, k); err != nil {
					b.Fatalf("Set() error = %v", err)
				}
				i++
			}
		})
	}
}
