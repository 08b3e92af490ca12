package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/otelpatterns/patterns/cache"
)

// Model-based tests: random sequences of Get, Set, Delete and clears of L1
// against a map, with enough new keys among them that the cache waits for
// ristretto at every point of its batches of queued L1 writes (see
// writeL1). L1 (20,000 entries) is large enough that TinyLFU never has to
// evict the few thousand keys a check writes.

// modelKey draws a key: mostly a few hot keys, sometimes a new one (which
// ristretto queues rather than applies at once).
func modelKey(t *rapid.T, fresh *int) string {
	if rapid.IntRange(0, 3).Draw(t, "new") == 0 {
		*fresh++
		return fmt.Sprintf("new-%d", *fresh)
	}
	return fmt.Sprintf("k%d", rapid.IntRange(0, 7).Draw(t, "key"))
}

// TestModelCacheAside: without a loader, Get answers what the last Set
// stored, and ErrNotFound after a Delete or before any Set.
func TestModelCacheAside(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		c, err := cache.New[string](cache.WithMaxEntries(20_000))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		model := map[string]string{}
		fresh := 0
		n := 0
		t.Repeat(map[string]func(*rapid.T){
			"set": func(t *rapid.T) {
				k := modelKey(t, &fresh)
				n++
				v := fmt.Sprint("v", n)
				if err := c.Set(ctx, k, v); err != nil {
					t.Fatal(err)
				}
				model[k] = v
			},
			"delete": func(t *rapid.T) {
				k := modelKey(t, &fresh)
				if err := c.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
				delete(model, k)
			},
			"burst": func(t *rapid.T) { // new keys: the cache waits for ristretto
				for range rapid.IntRange(1, 70).Draw(t, "burst") {
					fresh++
					k := fmt.Sprintf("new-%d", fresh)
					if err := c.Set(ctx, k, "b"); err != nil {
						t.Fatal(err)
					}
					model[k] = "b"
				}
			},
			"get": func(t *rapid.T) {
				k := modelKey(t, &fresh)
				checkGet(t, c, k, model)
			},
			// The queued L1 writes handed to ristretto at any point, not
			// only every 64 new keys.
			"apply": func(t *rapid.T) { cache.ApplyQueued(c) },
			"": func(t *rapid.T) {
				for i := range 8 {
					checkGet(t, c, fmt.Sprintf("k%d", i), model)
				}
			},
		})
	})
}

func checkGet(t *rapid.T, c *cache.Cache[string], k string, model map[string]string) {
	v, err := c.Get(context.Background(), k)
	want, ok := model[k]
	switch {
	case ok && err != nil:
		t.Fatalf("Get(%q): %v, want %q", k, err, want)
	case ok && v != want:
		t.Fatalf("Get(%q) = %q, want %q", k, v, want)
	case !ok && !errors.Is(err, cache.ErrNotFound):
		t.Fatalf("Get(%q) = %q, %v, want ErrNotFound", k, v, err)
	}
}

// source is a loader's data, changed by the test as an application
// changes its database before it calls Set or Delete.
type source struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *source) load(_ context.Context, k string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[k]; ok {
		return v, nil
	}
	return "", cache.ErrNotFound
}

func (s *source) put(k, v string) {
	s.mu.Lock()
	s.m[k] = v
	s.mu.Unlock()
}

func (s *source) del(k string) {
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// TestModelReadThrough: with a loader (and negative caching), Get answers
// what the source holds when every change of the source is followed by a
// Set or Delete of the key; L1 clears (a restored subscription) only cost
// loads.
func TestModelReadThrough(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		src := &source{m: map[string]string{}}
		c, err := cache.New(cache.WithMaxEntries(20_000), cache.WithLoader(src.load), cache.WithNegativeTTL(cache.ClockTick*1000))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		fresh, n := 0, 0
		get := func(t *rapid.T, k string) {
			src.mu.Lock()
			want, ok := src.m[k]
			src.mu.Unlock()
			v, err := c.Get(ctx, k)
			switch {
			case ok && (err != nil || v != want):
				t.Fatalf("Get(%q) = %q, %v, want %q", k, v, err, want)
			case !ok && !errors.Is(err, cache.ErrNotFound):
				t.Fatalf("Get(%q) = %q, %v, want ErrNotFound", k, v, err)
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"set": func(t *rapid.T) {
				k := modelKey(t, &fresh)
				n++
				v := fmt.Sprint("v", n)
				src.put(k, v)
				if err := c.Set(ctx, k, v); err != nil {
					t.Fatal(err)
				}
			},
			"update-then-delete": func(t *rapid.T) {
				k := modelKey(t, &fresh)
				n++
				src.put(k, fmt.Sprint("u", n))
				if err := c.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
			},
			"remove": func(t *rapid.T) {
				k := modelKey(t, &fresh)
				src.del(k)
				if err := c.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
			},
			"clear": func(t *rapid.T) { cache.ClearL1(c) },
			"apply": func(t *rapid.T) { cache.ApplyQueued(c) },
			"burst": func(t *rapid.T) {
				for range rapid.IntRange(1, 70).Draw(t, "burst") {
					fresh++
					get(t, fmt.Sprintf("new-%d", fresh)) // loads (or caches not found)
				}
			},
			"get": func(t *rapid.T) { get(t, modelKey(t, &fresh)) },
		})
	})
}

// TestModelConcurrent runs the read-through model on several goroutines at
// once, each with keys of its own (so that each one's model holds), while
// others load, write and clear other keys: the waits one goroutine's
// writes trigger apply the others' queued writes at every point.
func TestModelConcurrent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		src := &source{m: map[string]string{}}
		c, err := cache.New(cache.WithMaxEntries(20_000), cache.WithLoader(src.load), cache.WithNegativeTTL(cache.ClockTick*1000))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		const workers = 4
		type op struct {
			kind, key int
		}
		plans := make([][]op, workers)
		for w := range plans {
			plans[w] = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) op {
				return op{rapid.IntRange(0, 4).Draw(t, "kind"), rapid.IntRange(0, 40).Draw(t, "key")}
			}), 10, 80).Draw(t, fmt.Sprint("plan", w))
		}
		clears := rapid.IntRange(0, 3).Draw(t, "clears")
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for w, plan := range plans {
			wg.Go(func() {
				for i, o := range plan {
					k := fmt.Sprintf("w%d-k%d", w, o.key)
					switch o.kind {
					case 0:
						v := fmt.Sprintf("v%d", i)
						src.put(k, v)
						if err := c.Set(ctx, k, v); err != nil {
							errs <- err
							return
						}
					case 1:
						src.put(k, fmt.Sprintf("u%d", i))
						if err := c.Delete(ctx, k); err != nil {
							errs <- err
							return
						}
					case 2:
						src.del(k)
						if err := c.Delete(ctx, k); err != nil {
							errs <- err
							return
						}
					default:
					}
					src.mu.Lock()
					want, ok := src.m[k]
					src.mu.Unlock()
					v, err := c.Get(ctx, k)
					switch {
					case ok && (err != nil || v != want):
						errs <- fmt.Errorf("op %d %v: Get(%q) = %q, %v, want %q", i, o, k, v, err, want)
						return
					case !ok && !errors.Is(err, cache.ErrNotFound):
						errs <- fmt.Errorf("op %d %v: Get(%q) = %q, %v, want ErrNotFound", i, o, k, v, err)
						return
					}
				}
			})
		}
		wg.Go(func() {
			for i := range clears {
				cache.ClearL1(c)
				for j := range 30 {
					_, _ = c.Get(ctx, fmt.Sprintf("other-%d-%d", i, j))
				}
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}
