package cache_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
)

// Tests of the promise that after Set or Delete returns, the instance never
// serves an older value: loads, negative answers and refreshes that were in
// flight when the key changed must not write what they found. Each test
// holds a load in the loader with a channel until the change has returned.

// gatedLoader is a loader whose first call (or every call, with all set)
// tells started and then waits for release before answering first; later
// calls answer next at once.
type gatedLoader struct {
	started chan struct{}
	release chan struct{}
	calls   atomic.Int32
	first   func() (string, error)
	next    func(n int32) (string, error)
}

func newGatedLoader(first func() (string, error), next func(n int32) (string, error)) *gatedLoader {
	return &gatedLoader{started: make(chan struct{}, 1), release: make(chan struct{}), first: first, next: next}
}

func (g *gatedLoader) load(ctx context.Context, _ string) (string, error) {
	n := g.calls.Add(1)
	if n != 1 {
		return g.next(n)
	}
	g.started <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return g.first()
}

// getAsync starts a Get and returns where its result will arrive.
func getAsync(c *cache.Cache[string], ctx context.Context, key string) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		v, err := c.Get(ctx, key)
		ch <- getResult{v, err}
	}()
	return ch
}

type getResult struct {
	v   string
	err error
}

// TestLoadInFlightDuringSetDoesNotOverwrite: a load that began before Set
// and ends after it used to write its older value into L1 and L2.
func TestLoadInFlightDuringSetDoesNotOverwrite(t *testing.T) {
	ctx := context.Background()
	store := &cache.MemoryStore{}
	src := newGatedLoader(func() (string, error) { return "old", nil },
		func(int32) (string, error) { return "", errors.New("no second load expected") })
	c, err := cache.New[string](cache.WithLoader(src.load), cache.WithStore(store))
	require.NoError(t, err)
	defer c.Close()

	first := getAsync(c, ctx, "k")
	<-src.started
	require.NoError(t, c.Set(ctx, "k", "new"))
	close(src.release)
	r := <-first
	require.NoError(t, r.err)
	assert.Contains(t, []string{"old", "new"}, r.v, "a Get overlapping the Set may see either value")

	got, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "new", got, "Get after Set returned must not serve the load that began before it")
	require.NoError(t, c.Close()) // waits for background L2 fills
	stored, err := storedValue(t, store, "k")
	require.NoError(t, err)
	assert.Equal(t, "new", stored, "the load's L2 fill must not overwrite Set's value")
}

// TestNotFoundInFlightDuringSetIsNotCached: a "not found" answer that began
// before Set used to be cached over the value just Set.
func TestNotFoundInFlightDuringSetIsNotCached(t *testing.T) {
	ctx := context.Background()
	src := newGatedLoader(func() (string, error) { return "", cache.ErrNotFound },
		func(int32) (string, error) { return "", errors.New("no second load expected") })
	c := newCache[string](t, cache.WithLoader(src.load), cache.WithNegativeTTL(time.Minute))

	first := getAsync(c, ctx, "k")
	<-src.started
	require.NoError(t, c.Set(ctx, "k", "created"))
	close(src.release)
	<-first
	got, err := c.Get(ctx, "k")
	require.NoError(t, err, "the negative answer of a load that began before Set must not be cached")
	assert.Equal(t, "created", got)
}

// TestGetAfterDeleteDoesNotJoinEarlierLoad: a Get that starts after Delete
// returned used to join the load that began before, and so serve (and
// re-cache) the deleted value.
func TestGetAfterDeleteDoesNotJoinEarlierLoad(t *testing.T) {
	ctx := context.Background()
	store := &cache.MemoryStore{}
	src := newGatedLoader(func() (string, error) { return "deleted", nil },
		func(int32) (string, error) { return "fresh", nil })
	c := newCache[string](t, cache.WithLoader(src.load), cache.WithStore(store))

	first := getAsync(c, ctx, "k")
	<-src.started
	require.NoError(t, c.Delete(ctx, "k"))
	second := getAsync(c, ctx, "k")
	// Only now let the first load end: a second Get that joined it gets its
	// answer, one that did not loads on its own.
	close(src.release)
	r2 := <-second
	r1 := <-first
	require.NoError(t, r1.err)
	require.NoError(t, r2.err)
	assert.Equal(t, "fresh", r2.v, "a Get that started after Delete returned must load again")
	got, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "fresh", got, "the earlier load must not overwrite the later one")
	assert.Equal(t, int32(2), src.calls.Load())
}

