package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

var errBoom = errors.New("boom")

func newCache[V any](t *testing.T, opts ...cache.Option[V]) *cache.Cache[V] {
	t.Helper()
	c, err := cache.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// counting returns a loader that answers "value of <key>" and counts calls.
func counting(calls *atomic.Int32) func(context.Context, string) (string, error) {
	return func(_ context.Context, key string) (string, error) {
		calls.Add(1)
		return "value of " + key, nil
	}
}

func TestCacheAside(t *testing.T) {
	ctx := context.Background()
	c := newCache[int](t)
	_, err := c.Get(ctx, "a")
	require.ErrorIs(t, err, cache.ErrNotFound)
	require.NoError(t, c.Set(ctx, "a", 1))
	v, err := c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	require.NoError(t, c.Set(ctx, "a", 2))
	v, _ = c.Get(ctx, "a")
	assert.Equal(t, 2, v)
	require.NoError(t, c.Delete(ctx, "a"))
	_, err = c.Get(ctx, "a")
	require.ErrorIs(t, err, cache.ErrNotFound)
	require.NoError(t, c.Delete(ctx, "never-set"))
}

func TestReadThrough(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	store := &cache.MemoryStore{}
	c := newCache[string](t, cache.WithLoader(counting(&calls)), cache.WithStore(store))
	for range 3 {
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "value of k", v)
	}
	assert.Equal(t, int32(1), calls.Load(), "one load, then L1 hits")
	require.NoError(t, c.Flush(ctx), "L2 is filled in the background")
	b, err := store.Get(ctx, "k")
	require.NoError(t, err, "the load fills L2")
	assert.JSONEq(t, `"value of k"`, string(b))

	// Another instance finds it in L2 without loading.
	other := newCache[string](t, cache.WithLoader(counting(&calls)), cache.WithStore(store))
	v, err := other.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "value of k", v)
	assert.Equal(t, int32(1), calls.Load())
}

func TestLoaderErrors(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	c := newCache[string](t, cache.WithLoader(func(_ context.Context, key string) (string, error) {
		calls.Add(1)
		switch key {
		case "missing":
			return "", fmt.Errorf("db: %w", cache.ErrNotFound)
		case "broken":
			return "", errBoom
		}
		return key, nil
	}))
	_, err := c.Get(ctx, "missing")
	require.ErrorIs(t, err, cache.ErrNotFound)
	_, err = c.Get(ctx, "broken")
	require.ErrorIs(t, err, errBoom)
	_, err = c.Get(ctx, "broken")
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, int32(3), calls.Load(), "errors are not cached")
}

// TestStampede protects the source from a cache breakdown: a thousand
// callers missing one key cause exactly one load.
func TestStampede(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		release := make(chan struct{})
		c := newCache[string](t, cache.WithLoader(func(_ context.Context, key string) (string, error) {
			calls.Add(1)
			<-release
			return "v", nil
		}))
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		for range 1000 {
			wg.Go(func() {
				v, err := c.Get(context.Background(), "hot")
				if err == nil && v != "v" {
					err = fmt.Errorf("Get() = %q; want %q", v, "v")
				}
				if err != nil {
					errs <- err
				}
			})
		}
		synctest.Wait() // every caller waits on the one load
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		assert.Equal(t, int32(1), calls.Load())
	})
}

