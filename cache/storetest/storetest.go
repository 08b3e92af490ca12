package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/cache"
)

// Timing of the suite. ttl is short enough to keep the suite quick and long
// enough that a value is still there right after it was set, even under the
// race detector on a loaded machine; patience bounds every wait for
// something that should happen.
const (
	ttl      = 400 * time.Millisecond
	patience = 3 * time.Second
	// quiet is how long a subtest waits to conclude that something that
	// must not happen (a delivery after stop) did not.
	quiet = 200 * time.Millisecond
)

// Run runs the conformance suite against the stores that newStore returns.
// newStore is called once per subtest, with that subtest's t, and should
// register the store's cleanup with t.Cleanup; a nil newStore fails the
// test. The Adder/ subtests run only if the store is a [cache.Adder], and
// the Invalidator/ ones only if it is a [cache.Invalidator].
func Run(t *testing.T, newStore func(t *testing.T) cache.Store) {
	t.Helper()
	if newStore == nil {
		t.Fatal("storetest.Run: newStore must not be nil")
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s cache.Store)
	}{
		{"GetMissing", testGetMissing},
		{"RoundTrip", testRoundTrip},
		{"Keys", testKeys},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"TTL", testTTL},
		{"ReturnedSlicesAreTheCallers", testOwnership},
		{"CanceledContext", testCanceled},
		{"Concurrent", testConcurrent},
	}
	invTests := []struct {
		name string
		run  func(t *testing.T, s cache.Invalidator)
	}{
		{"Invalidator/PublishReachesSubscriber", testPublish},
		{"Invalidator/PublishWithoutKeys", testPublishNoKeys},
		{"Invalidator/TwoSubscriptions", testTwoSubscriptions},
		{"Invalidator/OneHandlerCallAtATime", testSerialHandler},
		{"Invalidator/StopWaitsAndStops", testStop},
		{"Invalidator/PublishCanceledContext", testPublishCanceled},
		{"Invalidator/SubscribeNilHandler", testSubscribeNil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, mustStore(t, newStore))
		})
	}
	runAdderTests(t, newStore)
	for _, tt := range invTests {
		t.Run(tt.name, func(t *testing.T) {
			inv, ok := mustStore(t, newStore).(cache.Invalidator)
			if !ok {
				t.Skip("the store is not a cache.Invalidator")
			}
			tt.run(t, inv)
		})
	}
}

func mustStore(t *testing.T, newStore func(t *testing.T) cache.Store) cache.Store {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatal("newStore returned nil")
	}
	return s
}

// key returns a key private to the running subtest.
func key(t *testing.T, name string) string { return t.Name() + "/" + name }

// ctx returns a context that ends with the test or after patience.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), patience)
	t.Cleanup(cancel)
	return c
}

func mustSet(t *testing.T, s cache.Store, k string, v []byte, ttl time.Duration) {
	t.Helper()
	if err := s.Set(ctx(t), k, v, ttl); err != nil {
		t.Fatalf("Set(%q, %d bytes, %v) = %v; want nil", k, len(v), ttl, err)
	}
}

func mustGet(t *testing.T, s cache.Store, k string, want []byte) {
	t.Helper()
	got, err := s.Get(ctx(t), k)
	if err != nil {
		t.Fatalf("Get(%q) = %v; want %s", k, err, show(want))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %s; want %s", k, show(got), show(want))
	}
}

func mustMiss(t *testing.T, s cache.Store, k string) {
	t.Helper()
	got, err := s.Get(ctx(t), k)
	if !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Get(%q) = %s, %v; want an error matching cache.ErrNotFound", k, show(got), err)
	}
}

// show prints a value briefly.
func show(v []byte) string {
	if len(v) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", v[:40], len(v))
	}
	return fmt.Sprintf("%q", v)
}

func testGetMissing(t *testing.T, s cache.Store) {
	mustMiss(t, s, key(t, "never-set"))
}