// TestRefreshInFlightDuringDeleteDoesNotRestore: a refresh-ahead reload in
// flight when Delete ran used to bring the key back.
func TestRefreshInFlightDuringDeleteDoesNotRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var calls atomic.Int32
		refreshing := make(chan struct{})
		release := make(chan struct{})
		c := newStrategyCache(t, cache.WithTTL(10*time.Second), cache.WithTTLJitter(0), cache.WithRefreshAhead(0.5),
			cache.WithLoader(func(ctx context.Context, _ string) (string, error) {
				switch calls.Add(1) {
				case 1:
					return "v1", nil
				case 2: // the refresh
					close(refreshing)
					<-release
					return "v2", nil
				default:
					return "v3", nil
				}
			}))
		_, err := c.Get(ctx, "k")
		require.NoError(t, err)
		time.Sleep(6 * time.Second)
		_, _ = c.Get(ctx, "k") // starts the refresh
		<-refreshing
		require.NoError(t, c.Delete(ctx, "k"))
		close(release)
		synctest.Wait()
		got, err := c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "v3", got, "a refresh in flight during Delete must not bring back its value")
	})
}

// TestFillDoesNotOverwriteAnotherInstancesSet: a fill on one instance that
// began before another instance's Set must not overwrite that Set's value
// in the shared L2 (it adds rather than sets, when the store is an Adder),
// nor keep its own older value in L1 after the invalidation arrived.
func TestFillDoesNotOverwriteAnotherInstancesSet(t *testing.T) {
	ctx := context.Background()
	store := &cache.MemoryStore{}
	src := newGatedLoader(func() (string, error) { return "old", nil },
		func(int32) (string, error) { return "", errors.New("no second load expected") })
	a, err := cache.New[string](cache.WithLoader(src.load), cache.WithStore(store))
	require.NoError(t, err)
	defer a.Close()
	b := newCache[string](t, cache.WithStore(store))

	first := getAsync(a, ctx, "k")
	<-src.started
	require.NoError(t, b.Set(ctx, "k", "new"))
	close(src.release)
	<-first
	got, err := a.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "new", got, "a's load began before b's announced Set: it must not stay in a's L1")
	require.NoError(t, a.Close())
	stored, err := storedValue(t, store, "k")
	require.NoError(t, err)
	assert.Equal(t, "new", stored, "a's L2 fill must not overwrite b's Set")
}