func TestCallerGivingUpDoesNotCancelTheSharedLoad(t *testing.T) {
	release := make(chan struct{})
	var loadErr atomic.Value
	c := newCache[string](t, cache.WithLoader(func(ctx context.Context, key string) (string, error) {
		<-release
		if err := ctx.Err(); err != nil {
			loadErr.Store(err)
		}
		return "v", nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := c.Get(ctx, "k")
		done <- err
	}()
	patient := make(chan string)
	go func() {
		time.Sleep(5 * time.Millisecond)
		v, _ := c.Get(context.Background(), "k")
		patient <- v
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled, "the impatient caller gets its context's error")
	close(release)
	assert.Equal(t, "v", <-patient)
	assert.Nil(t, loadErr.Load(), "the load must not see the first caller's cancellation")
}

// failingStore is an L2 that is down.
type failingStore struct{ calls atomic.Int32 }

func (f *failingStore) Get(context.Context, string) ([]byte, error) {
	f.calls.Add(1)
	return nil, errBoom
}

func (f *failingStore) Set(context.Context, string, []byte, time.Duration) error {
	f.calls.Add(1)
	return errBoom
}

func (f *failingStore) Delete(context.Context, string) error { f.calls.Add(1); return errBoom }

func TestL2DownFallsBackToLoader(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	var calls atomic.Int32
	store := &failingStore{}
	c := newCache[string](t, cache.WithLoader(counting(&calls)), cache.WithStore(store), cache.WithName("products"),
		cache.WithMeterProvider(tel.MeterProvider), cache.WithTracerProvider(tel.TracerProvider))
	v, err := c.Get(ctx, "k")
	require.NoError(t, err, "a failing L2 must not fail the Get")
	assert.Equal(t, "value of k", v)
	v, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "value of k", v, "L1 keeps serving")
	assert.Equal(t, int32(1), calls.Load())
	assert.Equal(t, int64(1), tel.Int64(t, "cache.requests", attribute.String("cache.name", "products"),
		attribute.String("cache.level", "l2"), attribute.String("cache.result", "error"), semconv.ErrorTypeOther),
		"an L2 error counts with its error.type")

	err = c.Set(ctx, "k", "new")
	require.ErrorIs(t, err, errBoom, "Set reports the L2 failure")
	v, _ = c.Get(ctx, "k")
	assert.Equal(t, "new", v, "but L1 is updated")
	require.ErrorIs(t, c.Delete(ctx, "k"), errBoom)
	_, err = c.Get(ctx, "k")
	require.NoError(t, err, "L1 dropped the key, the loader answers again")

	var l2Errors int
	for _, s := range tel.Spans.Ended() {
		if s.Name() == "cache.l2.get" && s.Status().Code.String() == "Error" {
			l2Errors++
		}
	}
	assert.Positive(t, l2Errors, "L2 failures are span errors")
}

func TestUndecodableL2ValueIsAMiss(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	store := &cache.MemoryStore{}
	require.NoError(t, store.Set(ctx, "k", []byte("{not json"), 0))
	var calls atomic.Int32
	c := newCache[string](t, cache.WithStore(store), cache.WithLoader(counting(&calls)), cache.WithTracerProvider(tel.TracerProvider))
	v, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "value of k", v)
	require.NoError(t, c.Flush(ctx), "L2 is filled in the background")
	b, _ := store.Get(ctx, "k")
	assert.JSONEq(t, `"value of k"`, string(b), "the load overwrites the bad value")
	var sawDecode bool
	for _, s := range tel.Spans.Ended() {
		for _, a := range s.Attributes() {
			if a.Key == "error.type" && a.Value.AsString() == "cache.decode" {
				sawDecode = true
			}
		}
	}
	assert.True(t, sawDecode, "a decode failure is recorded with error.type cache.decode")
}

func TestInvalidationAcrossInstances(t *testing.T) {
	ctx := context.Background()
	store := &cache.MemoryStore{}
	telA, telB := telemetrytest.New(t), telemetrytest.New(t)
	a := newCache[string](t, cache.WithStore(store), cache.WithMeterProvider(telA.MeterProvider))
	b := newCache[string](t, cache.WithStore(store), cache.WithMeterProvider(telB.MeterProvider))
	require.NoError(t, a.Set(ctx, "price", "10"))
	v, err := b.Get(ctx, "price")
	require.NoError(t, err)
	assert.Equal(t, "10", v, "from L2")
	require.NoError(t, a.Set(ctx, "price", "12"))
	v, _ = b.Get(ctx, "price")
	assert.Equal(t, "12", v, "B's L1 copy was dropped")
	require.NoError(t, a.Delete(ctx, "price"))
	_, err = b.Get(ctx, "price")
	require.ErrorIs(t, err, cache.ErrNotFound)

	received := func(tel *telemetrytest.Providers) int64 {
		return tel.Int64(t, "cache.invalidations", attribute.String("cache.name", ""), attribute.String("cache.direction", "received"))
	}
	assert.Equal(t, int64(3), received(telB))
	assert.Equal(t, int64(0), received(telA), "an instance ignores its own messages")
}