func testRoundTrip(t *testing.T, s cache.Store) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 1<<14) // 288 KiB
	values := []struct {
		name  string
		value []byte
	}{
		{"text", []byte("hello, world")},
		{"empty", []byte{}},
		{"every byte", all},
		{"NUL only", []byte{0}},
		{"invalid UTF-8", []byte{0xff, 0xfe, 0xc3}},
		{"CRLF", []byte("a\r\nb\r\n")},
		{"large", big},
	}
	for _, v := range values {
		k := key(t, v.name)
		mustSet(t, s, k, v.value, 0)
		mustGet(t, s, k, v.value)
	}
	// A nil value reads back as empty.
	k := key(t, "nil")
	mustSet(t, s, k, nil, 0)
	got, err := s.Get(ctx(t), k)
	if err != nil || len(got) != 0 {
		t.Fatalf("Get(%q) after Set(nil) = %s, %v; want an empty value", k, show(got), err)
	}
}

// testKeys checks that keys are stored as given: binary-safe, and distinct
// however similar.
func testKeys(t *testing.T, s cache.Store) {
	names := []string{
		"", " ", "a", "A", "a ", "with space", "new\nline", "tab\t", "\x00", "\x00\x01",
		"\xff\xfe", "ünïcødé", "*", "?", "[a-z]", "\\", "{tag}", "%s", "a:b", "a/b", "a.b",
		`{"s":"x","k":["y"]}`, strings.Repeat("k", 1000),
	}
	for i, n := range names {
		mustSet(t, s, key(t, n), []byte(fmt.Sprint(i)), 0)
	}
	for i, n := range names {
		mustGet(t, s, key(t, n), []byte(fmt.Sprint(i)))
	}
	for _, n := range names {
		if err := s.Delete(ctx(t), key(t, n)); err != nil {
			t.Fatalf("Delete(%q) = %v; want nil", key(t, n), err)
		}
		mustMiss(t, s, key(t, n))
	}
}

func testOverwrite(t *testing.T, s cache.Store) {
	k := key(t, "k")
	mustSet(t, s, k, []byte("first, and longer"), 0)
	mustSet(t, s, k, []byte("second"), 0)
	mustGet(t, s, k, []byte("second"))
	mustSet(t, s, k, []byte{}, 0)
	mustGet(t, s, k, []byte{})
}

func testDelete(t *testing.T, s cache.Store) {
	k, other := key(t, "k"), key(t, "other")
	mustSet(t, s, k, []byte("v"), 0)
	mustSet(t, s, other, []byte("w"), 0)
	if err := s.Delete(ctx(t), k); err != nil {
		t.Fatalf("Delete(%q) = %v; want nil", k, err)
	}
	mustMiss(t, s, k)
	mustGet(t, s, other, []byte("w"))
	if err := s.Delete(ctx(t), k); err != nil {
		t.Fatalf("Delete(%q) of a deleted key = %v; want nil", k, err)
	}
	if err := s.Delete(ctx(t), key(t, "never-set")); err != nil {
		t.Fatalf("Delete(%q) of a missing key = %v; want nil", key(t, "never-set"), err)
	}
}

func testTTL(t *testing.T, s cache.Store) {
	expiring, forever, reset := key(t, "expiring"), key(t, "forever"), key(t, "reset")
	start := time.Now()
	mustSet(t, s, expiring, []byte("e"), ttl)
	mustSet(t, s, forever, []byte("f"), 0)
	// Setting again replaces the ttl: this one no longer expires.
	mustSet(t, s, reset, []byte("r1"), ttl)
	mustSet(t, s, reset, []byte("r2"), 0)
	if time.Since(start) < ttl/2 { // not worth checking on a machine this slow
		mustGet(t, s, expiring, []byte("e"))
	}

	waitExpired(t, s, expiring, start, ttl, "set")
	mustGet(t, s, forever, []byte("f"))
	mustGet(t, s, reset, []byte("r2"))
}

