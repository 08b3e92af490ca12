package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestTableBounded floods a limiter with 200,000 distinct clients: the
// table never holds more than its bound, and the heap ends where a full
// table puts it, not where 200,000 buckets would.
func TestTableBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 requests")
	}
	const maxKeys = 10_000
	l, err := New(Limit{Name: "flood", Requests: 10, Per: time.Second, Key: ByClientIP(), Scope: AcrossRoutes}, WithMaxKeys(maxKeys))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	l.table.clock = func() time.Time { return now }
	fill := func(from, to int) {
		for i := from; i < to; i++ {
			l.table.allow([]byte("ip:" + strconv.Itoa(i)))
			if i%50_000 == 0 && l.table.len() > maxKeys {
				t.Fatalf("after %d clients the table holds %d keys; bound %d", i, l.table.len(), maxKeys)
			}
		}
	}
	fill(0, 2*maxKeys) // the table is full
	heapFull := heap()
	fill(2*maxKeys, 200_000)
	heapAfter := heap()
	if n := l.table.len(); n > maxKeys || n < maxKeys*9/10 {
		t.Errorf("table holds %d keys; want at most %d and close to it", n, maxKeys)
	}
	// 200,000 buckets take about 30 MB; a full table of 10,000 takes
	// 1.5 MB, and flooding it must not add more.
	if grow := int64(heapAfter) - int64(heapFull); grow > 4<<20 {
		t.Errorf("heap grew by %d bytes while a full table took 180,000 more clients", grow)
	}
	t.Logf("heap with a full table %d KiB, after 200,000 clients %d KiB", heapFull>>10, heapAfter>>10)
	runtime.KeepAlive(l)
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestEvictionKeepsLimitedClients: a client that spent its budget is not
// handed a fresh one by a flood of new clients filling the table, since
// eviction takes the fullest buckets first.
func TestEvictionKeepsLimitedClients(t *testing.T) {
	l, err := New(Limit{Name: "e", Requests: 5, Per: time.Hour, Key: ByClientIP(), Scope: AcrossRoutes}, WithMaxKeys(1000))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	l.table.clock = func() time.Time { return now }
	for range 5 {
		l.table.allow([]byte("ip:victim-of-its-own-greed"))
	}
	if l.table.allow([]byte("ip:victim-of-its-own-greed")).Allowed {
		t.Fatal("the sixth request was allowed")
	}
	for i := range 20_000 {
		l.table.allow([]byte("ip:flood-" + strconv.Itoa(i)))
	}
	if d := l.table.allow([]byte("ip:victim-of-its-own-greed")); d.Allowed {
		t.Errorf("after a flood of 20,000 new clients the limited client was allowed again: its bucket was evicted")
	}
}

// TestSmallTable: a bound smaller than the shard count is still a bound.
func TestSmallTable(t *testing.T) {
	for _, n := range []int{1, 3, 300, 1000} {
		tb := newTable(n, 1, 1)
		for i := range 10 * n {
			tb.allow([]byte(strconv.Itoa(i)))
		}
		if got := tb.len(); got > n {
			t.Errorf("newTable(%d) holds %d keys", n, got)
		}
	}
}

// TestHeaderKeyIsADigest: a limit keyed by a header that carries a secret
// (an API key) keeps a digest of the value, never the value, in its key
// table (and so in Redis); one value always gives one key, and two
// values two keys.
func TestHeaderKeyIsADigest(t *testing.T) {
	l, err := New(Limit{Name: "keys", Requests: 10, Per: time.Second, Key: ByHeader("X-API-Key"), Scope: AcrossRoutes})
	if err != nil {
		t.Fatal(err)
	}
	key := func(v string) string {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-API-Key", v)
		return string(l.appendBucketKey(nil, r, "/"))
	}
	a, again, b := key("sk_live_secret"), key("sk_live_secret"), key("sk_live_other")
	if strings.Contains(a, "secret") || strings.Contains(b, "other") {
		t.Errorf("bucket keys %q, %q hold the header's value", a, b)
	}
	if a != again || a == b {
		t.Errorf("bucket keys %q, %q, %q; want one per value", a, again, b)
	}
}

// TestClockReadUnderLock: requests of one bucket from many goroutines,
// each reading a clock that only goes forward, admit no more than the
// burst plus the rate times the time the clock covered. Were the clock
// read before the shard's lock, a request could reach the bucket with an
// earlier time than the one before it, and the bucket would credit the
// time between the two again.
func TestClockReadUnderLock(t *testing.T) {
	const perTick = time.Millisecond / 2 // half a token a reading
	tb := newTable(1, rate.Limit(1000), 10)
	base := time.Now()
	var ticks atomic.Int64
	tb.clock = func() time.Time {
		n := ticks.Add(1)
		runtime.Gosched() // a request preempted after reading the clock
		return base.Add(time.Duration(n) * perTick)
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if tb.allow([]byte("k")).Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	covered := time.Duration(ticks.Load()) * perTick
	if bound := 10 + int64(covered/time.Millisecond); admitted.Load() > bound {
		t.Errorf("admitted %d requests over %v of a bucket of 10 at 1000/s; at most %d", admitted.Load(), covered, bound)
	}
}