func TestReconnectDropsL1(t *testing.T) {
	ctx := context.Background()
	store := &reconnectingStore{}
	c := newCache[string](t, cache.WithStore(store))
	require.NoError(t, c.Set(ctx, "k", "v"))
	require.NoError(t, store.MemoryStore.Delete(ctx, "k")) // changed while we were not listening
	store.reconnected()
	_, err := c.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound, "after a lost subscription L1 may be stale and is dropped")
}

// reconnectingStore lets a test say that the subscription was restored.
type reconnectingStore struct {
	cache.MemoryStore
	reconnected func()
}

func (s *reconnectingStore) Subscribe(ctx context.Context, handle func(string, string), reconnected func()) (func(), error) {
	s.reconnected = reconnected
	return s.MemoryStore.Subscribe(ctx, handle, reconnected)
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	c, err := cache.New[string]()
	require.NoError(t, err)
	require.NoError(t, c.Set(ctx, "k", "v"))
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	_, err = c.Get(ctx, "k")
	assert.ErrorIs(t, err, cache.ErrClosed)
	assert.ErrorIs(t, c.Set(ctx, "k", "v"), cache.ErrClosed)
	assert.ErrorIs(t, c.Delete(ctx, "k"), cache.ErrClosed)
}

func TestTelemetry(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	var calls atomic.Int32
	c := newCache[string](t, cache.WithLoader(counting(&calls)), cache.WithStore(&cache.MemoryStore{}), cache.WithName("products"),
		cache.WithMeterProvider(tel.MeterProvider), cache.WithTracerProvider(tel.TracerProvider))
	_, _ = c.Get(ctx, "a") // L1 miss, L2 miss, load
	_, _ = c.Get(ctx, "a") // L1 hit
	_, _ = c.Get(ctx, "a") // L1 hit
	require.NoError(t, c.Flush(ctx), "L2 is filled in the background")
	req := func(level, result string) int64 {
		return tel.Int64(t, "cache.requests", attribute.String("cache.name", "products"), attribute.String("cache.level", level), attribute.String("cache.result", result))
	}
	assert.Equal(t, int64(2), req("l1", "hit"))
	assert.Equal(t, int64(1), req("l1", "miss"))
	assert.Equal(t, int64(1), req("l2", "miss"))
	assert.Equal(t, int64(1), tel.Int64(t, "cache.loads", attribute.String("cache.name", "products"), attribute.String("cache.result", "success")))
	assert.Equal(t, uint64(1), tel.HistogramCount(t, "cache.load.duration", attribute.String("cache.name", "products"), attribute.String("cache.result", "success")))

	var names []string
	for _, s := range tel.Spans.Ended() {
		names = append(names, s.Name())
	}
	assert.ElementsMatch(t, []string{"cache.l2.get", "cache.load", "cache.l2.set"}, names, "spans only for L2 round trips and loads; none for hits")
}

// TestL1HitAllocatesNothing protects the hot path.
func TestL1HitAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	for name, opts := range map[string][]cache.Option[string]{
		"noop": nil,
		"sdk":  {cache.WithMeterProvider(tel.MeterProvider), cache.WithTracerProvider(tel.TracerProvider)},
	} {
		c := newCache[string](t, opts...)
		require.NoError(t, c.Set(ctx, "k", "v"))
		if n := testing.AllocsPerRun(1000, func() { _, _ = c.Get(ctx, "k") }); n != 0 {
			t.Errorf("%s: Get() on an L1 hit allocates %v times; want 0", name, n)
		}
	}
}