// TestNeverOlderAfterSetOrDelete runs writers and readers of a few keys
// together: after a Set or Delete of a key returned, no Get that starts
// later returns an older value. The source holds increasing numbers; the
// writer puts n there, then calls Set(n) or Delete, then publishes n as
// the floor for the readers.
func TestNeverOlderAfterSetOrDelete(t *testing.T) {
	ctx := context.Background()
	const keys, writes = 4, 1500
	var src, floor [keys]atomic.Int64
	c := newCache[int64](t, cache.WithStore(&cache.MemoryStore{}), cache.WithNegativeTTL(time.Minute),
		cache.WithLoader(func(_ context.Context, key string) (int64, error) {
			i := int(key[0] - 'a')
			v := src[i].Load()
			runtime.Gosched() // let a Set or Delete overtake the load
			if v == 0 {
				return 0, cache.ErrNotFound
			}
			return v, nil
		}))
	stop := make(chan struct{})
	errs := make(chan error, 1)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (n + r) % keys
				key := string(rune('a' + i))
				min := floor[i].Load()
				v, err := c.Get(ctx, key)
				if errors.Is(err, cache.ErrNotFound) {
					v = 0
				} else if err != nil {
					report(err)
					return
				}
				if v < min {
					report(fmt.Errorf("Get(%q) = %d after the cache was given %d", key, v, min))
					return
				}
			}
		})
	}
	var writers sync.WaitGroup
	for i := range keys {
		writers.Go(func() {
			key := string(rune('a' + i))
			for n := int64(1); n <= writes; n++ {
				src[i].Store(n)
				var err error
				if n%3 == 0 {
					err = c.Delete(ctx, key)
				} else {
					err = c.Set(ctx, key, n)
				}
				if err != nil {
					report(err)
					return
				}
				floor[i].Store(n)
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// A Set or Delete whose context is already done changes nothing: the
// store would neither write nor remember the key, so an L1 change alone
// would be served and later undone by the older L2 value.
func TestSetAndDeleteWithDoneContextChangeNothing(t *testing.T) {
	store := &cache.MemoryStore{}
	ctx := context.Background()
	require.NoError(t, store.Set(ctx, "k", []byte(`"v1"`), 0))
	c, err := cache.New[string](cache.WithStore(store))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	v, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v1", v)

	done, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, c.Set(done, "k", "v2"), context.Canceled)
	require.ErrorIs(t, c.Delete(done, "k"), context.Canceled)
	v, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "v1", v, "L1 after a Set and a Delete that did nothing")
}

// clearingStore is a MemoryStore whose Subscribe keeps the reconnected
// callback (an announcement that every key may have changed, as
// rediscache sends after flushing its prefix), and whose first Get tells
// started and waits for release before answering with what it read.
type clearingStore struct {
	*cache.MemoryStore
	started     chan struct{}
	release     chan struct{}
	gets        atomic.Int32
	reconnected func()
}

func (s *clearingStore) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.MemoryStore.Get(ctx, key)
	if s.gets.Add(1) == 1 {
		s.started <- struct{}{}
		<-s.release
	}
	return b, err
}

func (s *clearingStore) Subscribe(ctx context.Context, handle func(source, key string), reconnected func()) (func(), error) {
	s.reconnected = reconnected
	return s.MemoryStore.Subscribe(ctx, handle, reconnected)
}

// TestClearOfL1DropsFillsInFlight: an announcement that every key may
// have changed (a restored subscription, or rediscache's clear after it
// flushed its prefix) cleared L1 but let a fill in flight, which read L2
// before the flush, write its older value into L1 after the clear, where
// it was served until its TTL.
func TestClearOfL1DropsFillsInFlight(t *testing.T) {
	ctx := context.Background()
	store := &clearingStore{MemoryStore: &cache.MemoryStore{}, started: make(chan struct{}, 1), release: make(chan struct{})}
	require.NoError(t, store.MemoryStore.Set(ctx, "k", []byte(`"old"`), 0))
	c := newCache[string](t, cache.WithStore(store),
		cache.WithLoader(func(context.Context, string) (string, error) { return "new", nil }))
	require.NotNil(t, store.reconnected, "the cache subscribed")

	first := getAsync(c, ctx, "k")
	<-store.started // the Get has read "old" from L2
	require.NoError(t, store.MemoryStore.Delete(ctx, "k"))
	store.reconnected() // the flush of L2 is announced: every key may have changed
	close(store.release)
	r := <-first
	require.NoError(t, r.err)
	assert.Equal(t, "old", r.v, "a Get that began before the clear may see the older value")

	got, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "new", got, "Get after the clear must not serve what a fill read before it")
}

// A Set of a value the codec cannot encode (JSON refuses a nil pointer,
// which encodes to null) cannot reach L2: L2 must then not keep the older
// value, which another instance, or this one after its L1 copy is gone,
// would read.
func TestSetOfUnencodableValueDropsTheOlderL2Value(t *testing.T) {
	type item struct{ N int }
	store := &cache.MemoryStore{}
	ctx := context.Background()
	c, err := cache.New[*item](cache.WithStore(store))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Set(ctx, "k", &item{N: 1}))
	require.Error(t, c.Set(ctx, "k", nil), "Set of a value JSON encodes to null")
	_, err = store.Get(ctx, "k")
	assert.ErrorIs(t, err, cache.ErrNotFound, "L2 after a Set it could not hold")
}
