package benchmarks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"

	"github.com/otelpatterns/patterns/cache"
)

// The cache workload: requests for cacheKeys distinct keys drawn from a
// Zipf distribution (s = 1.01, v = 1: a few hot keys and a long tail) with a
// fixed seed, precomputed so that the random number generator is not
// measured.
const (
	cacheKeys  = 100_000
	cacheTrace = 1 << 18 // requests in the benchmarks' trace; a power of two
	cacheZipfS = 1.01
	// hitCapacity holds every key of the trace, so hit-parallel only hits.
	hitCapacity = 2 * cacheKeys
)

// zipfTrace returns n requests for keys "product:0" to "product:<keys-1>",
// drawn from the Zipf distribution with a fixed seed.
func zipfTrace(n, keys int, s float64, seed uint64) []string {
	names := make([]string, keys)
	for i := range names {
		names[i] = "product:" + strconv.Itoa(i)
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, seed)), s, 1, uint64(keys-1))
	trace := make([]string, n)
	for i := range trace {
		trace[i] = names[z.Uint64()]
	}
	return trace
}

var cacheZipf = sync.OnceValue(func() []string { return zipfTrace(cacheTrace, cacheKeys, cacheZipfS, 1) })

// The hot-hit workload, as issue 20 measured it from outside: the
// hotKeys most requested keys of a Zipf(hotZipfS) trace over cacheKeys
// keys, in a cache holding them all, looked up in the order the trace
// requests them (its requests for other keys left out): hits only.
const (
	hotKeys  = 10_000
	hotZipfS = 1.1
)

// hotTrace returns cacheTrace requests for the hot keys, and the hot keys.
var hotTrace = sync.OnceValues(func() (trace, keys []string) {
	full := zipfTrace(4*cacheTrace, cacheKeys, hotZipfS, 2)
	n := map[string]int{}
	for _, k := range full {
		n[k]++
	}
	keys = distinctKeys(full)
	slices.SortStableFunc(keys, func(a, b string) int { return n[b] - n[a] })
	keys = keys[:min(hotKeys, len(keys))]
	hot := make(map[string]bool, len(keys))
	for _, k := range keys {
		hot[k] = true
	}
	trace = make([]string, 0, cacheTrace)
	for len(trace) < cacheTrace {
		for _, k := range full {
			if hot[k] && len(trace) < cacheTrace {
				trace = append(trace, k)
			}
		}
	}
	return trace, keys
})

// missKeys are distinct keys that no scenario stores beforehand, cycled
// through by miss-load: a key comes round again only after about a million
// loads, long after a bounded cache has forgotten it.
var missKeys = sync.OnceValue(func() []string {
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = "missing:" + strconv.Itoa(i)
	}
	return keys
})

// A loader fetches a key's value from the source of truth.
type loader func(ctx context.Context, key string) (string, error)

// kv is what the cache scenarios ask of an implementation, through an
// adaptor that costs every row the same interface call.
type kv interface {
	// get looks key up and reports whether it was there. The scenarios call
	// it only on caches built without a loader, so it never loads.
	get(ctx context.Context, key string) (string, bool)
	// set stores value under key, so that a get that follows finds it
	// (unless the cache's admission policy declined it).
	set(ctx context.Context, key, value string)
	// getOrLoad returns key's value, calling the loader given to the
	// constructor on a miss and keeping what it returns, so that a get that
	// follows finds it: read-through, or cache-aside written by hand.
	getOrLoad(ctx context.Context, key string) (string, error)
}

// A forgetter drops all its entries. miss-load calls it, outside the
// timer, each time its key sequence starts over, so that an unbounded map
// misses on the keys it comes round to again.
type forgetter interface{ forget() }