func TestEvictionsAreCounted(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	c := newCache[int](t, cache.WithMaxEntries(10), cache.WithMeterProvider(tel.MeterProvider))
	for i := range 1000 {
		// Read each key a few times so that TinyLFU admits newcomers.
		require.NoError(t, c.Set(ctx, fmt.Sprint(i), i))
		for range 3 {
			_, _ = c.Get(ctx, fmt.Sprint(i))
		}
	}
	assert.Positive(t, tel.Int64(t, "cache.evictions", attribute.String("cache.name", "")))
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	c := newCache[string](t, cache.WithLoader(counting(&calls)), cache.WithStore(&cache.MemoryStore{}), cache.WithMaxEntries(50))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := fmt.Sprint((g*7 + i) % 100)
				switch i % 10 {
				case 0:
					_ = c.Set(ctx, key, "set "+key)
				case 1:
					_ = c.Delete(ctx, key)
				default:
					v, err := c.Get(ctx, key)
					if err != nil || (v != "value of "+key && v != "set "+key) {
						t.Errorf("Get(%q) = %q, %v", key, v, err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestSharedLoadIsBounded protects waiting callers from a loader that
// never returns: the shared fill has its own timeout.
func TestSharedLoadIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := cache.New[string](cache.WithLoadTimeout(time.Second), cache.WithLoader(func(ctx context.Context, key string) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}))
		require.NoError(t, err)
		defer c.Close()
		start := time.Now()
		_, err = c.Get(context.Background(), "k")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(start))
	})
}

// unreachableStore is an Invalidator whose first subscriptions fail, as
// Redis does when it is down at start-up.
type unreachableStore struct {
	cache.MemoryStore
	failures atomic.Int32
}

func (s *unreachableStore) Subscribe(ctx context.Context, handle func(string, string), reconnected func()) (func(), error) {
	if s.failures.Add(-1) >= 0 {
		return nil, errBoom
	}
	return s.MemoryStore.Subscribe(ctx, handle, reconnected)
}

// TestStartsWhileTheStoreIsDown protects start-up during an L2 outage: New
// succeeds and subscribes once the store is back.
func TestStartsWhileTheStoreIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &unreachableStore{}
		store.failures.Store(3)
		a, err := cache.New[string](cache.WithStore(store))
		require.NoError(t, err, "New must not fail because invalidations cannot be subscribed yet")
		defer a.Close()
		b, err := cache.New[string](cache.WithStore(store))
		require.NoError(t, err)
		defer b.Close()
		require.NoError(t, a.Set(ctx, "k", "1"))
		time.Sleep(time.Minute) // the retries succeed meanwhile
		synctest.Wait()
		v, _ := a.Get(ctx, "k")
		require.Equal(t, "1", v)
		require.NoError(t, b.Set(ctx, "k", "2"))
		v, _ = a.Get(ctx, "k")
		assert.Equal(t, "2", v, "a subscribed late and sees b's invalidation")
	})
}

func TestMaxBytesBoundsL1BySize(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	c := newCache[string](t, cache.WithMaxBytes(10_000), cache.WithMeterProvider(tel.MeterProvider))
	big := string(make([]byte, 1000)) // about 1 KB encoded: about ten fit
	for i := range 200 {
		key := fmt.Sprint(i)
		require.NoError(t, c.Set(ctx, key, big))
		for range 3 {
			_, _ = c.Get(ctx, key)
		}
	}
	present := 0
	for i := range 200 {
		if _, err := c.Get(ctx, fmt.Sprint(i)); err == nil {
			present++
		}
	}
	assert.LessOrEqual(t, present, 12, "values are counted by their encoded size")
	assert.Positive(t, present)
}

func TestWriteBehindQueueGauge(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	release := make(chan struct{})
	c := newCache[int](t, cache.WithName("views"), cache.WithMeterProvider(tel.MeterProvider), cache.WithWriteBatch(100, time.Hour),
		cache.WithWriteBehind(func(ctx context.Context, batch []cache.Write[int]) error {
			<-release
			return nil
		}))
	for i := range 5 {
		require.NoError(t, c.Set(ctx, fmt.Sprint(i), i))
	}
	assert.Equal(t, int64(5), tel.Int64(t, "cache.write_behind.queue", attribute.String("cache.name", "views")))
	close(release)
	require.NoError(t, c.Flush(ctx))
	assert.Equal(t, int64(0), tel.Int64(t, "cache.write_behind.queue", attribute.String("cache.name", "views")))
	assert.Equal(t, int64(1), tel.Int64(t, "cache.write_behind.flushes", attribute.String("cache.name", "views"), attribute.String("cache.result", "success")))
}
