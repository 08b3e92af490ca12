package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
)

// fetchLog is a fetch function that records the keys of each call and
// answers every key but "missing" with its own name in upper case.
type fetchLog struct {
	mu    sync.Mutex
	calls [][]string
	err   error
	block chan struct{} // when set, each fetch waits for it
}

func (f *fetchLog) fetch(ctx context.Context, keys []string) (map[string]string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, slices.Clone(keys))
	f.mu.Unlock()
	if f.block != nil {
		<-f.block
	}
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]string{}
	for _, k := range keys {
		if k != "missing" {
			out[k] = k + "!"
		}
	}
	return out, nil
}

// TestBatcherOneFetchForPrimedKeys loads primed keys concurrently, as
// graphql-go resolves list elements, and checks that they make one fetch
// of every primed key, in priming order, duplicates dropped.
func TestBatcherOneFetchForPrimedKeys(t *testing.T) {
	f := &fetchLog{}
	b := newBatcher(f.fetch)
	keys := []string{"c", "a", "b", "a", "missing", "c"}
	b.prime(keys...)
	var wg sync.WaitGroup
	got := make([]string, len(keys))
	oks := make([]bool, len(keys))
	for i, k := range keys {
		wg.Go(func() {
			v, ok, err := b.load(t.Context(), k)
			if err != nil {
				t.Errorf("load(%q) error = %v; want nil", k, err)
			}
			got[i], oks[i] = v, ok
		})
	}
	wg.Wait()
	if want := [][]string{{"c", "a", "b", "missing"}}; !slices.EqualFunc(f.calls, want, slices.Equal) {
		t.Errorf("fetches = %v; want %v", f.calls, want)
	}
	for i, k := range keys {
		want, wantOK := k+"!", true
		if k == "missing" {
			want, wantOK = "", false
		}
		if got[i] != want || oks[i] != wantOK {
			t.Errorf("load(%q) = %q, %v; want %q, %v", k, got[i], oks[i], want, wantOK)
		}
	}

	// Fetched keys are not fetched again, even primed again.
	b.prime("a", "b")
	if v, ok, err := b.load(t.Context(), "a"); v != "a!" || !ok || err != nil {
		t.Errorf("load(a) again = %q, %v, %v; want a!, true, nil", v, ok, err)
	}
	if len(f.calls) != 1 {
		t.Errorf("fetches after loading a fetched key = %v; want 1", f.calls)
	}
}

// TestBatcherUnprimedKey checks that a key nobody primed is fetched with
// the primed keys pending, and a key primed after a fetch in the next one.
func TestBatcherUnprimedKey(t *testing.T) {
	f := &fetchLog{}
	b := newBatcher(f.fetch)
	b.prime("a", "b")
	if v, _, _ := b.load(t.Context(), "z"); v != "z!" {
		t.Errorf("load(z) = %q; want z!", v)
	}
	b.prime("b", "c")
	if v, _, _ := b.load(t.Context(), "c"); v != "c!" {
		t.Errorf("load(c) = %q; want c!", v)
	}
	if want := [][]string{{"a", "b", "z"}, {"c"}}; !slices.EqualFunc(f.calls, want, slices.Equal) {
		t.Errorf("fetches = %v; want %v", f.calls, want)
	}
}

// TestBatcherErrorReachesEveryWaiter fails a fetch while other loads wait
// for it: all of them get its error.
func TestBatcherErrorReachesEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("upstream down")
		f := &fetchLog{err: boom, block: make(chan struct{})}
		b := newBatcher(f.fetch)
		b.prime("a", "b", "c")
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i, k := range []string{"a", "b", "c"} {
			wg.Go(func() { _, _, errs[i] = b.load(t.Context(), k) })
		}
		synctest.Wait() // one fetches, two wait for it
		close(f.block)
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, boom) {
				t.Errorf("load %d error = %v; want %v", i, err, boom)
			}
		}
		if len(f.calls) != 1 {
			t.Errorf("fetches = %v; want 1", f.calls)
		}
	})
}

// TestBatcherPanickingFetch checks that a fetch that panics fails the
// loads waiting for it rather than leaving them blocked, or answering
// as if the keys did not exist.
func TestBatcherPanickingFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		b := newBatcher(func(context.Context, []string) (map[string]string, error) {
			<-release
			panic("bug in fetch")
		})
		b.prime("a", "b")
		panicked := make(chan any, 1)
		go func() {
			defer func() { panicked <- recover() }()
			_, _, _ = b.load(t.Context(), "a")
		}()
		synctest.Wait()
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, err = b.load(t.Context(), "b")
		}()
		synctest.Wait()
		close(release)
		<-done
		if p := <-panicked; p == nil {
			t.Errorf("the fetching load did not panic")
		}
		if !errors.Is(err, errFetchPanicked) {
			t.Errorf("waiting load error = %v; want %v", err, errFetchPanicked)
		}
	})
}

// TestBatcherWaiterGivesUp checks that a load waiting for another's fetch
// returns when its own context is done.
func TestBatcherWaiterGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fetchLog{block: make(chan struct{})}
		b := newBatcher(f.fetch)
		b.prime("a", "b")
		go func() { _, _, _ = b.load(t.Context(), "a") }()
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, _, err := b.load(ctx, "b"); !errors.Is(err, context.Canceled) {
			t.Errorf("load with a cancelled context error = %v; want %v", err, context.Canceled)
		}
		close(f.block)
	})
}