// cacheImpls are the rows of every cache scenario. Each builds a cache of
// about capacity entries (bare ignores it) with load as its loader; sdk,
// when not nil, are the OpenTelemetry SDK providers of the -sdk scenarios,
// which only otelpatterns has a use for.
var cacheImpls = []struct {
	name string
	new  func(tb testing.TB, capacity int64, load loader, sdk *sdkProviders) kv
}{
	{"bare", newBareKV},
	{"otelpatterns", newOtelpatternsKV},
	{"ristretto", newRistrettoKV},
	{"ristretto-ttl", newRistrettoTTLKV},
	{"otter", newOtterKV},
	{"golanglru", newLRUKV},
}

// bareKV is a sync.Map with no bound, no expiry and no telemetry: the floor.
type bareKV struct {
	m    sync.Map
	load loader
}

func newBareKV(_ testing.TB, _ int64, load loader, _ *sdkProviders) kv { return &bareKV{load: load} }

func (b *bareKV) get(_ context.Context, key string) (string, bool) {
	v, ok := b.m.Load(key)
	if !ok {
		return "", false
	}
	return v.(string), true
}

func (b *bareKV) set(_ context.Context, key, value string) { b.m.Store(key, value) }

func (b *bareKV) getOrLoad(ctx context.Context, key string) (string, error) {
	if v, ok := b.get(ctx, key); ok {
		return v, nil
	}
	v, err := b.load(ctx, key)
	if err != nil {
		return "", err
	}
	b.m.Store(key, v)
	return v, nil
}

func (b *bareKV) forget() { b.m.Clear() }

// otelpatternsKV is cache.New with default options, the global (no-op)
// OpenTelemetry providers (or sdk's) and WithMaxEntries(capacity), plus
// WithLoader when there is a loader: Get is then read-through.
type otelpatternsKV struct{ c *cache.Cache[string] }