func testOwnership(t *testing.T, s cache.Store) {
	k := key(t, "k")
	v := []byte("original")
	mustSet(t, s, k, v, 0)
	copy(v, "CHANGED!") // the caller reuses its buffer
	mustGet(t, s, k, []byte("original"))

	got, err := s.Get(ctx(t), k)
	if err != nil {
		t.Fatalf("Get(%q) = %v; want nil", k, err)
	}
	for i := range got {
		got[i] = 'x'
	}
	mustGet(t, s, k, []byte("original"))
}

func testCanceled(t *testing.T, s cache.Store) {
	k := key(t, "k")
	mustSet(t, s, k, []byte("v"), 0)
	c, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v; want an error matching context.Canceled", op, err)
		}
	}
	start := time.Now()
	_, err := s.Get(c, k)
	check("Get", err)
	check("Set", s.Set(c, k, []byte("w"), 0))
	check("Delete", s.Delete(c, k))
	if d := time.Since(start); d > time.Second {
		t.Errorf("three calls with a canceled context took %v; want them to return at once", d)
	}
	// Nothing was written; a store may still report the key missing
	// (rediscache does until it has deleted it: the caller may have
	// changed its own copy).
	got, err := s.Get(ctx(t), k)
	switch {
	case errors.Is(err, cache.ErrNotFound):
	case err != nil:
		t.Errorf("Get(%q) after calls with a canceled context = %v; want the value or cache.ErrNotFound", k, err)
	case !bytes.Equal(got, []byte("v")):
		t.Errorf("Get(%q) after calls with a canceled context = %s; want %q, unchanged", k, show(got), "v")
	}
}

