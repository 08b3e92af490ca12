package benchmarks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/cache"
)

// TestCacheRounds measures otelpatterns against plain ristretto,
// ristretto with a TTL and otter with every measurement in a process of its
// own, in interleaved rounds, for a machine shared with other jobs. It runs
// only with CACHE_ROUNDS set to the number of rounds (go test -run
// TestCacheRounds -v, or ./cache.sh, which also builds main's code as the
// "before" row).
//
// Each round runs, for each scenario, one child process per
// implementation (this test binary again, CACHE_ROUND_CHILD naming the
// work), in an order that rotates and reverses from round to round; a child
// builds one cache, fills it, collects garbage, then times a fixed number
// of operations (a few tenths of a second) and reports:
//
//   - wall time per operation;
//   - the process's CPU time per operation (getrusage RUSAGE_SELF, user +
//     system), which counts every goroutine of the child: ristretto's
//     goroutines applying writes and read statistics, the cache's clock,
//     the scheduler's spinning threads, and the collector. A measurement
//     in a process shared with other rows (BenchmarkCache, and the paired
//     rounds in one process this test replaced) leaves the background work
//     of one row's last operations, and the collection of its garbage, to
//     whichever row runs next; here there is no next row, and a run is
//     long enough (tens of thousands of misses) that what is still queued
//     when the clock stops (at most 63 writes for otelpatterns) is a
//     rounding error;
//   - for hits, the CPU time of the thread the lookups ran on
//     (RUSAGE_THREAD, the goroutine locked to it): what the caller pays
//     itself, leaving out the background work. Not for misses and writes,
//     which block (ristretto's Wait, the cache's own every 64 writes): a
//     goroutine locked to its thread that blocks hands the thread over
//     through the OS, and ristretto's Wait then cost three to four
//     times as much CPU;
//     unlocked, the goroutine moves between threads;
//   - heap allocations per operation, from every goroutine (runtime
//     MemStats), which counts ristretto's Wait's allocations too.
//
// The parent prints, for each scenario and implementation, the medians
// over the rounds of those figures and the median over the rounds of its
// ratio to plain ristretto in the same round (a ratio per round, not a
// ratio of medians, so that load that shifts between rounds cancels).
// CACHE_ROUNDS_BEFORE, the path of another build of this test binary (of
// an older tree), adds its otelpatterns as a "before" row in every round.
func TestCacheRounds(t *testing.T) {
	if spec := os.Getenv("CACHE_ROUND_CHILD"); spec != "" {
		roundChild(t, spec)
		return
	}
	rounds, _ := strconv.Atoi(os.Getenv("CACHE_ROUNDS"))
	if rounds <= 0 {
		t.Skip("set CACHE_ROUNDS to the number of rounds to measure")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type impl struct{ name, bin, child string }
	impls := []impl{{"otelpatterns", self, "otelpatterns"}}
	if before := os.Getenv("CACHE_ROUNDS_BEFORE"); before != "" {
		impls = append(impls, impl{"before", before, "otelpatterns"})
	}
	impls = append(impls, impl{"ristretto", self, "ristretto"}, impl{"ristretto-ttl", self, "ristretto-ttl"}, impl{"otter", self, "otter"})
	if s := os.Getenv("CACHE_ROUNDS_IMPLS"); s != "" {
		want := strings.Split(s, ",")
		impls = slices.DeleteFunc(impls, func(im impl) bool {
			return im.name != "ristretto" && !slices.Contains(want, im.name)
		})
	}
	scenarios := roundScenarios
	if s := os.Getenv("CACHE_ROUNDS_SCENARIOS"); s != "" {
		scenarios = nil
		for _, name := range strings.Split(s, ",") {
			i := slices.IndexFunc(roundScenarios, func(sc roundScenario) bool { return sc.name == name })
			if i < 0 {
				t.Fatalf("CACHE_ROUNDS_SCENARIOS: no scenario %q", name)
			}
			scenarios = append(scenarios, roundScenarios[i])
		}
	}

	// results[scenario][impl] holds one result per round.
	results := map[string]map[string][]roundResult{}
	for _, sc := range scenarios {
		results[sc.name] = map[string][]roundResult{}
	}
	for round := range rounds {
		order := slices.Clone(impls)
		k := round % len(order)
		order = append(order[k:], order[:k]...)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, sc := range scenarios {
			for _, im := range order {
				r, err := runRoundChild(im.bin, sc.name, im.child, sc.n)
				if err != nil {
					t.Fatalf("round %d, %s/%s: %v", round, sc.name, im.name, err)
				}
				results[sc.name][im.name] = append(results[sc.name][im.name], r)
			}
		}
		t.Logf("round %d of %d done", round+1, rounds)
	}

	var tb strings.Builder
	fmt.Fprintf(&tb, "Cache rounds: %d rounds, a process per measurement; medians over the rounds; × is the median of the per-round ratios to plain ristretto\n", rounds)
	for _, sc := range scenarios {
		fmt.Fprintf(&tb, "\n%s (%d ops per process)\n", sc.name, sc.n)
		fmt.Fprintf(&tb, "%-14s %9s %6s %9s %6s %9s %6s %8s\n", "impl", "wall ns", "×", "cpu ns", "×", "thread ns", "×", "allocs")
		ref := results[sc.name]["ristretto"]
		for _, im := range impls {
			rs := results[sc.name][im.name]
			col := func(f func(roundResult) float64) (float64, float64) {
				var v, ratio []float64
				for i, r := range rs {
					v = append(v, f(r))
					ratio = append(ratio, f(r)/f(ref[i]))
				}
				return medianOf(v), medianOf(ratio)
			}
			w, wr := col(func(r roundResult) float64 { return r.wall })
			c, cr := col(func(r roundResult) float64 { return r.cpu })
			fmt.Fprintf(&tb, "%-14s %9.1f %5.2fx %9.1f %5.2fx", im.name, w, wr, c, cr)
			if sc.locked {
				th, thr := col(func(r roundResult) float64 { return r.thread })
				fmt.Fprintf(&tb, " %9.1f %5.2fx", th, thr)
			} else {
				fmt.Fprintf(&tb, " %9s %6s", "-", "")
			}
			a, _ := col(func(r roundResult) float64 { return r.allocs })
			fmt.Fprintf(&tb, " %8.2f\n", a)
		}
	}
	fmt.Print(tb.String())
}

// A roundScenario is one kind of work a child process times, n operations
// of it.
type roundScenario struct {
	name string
	n    int
	// locked runs the operations on one goroutine locked to its thread,
	// whose CPU time is then reported. Only for operations that never
	// block: a locked goroutine that blocks hands its thread over through
	// the OS (ristretto's Wait then costs several times as much).
	locked bool
}

var roundScenarios = []roundScenario{
	{"hit", 3_000_000, true},
	{"hit-parallel", 4_000_000, false},
	{"miss", 60_000, false},
	{"set", 100_000, false},
}

// roundResult is what a child reports, per operation: wall time, process
// CPU time and thread CPU time in nanoseconds, and heap allocations.
type roundResult struct{ wall, cpu, thread, allocs float64 }

// runRoundChild runs n operations of scenario through impl in a child
// process, bin, and returns what it reports.
func runRoundChild(bin, scenario, impl string, n int) (roundResult, error) {
	cmd := exec.Command(bin, "-test.run", "^TestCacheRounds$", "-test.count", "1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("CACHE_ROUND_CHILD=%s,%s,%d", scenario, impl, n))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return roundResult{}, fmt.Errorf("%v\n%s", err, out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		var r roundResult
		if _, err := fmt.Sscanf(line, "cacheround %g %g %g %g", &r.wall, &r.cpu, &r.thread, &r.allocs); err == nil {
			return r, nil
		}
	}
	return roundResult{}, fmt.Errorf("no result in the child's output:\n%s", out.String())
}

// roundChild does the work spec ("scenario,impl,n") names and prints its
// figures on a line of its own.
func roundChild(t *testing.T, spec string) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		t.Fatalf("CACHE_ROUND_CHILD=%q; want scenario,impl,n", spec)
	}
	scenario, name := parts[0], parts[1]
	n, err := strconv.Atoi(parts[2])
	if err != nil || n <= 0 {
		t.Fatalf("CACHE_ROUND_CHILD=%q: bad n", spec)
	}
	var newKV func(tb testing.TB, capacity int64, load loader, sdk *sdkProviders) kv
	for _, im := range cacheImpls {
		if im.name == name {
			newKV = im.new
		}
	}
	if newKV == nil {
		t.Fatalf("no implementation %q", name)
	}
	ctx := context.Background()

	var run func()
	locked := false
	switch scenario {
	case "hit", "hit-parallel":
		reqs, hot := hotTrace()
		c := newKV(t, hitCapacity, nil, nil)
		for _, k := range hot {
			c.set(ctx, k, k)
		}
		for _, k := range hot { // every key must be there before timing
			if _, ok := c.get(ctx, k); !ok {
				t.Fatalf("%s: %q missing after the fill", name, k)
			}
		}
		if scenario == "hit" {
			locked = true
			run = func() {
				for i := range n {
					if _, ok := c.get(ctx, reqs[i&(cacheTrace-1)]); !ok {
						t.Fatalf("%s: a hot key missed", name)
					}
				}
			}
			break
		}
		run = func() {
			var wg sync.WaitGroup
			var missed atomic.Int64
			procs := runtime.GOMAXPROCS(0)
			for g := range procs {
				wg.Go(func() {
					i := g * 7919
					for range n / procs {
						if _, ok := c.get(ctx, reqs[i&(cacheTrace-1)]); !ok {
							missed.Add(1)
						}
						i++
					}
				})
			}
			wg.Wait()
			if m := missed.Load(); m > 0 {
				t.Fatalf("%s: %d hot keys missed", name, m)
			}
		}
	case "miss":
		keys := missKeys()
		if n > len(keys) {
			t.Fatalf("n = %d > %d distinct keys", n, len(keys))
		}
		c := newKV(t, cache.DefaultMaxEntries, identity, nil)
		run = func() {
			for _, k := range keys[:n] {
				if _, err := c.getOrLoad(ctx, k); err != nil {
					t.Fatalf("%s: getOrLoad() error = %v", name, err)
				}
			}
		}
	case "set":
		writes := cacheZipf()
		c := newKV(t, cache.DefaultMaxEntries, nil, nil)
		run = func() {
			for i := range n {
				k := writes[i&(cacheTrace-1)]
				c.set(ctx, k, k)
			}
		}
	default:
		t.Fatalf("no scenario %q", scenario)
	}

	runtime.GC()
	var ms0, ms1 runtime.MemStats
	if locked {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	runtime.ReadMemStats(&ms0)
	th0, cpu0, w0 := threadCPU(), processCPU(), time.Now()
	run()
	w1, cpu1, th1 := time.Now(), processCPU(), threadCPU()
	runtime.ReadMemStats(&ms1)
	per := func(d time.Duration) float64 { return float64(d) / float64(n) }
	fmt.Printf("cacheround %g %g %g %g\n", per(w1.Sub(w0)), per(cpu1-cpu0), per(th1-th0),
		float64(ms1.Mallocs-ms0.Mallocs)/float64(n))
}

// medianOf returns the median of xs (the upper one of an even count).
func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