func newOtelpatternsKV(tb testing.TB, capacity int64, load loader, sdk *sdkProviders) kv {
	opts := []cache.Option[string]{cache.WithMaxEntries(capacity)}
	if sdk != nil {
		opts = append(opts, cache.WithMeterProvider(sdk.mp), cache.WithTracerProvider(sdk.tp))
	}
	if load != nil {
		opts = append(opts, cache.WithLoader[string](load))
	}
	c, err := cache.New(opts...)
	if err != nil {
		tb.Fatalf("cache.New() error = %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return otelpatternsKV{c}
}

func (o otelpatternsKV) get(ctx context.Context, key string) (string, bool) {
	v, err := o.c.Get(ctx, key)
	return v, err == nil
}

func (o otelpatternsKV) set(ctx context.Context, key, value string) { _ = o.c.Set(ctx, key, value) }

func (o otelpatternsKV) getOrLoad(ctx context.Context, key string) (string, error) {
	return o.c.Get(ctx, key)
}

// ristrettoKV is raw dgraph-io/ristretto/v2 used plainly, as its README
// shows it: configured as cache.New configures its L1 (NumCounters 10× the
// entries, MaxCost the entries, BufferItems 64, IgnoreInternalCost), string
// keys, entries set with Set and no TTL, so that Get reads no clock. It is
// the reference row. Ristretto applies writes asynchronously, so set waits
// for the write (Wait) to keep the promise that a get that follows finds
// it; so does the fill after a load.
type ristrettoKV struct {
	r    *ristretto.Cache[string, string]
	load loader
	ttl  time.Duration // 0: Set, no expiry
}

func newRistrettoKV(tb testing.TB, capacity int64, load loader, _ *sdkProviders) kv {
	return newRistretto(tb, capacity, load, 0)
}

// newRistrettoTTLKV is ristrettoKV with every entry set with SetWithTTL and
// cache's default TTL, as the cache's L1 once was: each Get then reads the
// clock (time.Now) to check the entry's expiry.
func newRistrettoTTLKV(tb testing.TB, capacity int64, load loader, _ *sdkProviders) kv {
	return newRistretto(tb, capacity, load, cache.DefaultTTL)
}

func newRistretto(tb testing.TB, capacity int64, load loader, ttl time.Duration) kv {
	r, err := ristretto.NewCache(&ristretto.Config[string, string]{
		NumCounters:        capacity * 10,
		MaxCost:            capacity,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		tb.Fatalf("ristretto.NewCache() error = %v", err)
	}
	tb.Cleanup(r.Close)
	return ristrettoKV{r, load, ttl}
}

func (r ristrettoKV) get(_ context.Context, key string) (string, bool) { return r.r.Get(key) }

func (r ristrettoKV) set(_ context.Context, key, value string) {
	r.r.SetWithTTL(key, value, 1, r.ttl)
	r.r.Wait()
}

func (r ristrettoKV) getOrLoad(ctx context.Context, key string) (string, error) {
	if v, ok := r.r.Get(key); ok {
		return v, nil
	}
	v, err := r.load(ctx, key)
	if err != nil {
		return "", err
	}
	r.set(ctx, key, v)
	return v, nil
}

// otterKV is maypok86/otter/v2 with MaximumSize capacity and entries that
// expire cache's default TTL after they are written; getOrLoad is its
// read-through Get with the loader, whose Set and loads are synchronous.
type otterKV struct {
	c    *otter.Cache[string, string]
	load otter.Loader[string, string]
}

func newOtterKV(tb testing.TB, capacity int64, load loader, _ *sdkProviders) kv {
	c, err := otter.New(&otter.Options[string, string]{
		MaximumSize:      int(capacity),
		ExpiryCalculator: otter.ExpiryWriting[string, string](cache.DefaultTTL),
	})
	if err != nil {
		tb.Fatalf("otter.New() error = %v", err)
	}
	tb.Cleanup(func() { c.StopAllGoroutines() })
	return otterKV{c, otter.LoaderFunc[string, string](load)}
}

func (o otterKV) get(_ context.Context, key string) (string, bool) { return o.c.GetIfPresent(key) }

func (o otterKV) set(_ context.Context, key, value string) { o.c.Set(key, value) }

func (o otterKV) getOrLoad(ctx context.Context, key string) (string, error) {
	return o.c.Get(ctx, key, o.load)
}

// lruKV is hashicorp/golang-lru/v2's Cache of capacity entries (an LRU
// behind one mutex, no expiry), filled by hand after a load.
type lruKV struct {
	c    *lru.Cache[string, string]
	load loader
}

func newLRUKV(tb testing.TB, capacity int64, load loader, _ *sdkProviders) kv {
	c, err := lru.New[string, string](int(capacity))
	if err != nil {
		tb.Fatalf("lru.New() error = %v", err)
	}
	return lruKV{c, load}
}

func (l lruKV) get(_ context.Context, key string) (string, bool) { return l.c.Get(key) }

func (l lruKV) set(_ context.Context, key, value string) { l.c.Add(key, value) }

func (l lruKV) getOrLoad(ctx context.Context, key string) (string, error) {
	if v, ok := l.c.Get(key); ok {
		return v, nil
	}
	v, err := l.load(ctx, key)
	if err != nil {
		return "", err
	}
	l.c.Add(key, v)
	return v, nil
}

// identity is the trivial loader of miss-load: the value of a key is the
// key, returned at once.
func identity(_ context.Context, key string) (string, error) { return key, nil }

// BenchmarkCache runs every cache scenario through every implementation,
// as BenchmarkCache/<scenario>/<impl>, so that compare.sh can pair the rows
// of one scenario:
//
//   - hit-parallel: lookups from GOMAXPROCS goroutines (b.RunParallel) of
//     keys drawn from the Zipf trace, in a cache holding all of them. A
//     miss fails the benchmark.
//   - hit-parallel-sdk: hit-parallel, with otelpatterns recording into
//     OpenTelemetry SDK providers; the peers run their plain row again.
//   - hit-parallel-sdk-sampled: hit-parallel-sdk, every lookup in a
//     context holding a sampled span.
//   - hit-hot: sequential lookups of the 10,000 most requested keys of a
//     Zipf(1.1) trace over 100,000 keys, in the order the trace requests
//     them, in a cache holding them all (issue 20's measure): hits only.
//   - hit-hot-parallel: hit-hot from GOMAXPROCS goroutines.
//   - set: sequential writes of keys drawn from the Zipf trace into a
//     cache of the default size (10,000 entries, a tenth of the keys), each
//     readable by the next get.
//   - miss-load: sequential read-through lookups of keys never seen
//     before, with a loader that returns at once, in a cache of the
//     default size; each row reports loads/op, which must be 1.
func BenchmarkCache(b *testing.B) {
	ctx := context.Background()
	trace := cacheZipf()

	hot := distinctKeys(trace)
	for _, sc := range []struct {
		name         string
		sdk, sampled bool
	}{
		{"hit-parallel", false, false},
		{"hit-parallel-sdk", true, false},
		{"hit-parallel-sdk-sampled", true, true},
	} {
		b.Run(sc.name, func(b *testing.B) {
			for _, im := range cacheImpls {
				b.Run(im.name, func(b *testing.B) {
					var sdk *sdkProviders
					if sc.sdk {
						sdk = newSDK(b)
					}
					ctx := ctx
					if sc.sampled {
						ctx = sampledContext(b)
					}
					c := im.new(b, hitCapacity, nil, sdk)
					for _, k := range hot {
						c.set(ctx, k, k)
					}
					var start, misses atomic.Uint64
					// Collect the fill's garbage, and the previous row's
					// cache, now rather than while this row is timed.
					runtime.GC()
					b.ReportAllocs()
					b.ResetTimer()
					cpu0 := processCPU()
					b.RunParallel(func(pb *testing.PB) {
						i := start.Add(1) * 7919 // a prime: spread the starting points
						var missed uint64
						for pb.Next() {
							if _, ok := c.get(ctx, trace[i&(cacheTrace-1)]); !ok {
								missed++
							}
							i++
						}
						misses.Add(missed)
					})
					reportCPU(b, cpu0)
					if n := misses.Load(); n > 0 {
						b.Fatalf("%d of %d lookups missed; want every key present", n, b.N)
					}
				})
			}
		})
	}

	hotReqs, hotSet := hotTrace()
	b.Run("hit-hot", func(b *testing.B) {
		for _, im := range cacheImpls {
			b.Run(im.name, func(b *testing.B) {
				c := im.new(b, hitCapacity, nil, nil)
				for _, k := range hotSet {
					c.set(ctx, k, k)
				}
				runtime.GC()
				b.ReportAllocs()
				i, misses := 0, 0
				cpu0 := processCPU()
				for b.Loop() {
					if _, ok := c.get(ctx, hotReqs[i&(cacheTrace-1)]); !ok {
						misses++
					}
					i++
				}
				reportCPU(b, cpu0)
				if misses > 0 {
					b.Fatalf("%d of %d lookups missed; want every key present", misses, i)
				}
			})
		}
	})
	b.Run("hit-hot-parallel", func(b *testing.B) {
		for _, im := range cacheImpls {
			b.Run(im.name, func(b *testing.B) {
				c := im.new(b, hitCapacity, nil, nil)
				for _, k := range hotSet {
					c.set(ctx, k, k)
				}
				var start, misses atomic.Uint64
				runtime.GC()
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := processCPU()
				b.RunParallel(func(pb *testing.PB) {
					i := start.Add(1) * 7919
					var missed uint64
					for pb.Next() {
						if _, ok := c.get(ctx, hotReqs[i&(cacheTrace-1)]); !ok {
							missed++
						}
						i++
					}
					misses.Add(missed)
				})
				reportCPU(b, cpu0)
				if n := misses.Load(); n > 0 {
					b.Fatalf("%d of %d lookups missed; want every key present", n, b.N)
				}
			})
		}
	})

	b.Run("set", func(b *testing.B) {
		for _, im := range cacheImpls {
			b.Run(im.name, func(b *testing.B) {
				c := im.new(b, cache.DefaultMaxEntries, nil, nil)
				b.ReportAllocs()
				i := 0
				cpu0 := processCPU()
				for b.Loop() {
					k := trace[i&(cacheTrace-1)]
					c.set(ctx, k, k)
					i++
				}
				reportCPU(b, cpu0)
			})
		}
	})

	b.Run("miss-load", func(b *testing.B) {
		keys := missKeys()
		for _, im := range cacheImpls {
			b.Run(im.name, func(b *testing.B) {
				var loads atomic.Int64 // otelpatterns loads on another goroutine
				c := im.new(b, cache.DefaultMaxEntries, func(ctx context.Context, key string) (string, error) {
					loads.Add(1)
					return identity(ctx, key)
				}, nil)
				b.ReportAllocs()
				i := 0
				cpu0 := processCPU()
				for b.Loop() {
					if i&(len(keys)-1) == 0 && i > 0 {
						if f, ok := c.(forgetter); ok {
							b.StopTimer()
							f.forget()
							b.StartTimer()
						}
					}
					if _, err := c.getOrLoad(ctx, keys[i&(len(keys)-1)]); err != nil {
						b.Fatalf("getOrLoad() error = %v", err)
					}
					i++
				}
				reportCPU(b, cpu0)
				b.ReportMetric(float64(loads.Load())/float64(b.N), "loads/op")
			})
		}
	})
}

// distinctKeys returns the keys of trace, each once, in order of first use.
func distinctKeys(trace []string) []string {
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

// TestCachesBehaveAlike checks that every implementation does what the
// scenarios rely on: a get finds what set stored, and the latest value; a
// get of a key never stored misses; getOrLoad loads a missing key once and
// keeps the value, so that the next get and getOrLoad find it without
// loading again.
func TestCachesBehaveAlike(t *testing.T) {
	ctx := context.Background()
	for _, im := range cacheImpls {
		t.Run(im.name, func(t *testing.T) {
			// Without a loader, as in hit-parallel, set and the hit ratio.
			plain := im.new(t, 1000, nil, nil)
			plain.set(ctx, "present", "v")
			if v, ok := plain.get(ctx, "present"); !ok || v != "v" {
				t.Errorf("get(%q) = %q, %v; want %q, true", "present", v, ok, "v")
			}
			if v, ok := plain.get(ctx, "absent"); ok {
				t.Errorf("get(%q) = %q, true; want a miss", "absent", v)
			}

			var loads atomic.Int64
			c := im.new(t, 1000, func(_ context.Context, key string) (string, error) {
				loads.Add(1)
				return "loaded " + key, nil
			}, nil)
			for i := range 100 {
				k := "k" + strconv.Itoa(i)
				c.set(ctx, k, "v1 "+k)
				c.set(ctx, k, "v2 "+k)
				if v, ok := c.get(ctx, k); !ok || v != "v2 "+k {
					t.Fatalf("get(%q) after set = %q, %v; want %q, true", k, v, ok, "v2 "+k)
				}
				if v, err := c.getOrLoad(ctx, k); err != nil || v != "v2 "+k {
					t.Fatalf("getOrLoad(%q) after set = %q, %v; want %q, nil", k, v, err, "v2 "+k)
				}
			}
			for i := range 100 {
				k := "l" + strconv.Itoa(i)
				for range 3 {
					if v, err := c.getOrLoad(ctx, k); err != nil || v != "loaded "+k {
						t.Fatalf("getOrLoad(%q) = %q, %v; want %q, nil", k, v, err, "loaded "+k)
					}
				}
				if v, ok := c.get(ctx, k); !ok || v != "loaded "+k {
					t.Fatalf("get(%q) after getOrLoad = %q, %v; want %q, true", k, v, ok, "loaded "+k)
				}
			}
			if n := loads.Load(); n != 100 {
				t.Errorf("loader ran %d times for 100 keys fetched 3 times each; want 100", n)
			}
		})
	}
}

// The hit-ratio trace: hitRatioRequests requests over cacheKeys keys, for
// caches of hitRatioCapacity entries, a tenth of the keys.
const (
	hitRatioRequests = 1_000_000
	hitRatioCapacity = 10_000
	// hitRatioTolerance is how far otelpatterns' hit ratio may be from
	// ristretto's, in percentage points. Both run ristretto with the same
	// configuration, but ristretto's admission samples at random and its
	// read buffers drop updates under load, so two runs differ slightly.
	hitRatioTolerance = 1.0
)

// TestHitRatio replays one Zipf trace of a million requests over 100,000
// keys through each implementation as a cache-aside cache of 10,000
// entries: get, and on a miss, set. It prints the hit ratios (with -v, or
// when the test fails; compare.sh prints them) and checks that
// otelpatterns' ratio is that of raw ristretto, whose L1 it is, within
// hitRatioTolerance; and that no bounded cache beats the unbounded map,
// which misses only on first requests.
func TestHitRatio(t *testing.T) {
	requests := hitRatioRequests
	if testing.Short() {
		requests /= 10
	}
	trace := zipfTrace(requests, cacheKeys, cacheZipfS, 42)
	ctx := context.Background()
	ratio := map[string]float64{}
	var names []string
	for _, im := range cacheImpls {
		c := im.new(t, hitRatioCapacity, nil, nil)
		hits := 0
		for _, k := range trace {
			if _, ok := c.get(ctx, k); ok {
				hits++
				continue
			}
			c.set(ctx, k, k)
		}
		ratio[im.name] = 100 * float64(hits) / float64(len(trace))
		names = append(names, im.name)
	}

	var tb strings.Builder
	fmt.Fprintf(&tb, "Cache hit ratio: %d Zipf(s=%g) requests over %d keys, capacity %d (bare: unbounded)\n",
		len(trace), cacheZipfS, cacheKeys, hitRatioCapacity)
	fmt.Fprintf(&tb, "%-14s %7s %13s\n", "impl", "hit%", "vs ristretto")
	for _, n := range names {
		fmt.Fprintf(&tb, "%-14s %7.2f %+12.2fpp\n", n, ratio[n], ratio[n]-ratio["ristretto"])
	}
	if testing.Verbose() {
		fmt.Println(tb.String()) // a table to read, without t.Log's prefixes
	} else {
		t.Log("\n" + tb.String())
	}

	if d := ratio["otelpatterns"] - ratio["ristretto"]; d > hitRatioTolerance || d < -hitRatioTolerance {
		t.Errorf("otelpatterns hit ratio = %.2f%%; want ristretto's %.2f%% ± %.1f points", ratio["otelpatterns"], ratio["ristretto"], hitRatioTolerance)
	}
	for _, n := range names {
		if ratio[n] > ratio["bare"]+0.001 {
			t.Errorf("%s hit ratio = %.2f%% > the unbounded map's %.2f%%: the replay is wrong", n, ratio[n], ratio["bare"])
		}
	}
}

// reportCPU reports the process's CPU time per operation since cpu0 (a
// processCPU reading taken when the timed loop began) as cpu-ns/op: unlike
// ns/op, it counts the work the row's goroutines did on the other cores
// (ristretto's goroutine applying writes, the collector), and leaves out
// the time the OS gave to other processes. Like ns/op it can carry over a
// little background work from the row before, and leave some of its own
// to the row after; cache.sh (TestCacheRounds) has neither.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// threadCPU returns the CPU time of the calling thread (Linux).
func threadCPU() time.Duration { return rusage(1) } // RUSAGE_THREAD

// processCPU returns the CPU time of the process.
func processCPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