// testConcurrent has goroutines write and read one shared key and keys of
// their own. Readers of the shared key must see one of the values written
// whole; run it with -race.
func testConcurrent(t *testing.T, s cache.Store) {
	const workers, ops = 16, 40
	shared := key(t, "shared")
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			own := key(t, fmt.Sprint("own-", w))
			for i := range ops {
				v := fmt.Appendf(nil, "worker=%d op=%d|%s", w, i, bytes.Repeat([]byte{byte(w)}, w*8))
				if err := s.Set(c, shared, v, 0); err != nil {
					errs <- fmt.Errorf("Set(%q) = %v; want nil", shared, err)
					return
				}
				if err := s.Set(c, own, v, time.Minute); err != nil {
					errs <- fmt.Errorf("Set(%q) = %v; want nil", own, err)
					return
				}
				got, err := s.Get(c, own)
				if err != nil || !bytes.Equal(got, v) {
					errs <- fmt.Errorf("Get(%q) = %s, %v; want %s, the value just set", own, show(got), err, show(v))
					return
				}
				got, err = s.Get(c, shared)
				if err != nil || !wellFormed(got) {
					errs <- fmt.Errorf("Get(%q) = %s, %v; want a value one of the workers wrote", shared, show(got), err)
					return
				}
				if i%4 == 0 {
					if err := s.Delete(c, own); err != nil {
						errs <- fmt.Errorf("Delete(%q) = %v; want nil", own, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// wellFormed reports whether v is a value written by testConcurrent.
func wellFormed(v []byte) bool {
	var w, i int
	head, tail, ok := bytes.Cut(v, []byte("|"))
	if !ok {
		return false
	}
	if _, err := fmt.Sscanf(string(head), "worker=%d op=%d", &w, &i); err != nil {
		return false
	}
	return bytes.Equal(tail, bytes.Repeat([]byte{byte(w)}, w*8))
}

// announcement is one call of a subscription's handler.
type announcement struct{ source, key string }

// recorder collects the announcements of keys belonging to one subtest
// (other tests may share the channel), in order.
type recorder struct {
	prefix string
	mu     sync.Mutex
	got    []announcement
	more   chan struct{}
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{prefix: key(t, ""), more: make(chan struct{}, 1)}
}

func (r *recorder) handle(source, key string) {
	if !strings.HasPrefix(key, r.prefix) {
		return
	}
	r.mu.Lock()
	r.got = append(r.got, announcement{source, key})
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []announcement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor waits until r has recorded n announcements and returns them.
func (r *recorder) waitFor(t *testing.T, n int) []announcement {
	t.Helper()
	timeout := time.After(patience)
	for {
		got := r.snapshot()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-timeout:
			t.Fatalf("received %d announcements in %v; want %d: %q", len(got), patience, n, got)
		}
	}
}

// subscribe subscribes handle and returns a stop function that may be
// called more than once; the subscription is stopped when the test ends.
func subscribe(t *testing.T, inv cache.Invalidator, handle func(source, key string)) func() {
	t.Helper()
	stop, err := inv.Subscribe(ctx(t), handle, nil)
	if err != nil {
		t.Fatalf("Subscribe() = %v; want nil", err)
	}
	if stop == nil {
		t.Fatal("Subscribe() returned a nil stop function")
	}
	var once sync.Once
	stopOnce := func() { once.Do(stop) }
	t.Cleanup(stopOnce)
	return stopOnce
}

func mustPublish(t *testing.T, inv cache.Invalidator, source string, keys ...string) {
	t.Helper()
	if err := inv.Publish(ctx(t), source, keys...); err != nil {
		t.Fatalf("Publish(%q, %d keys) = %v; want nil", source, len(keys), err)
	}
}

func announcements(source string, keys ...string) []announcement {
	a := make([]announcement, len(keys))
	for i, k := range keys {
		a[i] = announcement{source, k}
	}
	return a
}

func testPublish(t *testing.T, inv cache.Invalidator) {
	r := newRecorder(t)
	subscribe(t, inv, r.handle)

	keys := []string{
		key(t, ""), key(t, "plain"), key(t, "with space"), key(t, "new\nline"), key(t, "\x00\xff"),
		key(t, "ünïcødé"), key(t, `","k":["forged"]}`), key(t, strings.Repeat("long", 500)),
	}
	source := "instance-1 \x00\xff\"}"
	mustPublish(t, inv, source, keys...)
	mustPublish(t, inv, "instance-2", key(t, "second"))
	want := append(announcements(source, keys...), announcement{"instance-2", key(t, "second")})
	got := r.waitFor(t, len(want))
	if !sameAnnouncements(got, want) {
		t.Fatalf("announced\n%q\nwant\n%q", got, want)
	}
}

// sameAnnouncements compares got and want as multisets: the contract does
// not order the calls for the keys of one announcement.
func sameAnnouncements(got, want []announcement) bool {
	cmp := func(a, b announcement) int {
		return strings.Compare(a.source+"\x00"+a.key, b.source+"\x00"+b.key)
	}
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	return slices.Equal(got, want)
}

func testPublishNoKeys(t *testing.T, inv cache.Invalidator) {
	r := newRecorder(t)
	subscribe(t, inv, r.handle)
	mustPublish(t, inv, "src")
	mustPublish(t, inv, "src", key(t, "after"))
	want := announcements("src", key(t, "after"))
	if got := r.waitFor(t, 1); !sameAnnouncements(got, want) {
		t.Fatalf("announced %q; want %q", got, want)
	}
}

func testTwoSubscriptions(t *testing.T, inv cache.Invalidator) {
	r1, r2 := newRecorder(t), newRecorder(t)
	subscribe(t, inv, r1.handle)
	subscribe(t, inv, r2.handle)
	keys := []string{key(t, "a"), key(t, "b")}
	mustPublish(t, inv, "src", keys...)
	want := announcements("src", keys...)
	for i, r := range []*recorder{r1, r2} {
		if got := r.waitFor(t, len(want)); !sameAnnouncements(got, want) {
			t.Errorf("subscription %d received %q; want %q", i+1, got, want)
		}
	}
}

// testSerialHandler publishes from several goroutines at once and checks
// that a subscription's handler is never called concurrently with itself.
func testSerialHandler(t *testing.T, inv cache.Invalidator) {
	const publishers, each = 8, 10
	r := newRecorder(t)
	var inFlight, overlaps atomic.Int32
	subscribe(t, inv, func(source, key string) {
		if inFlight.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(50 * time.Microsecond) // give an overlap a chance to show
		r.handle(source, key)
		inFlight.Add(-1)
	})
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if err := inv.Publish(c, fmt.Sprint("p", p), key(t, fmt.Sprint(p, "-", i, "-a")), key(t, fmt.Sprint(p, "-", i, "-b"))); err != nil {
					errs <- fmt.Errorf("Publish() = %v; want nil", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r.waitFor(t, publishers*each*2)
	if n := overlaps.Load(); n > 0 {
		t.Errorf("the handler was called %d times while a call of it was running; want one call at a time", n)
	}
}

// testStop checks that stop waits for a running handler, and that nothing
// is delivered once it returned.
func testStop(t *testing.T, inv cache.Invalidator) {
	entered, release := make(chan struct{}), make(chan struct{})
	var calls, after atomic.Int32
	var stopped atomic.Bool
	stop := subscribe(t, inv, func(source, k string) {
		if !strings.HasPrefix(k, key(t, "")) {
			return
		}
		calls.Add(1)
		if stopped.Load() {
			after.Add(1)
		}
		if k == key(t, "block") {
			close(entered)
			<-release
		}
	})
	// Publish may deliver synchronously, so it runs on its own goroutine.
	published := make(chan error, 1)
	go func() { published <- inv.Publish(ctx(t), "src", key(t, "block")) }()
	select {
	case <-entered:
	case <-time.After(patience):
		close(release)
		t.Fatalf("the handler was not called within %v of Publish", patience)
	}

	stopDone := make(chan struct{})
	go func() {
		stop()
		stopped.Store(true)
		close(stopDone)
	}()
	select {
	case <-stopDone:
		close(release)
		t.Fatal("stop returned while the handler was still running; want it to wait for the handler")
	case <-time.After(quiet):
	}
	close(release)
	select {
	case <-stopDone:
	case <-time.After(patience):
		t.Fatalf("stop did not return within %v of the handler returning", patience)
	}
	if err := <-published; err != nil {
		t.Fatalf("Publish() = %v; want nil", err)
	}

	mustPublish(t, inv, "src", key(t, "after-stop"))
	time.Sleep(quiet)
	if n := after.Load(); n > 0 {
		t.Errorf("the handler was called %d times after stop returned; want none", n)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the handler was called %d times; want 1", n)
	}
}

func testPublishCanceled(t *testing.T, inv cache.Invalidator) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if err := inv.Publish(c, "src", key(t, "k")); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a canceled context = %v; want an error matching context.Canceled", err)
	}
}

// testSubscribeNil checks that a nil handler is an error, not a panic
// when the first announcement arrives.
func testSubscribeNil(t *testing.T, inv cache.Invalidator) {
	stop, err := inv.Subscribe(ctx(t), nil, nil)
	if err == nil {
		if stop != nil {
			stop()
		}
		t.Fatal("Subscribe with a nil handler = nil; want an error")
	}
}

// waitExpired waits until key, stored at start with ttl, expires, and
// fails if that takes much longer or happens much sooner than ttl. verb
// says how it was stored.
func waitExpired(t *testing.T, s cache.Store, key string, start time.Time, ttl time.Duration, verb string) {
	t.Helper()
	deadline := start.Add(ttl + patience)
	for {
		_, err := s.Get(ctx(t), key)
		if errors.Is(err, cache.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("Get(%q) = %v; want the value or cache.ErrNotFound", key, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%q) still finds the value %v after it was %s with ttl %v", key, time.Since(start), verb, ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if since := time.Since(start); since < ttl*3/4 {
		t.Fatalf("the value %s with ttl %v expired after %v", verb, ttl, since)
	}
}
