package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/cache"
)

// adderTests are run on a store that is also a cache.Adder.
var adderTests = []struct {
	name string
	run  func(t *testing.T, s cache.Store, a cache.Adder)
}{
	{"Adder/AddsWhereMissing", testAddMissing},
	{"Adder/KeepsExistingValue", testAddExisting},
	{"Adder/AddsAfterExpiryOrDelete", testAddAfterExpiry},
	{"Adder/TTL", testAddTTL},
	{"Adder/OneOfConcurrentAddsWins", testAddConcurrent},
	{"Adder/CanceledContext", testAddCanceled},
}

func runAdderTests(t *testing.T, newStore func(t *testing.T) cache.Store) {
	for _, tt := range adderTests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustStore(t, newStore)
			a, ok := s.(cache.Adder)
			if !ok {
				t.Skip("the store is not a cache.Adder")
			}
			tt.run(t, s, a)
		})
	}
}

func mustAdd(t *testing.T, a cache.Adder, k string, v []byte, ttl time.Duration, want bool) {
	t.Helper()
	added, err := a.Add(ctx(t), k, v, ttl)
	if err != nil || added != want {
		t.Fatalf("Add(%q, %s, %v) = %v, %v; want %v, nil", k, show(v), ttl, added, err, want)
	}
}

func testAddMissing(t *testing.T, s cache.Store, a cache.Adder) {
	k := key(t, "k")
	mustAdd(t, a, k, []byte("v"), 0, true)
	mustGet(t, s, k, []byte("v"))
	empty := key(t, "empty")
	mustAdd(t, a, empty, nil, 0, true)
	mustGet(t, s, empty, []byte{})
}

func testAddExisting(t *testing.T, s cache.Store, a cache.Adder) {
	k := key(t, "k")
	mustSet(t, s, k, []byte("newer"), 0)
	mustAdd(t, a, k, []byte("older"), 0, false)
	mustGet(t, s, k, []byte("newer"))
	mustAdd(t, a, k, []byte("older"), time.Minute, false)
	mustGet(t, s, k, []byte("newer"))
}

func testAddAfterExpiry(t *testing.T, s cache.Store, a cache.Adder) {
	deleted, expired := key(t, "deleted"), key(t, "expired")
	mustSet(t, s, deleted, []byte("v1"), 0)
	if err := s.Delete(ctx(t), deleted); err != nil {
		t.Fatalf("Delete(%q) = %v; want nil", deleted, err)
	}
	mustAdd(t, a, deleted, []byte("v2"), 0, true)
	mustGet(t, s, deleted, []byte("v2"))

	mustSet(t, s, expired, []byte("v1"), ttl)
	deadline := time.Now().Add(ttl + patience)
	for {
		added, err := a.Add(ctx(t), expired, []byte("v2"), 0)
		if err != nil {
			t.Fatalf("Add(%q) = %v; want nil", expired, err)
		}
		if added {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Add(%q) still finds the value set with ttl %v after %v", expired, ttl, ttl+patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustGet(t, s, expired, []byte("v2"))
}

func testAddTTL(t *testing.T, s cache.Store, a cache.Adder) {
	expiring, forever := key(t, "expiring"), key(t, "forever")
	start := time.Now()
	mustAdd(t, a, expiring, []byte("e"), ttl, true)
	mustAdd(t, a, forever, []byte("f"), 0, true)
	waitExpired(t, s, expiring, start, ttl, "added")
	mustGet(t, s, forever, []byte("f"))
}

// testAddConcurrent has goroutines add to one key at once: exactly one
// succeeds, and the key holds its value.
func testAddConcurrent(t *testing.T, s cache.Store, a cache.Adder) {
	const workers = 16
	k := key(t, "k")
	c := ctx(t)
	var wg sync.WaitGroup
	var winner atomic.Int32
	var wins atomic.Int32
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			added, err := a.Add(c, k, fmt.Appendf(nil, "worker-%d", w), 0)
			if err != nil {
				errs <- err
				return
			}
			if added {
				wins.Add(1)
				winner.Store(int32(w))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Add(%q) = %v; want nil", k, err)
	}
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d of %d concurrent Adds of %q reported true; want exactly 1", n, workers, k)
	}
	mustGet(t, s, k, fmt.Appendf(nil, "worker-%d", winner.Load()))
}

func testAddCanceled(t *testing.T, s cache.Store, a cache.Adder) {
	k := key(t, "k")
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if added, err := a.Add(c, k, []byte("v"), 0); !errors.Is(err, context.Canceled) || added {
		t.Errorf("Add with a canceled context = %v, %v; want false and an error matching context.Canceled", added, err)
	}
	mustMiss(t, s, k)
}
