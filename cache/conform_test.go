package cache_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// documented is the package's telemetry as doc.go describes it.
var (
	documented = []telemetrytest.Instrument{
		{Name: "cache.requests", Kind: telemetrytest.Counter, Unit: "{request}",
			Required: []attribute.Key{cache.AttrName, cache.AttrLevel, cache.AttrResult},
			Optional: []attribute.Key{semconv.ErrorTypeKey}},
		{Name: "cache.evictions", Kind: telemetrytest.Counter, Unit: "{entry}",
			Required: []attribute.Key{cache.AttrName}},
		{Name: "cache.loads", Kind: telemetrytest.Counter, Unit: "{load}",
			Required: []attribute.Key{cache.AttrName, cache.AttrResult}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
		{Name: "cache.load.duration", Kind: telemetrytest.Histogram, Unit: "s",
			Required: []attribute.Key{cache.AttrName, cache.AttrResult}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
		{Name: "cache.invalidations", Kind: telemetrytest.Counter, Unit: "{key}",
			Required: []attribute.Key{cache.AttrName, cache.AttrDirection}},
		{Name: "cache.write_behind.queue", Kind: telemetrytest.Gauge, Unit: "{write}",
			Required: []attribute.Key{cache.AttrName}},
		{Name: "cache.write_behind.flushes", Kind: telemetrytest.Counter, Unit: "{flush}",
			Required: []attribute.Key{cache.AttrName, cache.AttrResult}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
		{Name: "cache.write_behind.dead_letters", Kind: telemetrytest.Counter, Unit: "{write}",
			Required: []attribute.Key{cache.AttrName, semconv.ErrorTypeKey}},
		{Name: "cache.l2.fills", Kind: telemetrytest.Counter, Unit: "{fill}",
			Required: []attribute.Key{cache.AttrName, cache.AttrResult}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	}
	failure         = []attribute.Key{semconv.ErrorTypeKey}
	documentedSpans = []telemetrytest.Span{
		{Name: "cache.l2.get", Kind: trace.SpanKindClient, Required: []attribute.Key{cache.AttrName}, Optional: failure},
		{Name: "cache.l2.set", Kind: trace.SpanKindClient, Required: []attribute.Key{cache.AttrName}, Optional: failure},
		{Name: "cache.l2.delete", Kind: trace.SpanKindClient, Required: []attribute.Key{cache.AttrName}, Optional: failure},
		{Name: "cache.load", Kind: trace.SpanKindInternal, Required: []attribute.Key{cache.AttrName}, Optional: failure},
		{Name: "cache.refresh", Kind: trace.SpanKindInternal, Required: []attribute.Key{cache.AttrName}, Optional: failure,
			Parented: true},
		{Name: "cache.write_behind.flush", Kind: trace.SpanKindInternal,
			Required: []attribute.Key{cache.AttrName, "cache.write_behind.batch_size"}, Optional: failure},
	}
	documentedEvents = []telemetrytest.Instrument{
		{Name: "cache.invalidation_failed", Required: []attribute.Key{cache.AttrName, semconv.ErrorTypeKey}},
	}
)

// unannouncedStore is a MemoryStore whose announcements fail.
type unannouncedStore struct{ cache.MemoryStore }

func (*unannouncedStore) Publish(context.Context, string, ...string) error { return errBoom }

// TestTelemetryConforms runs caches through every documented metric, span
// and event, and checks every one emitted against doc.go, and doc.go
// against them.
func TestTelemetryConforms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := telemetrytest.New(t)
		ctx, caller := tel.TracerProvider.Tracer("test").Start(context.Background(), "caller")
		withTel := func(name string) []cache.Option[string] {
			return []cache.Option[string]{cache.WithName(name), cache.WithTracerProvider(tel.TracerProvider),
				cache.WithMeterProvider(tel.MeterProvider)}
		}
		var loads atomic.Int32
		load := func(_ context.Context, key string) (string, error) {
			switch key {
			case "missing":
				return "", cache.ErrNotFound
			case "broken":
				return "", errSource
			}
			if key == "hot" && loads.Add(1) > 1 {
				return "", fmt.Errorf("gone: %w", cache.ErrNotFound) // the refresh finds it gone
			}
			return "value of " + key, nil
		}

		// Two instances sharing an L2 that announces invalidations.
		shared := &cache.MemoryStore{}
		require.NoError(t, shared.Set(ctx, "corrupt", []byte("{not json"), 0))
		a := newStrategyCache(t, append(withTel("a"), cache.WithStore(shared), cache.WithLoader(load),
			cache.WithTTL(10*time.Second), cache.WithTTLJitter(0), cache.WithRefreshAhead(0.5))...)
		b := newStrategyCache(t, append(withTel("b"), cache.WithStore(shared))...)
		_, _ = a.Get(ctx, "hot") // L1 and L2 miss, load, L2 set in the background
		synctest.Wait()
		_, _ = a.Get(ctx, "hot")     // L1 hit
		_, _ = a.Get(ctx, "missing") // load not found
		_, _ = a.Get(ctx, "broken")  // load error
		_, _ = a.Get(ctx, "corrupt") // L2 decode error, load
		_, _ = b.Get(ctx, "hot")     // L2 hit
		require.NoError(t, a.Set(ctx, "k", "v"))
		require.NoError(t, a.Delete(ctx, "k"))
		time.Sleep(6 * time.Second)
		_, _ = a.Get(ctx, "hot") // past half the TTL: a refresh, which finds the key gone
		synctest.Wait()

		// An L2 that is down, and one whose announcements fail.
		down := newStrategyCache(t, append(withTel("down"), cache.WithStore(&failingStore{}), cache.WithLoader(load))...)
		_, _ = down.Get(ctx, "k")
		synctest.Wait() // its L2 fill fails
		_ = down.Delete(ctx, "k")
		mute := newStrategyCache(t, append(withTel("mute"), cache.WithStore(&unannouncedStore{}))...)
		require.ErrorIs(t, mute.Set(ctx, "k", "v"), errBoom)

		// Write-behind, failing once; and entries that expire.
		var flushes atomic.Int32
		wb := newStrategyCache(t, append(withTel("wb"), cache.WithTTL(time.Second), cache.WithTTLJitter(0),
			cache.WithWriteBatch(1, time.Second), cache.WithWriteBehind(func(context.Context, []cache.Write[string]) error {
				if flushes.Add(1) == 1 {
					return errSource
				}
				return nil
			}))...)
		require.NoError(t, wb.Set(ctx, "k", "v"))
		require.NoError(t, wb.Flush(ctx))
		time.Sleep(2 * time.Second)
		// The expired entry is not served, and is removed when read.
		_, err := wb.Get(ctx, "k")
		require.ErrorIs(t, err, cache.ErrNotFound)
		synctest.Wait()
		caller.End()

		tel.CheckMetrics(t, cache.ScopeName, documented, "cache.requests", "cache.evictions", "cache.loads",
			"cache.load.duration", "cache.invalidations", "cache.write_behind.queue", "cache.write_behind.flushes", "cache.l2.fills")
		tel.CheckSpans(t, cache.ScopeName, documentedSpans, "cache.l2.get", "cache.l2.set", "cache.l2.delete",
			"cache.load", "cache.refresh", "cache.write_behind.flush")
		tel.CheckEvents(t, documentedEvents, "cache.invalidation_failed")
		names := slices.Concat(documented, documentedEvents)
		for _, v := range []string{"l1", "l2", "hit", "miss", "error", "success", "not_found", "sent", "received",
			"skipped", "dropped", "cache.decode", "cache.not_found"} {
			names = append(names, telemetrytest.Instrument{Name: v})
		}
		telemetrytest.CheckDoc(t, "doc.go", names, documentedSpans)

		// Failures carry the error.type of their span.
		name := func(n string) attribute.KeyValue { return cache.AttrName.String(n) }
		errorType := func(s string) attribute.KeyValue { return semconv.ErrorTypeKey.String(s) }
		result := cache.AttrResult.String
		l2 := cache.AttrLevel.String("l2")
		assert.Equal(t, int64(1), tel.Int64(t, "cache.requests", name("a"), l2, result("error"), errorType("cache.decode")))
		assert.Equal(t, int64(1), tel.Int64(t, "cache.requests", name("down"), l2, result("error"), semconv.ErrorTypeOther))
		assert.Equal(t, int64(1), tel.Int64(t, "cache.loads", name("a"), result("error"), semconv.ErrorTypeOther))
		assert.Equal(t, uint64(1), tel.HistogramCount(t, "cache.load.duration", name("a"), result("error"), semconv.ErrorTypeOther))
		assert.Equal(t, int64(1), tel.Int64(t, "cache.write_behind.flushes", name("wb"), result("error"), semconv.ErrorTypeOther))
		assert.Equal(t, int64(1), tel.Int64(t, "cache.l2.fills", name("down"), result("error"), semconv.ErrorTypeOther))
		assert.Positive(t, tel.Int64(t, "cache.l2.fills", name("a"), result("success")))
		assert.Equal(t, int64(1), tel.Int64(t, "cache.evictions", name("wb")), "the expired entry")
		refresh := tel.SpansNamed("cache.refresh")
		require.Len(t, refresh, 1)
		assert.Equal(t, "cache.not_found", telemetrytest.Attrs(refresh[0])[semconv.ErrorTypeKey].AsString())
	})
}

// TestClearIsNotEviction protects cache.evictions from counting what L1
// did not drop by itself: the clearing of L1 when a lost subscription is
// restored, and Close. Before, ristretto reported every entry they dropped
// as an eviction.
func TestClearIsNotEviction(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	store := &reconnectingStore{}
	c, err := cache.New[string](cache.WithStore(store), cache.WithMeterProvider(tel.MeterProvider))
	require.NoError(t, err)
	for i := range 100 {
		require.NoError(t, c.Set(ctx, fmt.Sprint(i), "v"))
	}
	require.NoError(t, store.MemoryStore.Delete(ctx, "1"))
	store.reconnected()
	_, err = c.Get(ctx, "1")
	require.ErrorIs(t, err, cache.ErrNotFound, "L1 was cleared")
	require.NoError(t, c.Close())
	assert.False(t, tel.HasMetric(t, "cache.evictions"), "evictions: %s", tel.Describe(t, "cache.evictions"))
	runtime.KeepAlive(c)
}

// TestL2ErrorTypesAreBounded protects the cardinality promise of doc.go:
// at most 64 error.type values of L2 errors, then _OTHER.
func TestL2ErrorTypesAreBounded(t *testing.T) {
	tel := telemetrytest.New(t)
	store := &typedFailingStore{}
	c := newCache[string](t, cache.WithStore(store), cache.WithMeterProvider(tel.MeterProvider))
	for i := range 100 {
		store.typ = fmt.Sprint("t", i)
		_, _ = c.Get(context.Background(), "k")
	}
	var series int
	for _, sm := range tel.Collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "cache.requests" {
				for _, set := range telemetrytest.AttributeSets(m) {
					if set.HasValue(semconv.ErrorTypeKey) {
						series++
					}
				}
			}
		}
	}
	assert.Equal(t, 65, series, "L2 error series: 64 error types and _OTHER")
	assert.Equal(t, int64(100-64), tel.Int64(t, "cache.requests", cache.AttrName.String(""), cache.AttrLevel.String("l2"),
		cache.AttrResult.String("error"), semconv.ErrorTypeOther))
}

// typedFailingStore fails every Get with an error whose error.type is typ.
type typedFailingStore struct {
	failingStore
	typ string
}

func (s *typedFailingStore) Get(context.Context, string) ([]byte, error) {
	return nil, typedError(s.typ)
}

type typedError string

func (e typedError) Error() string     { return string(e) }
func (e typedError) ErrorType() string { return string(e) }

// TestDroppedCacheTakesItsSeries protects the promise that a cache's
// counts are not lost when it is closed and dropped before the next
// collection (as at the end of a program whose deferred Close runs before
// the deferred shutdown of its meter provider), and that its series end
// after that.
func TestDroppedCacheTakesItsSeries(t *testing.T) {
	tel := telemetrytest.New(t)
	func() {
		c, err := cache.New[string](cache.WithName("short-lived"), cache.WithMeterProvider(tel.MeterProvider))
		require.NoError(t, err)
		_, _ = c.Get(context.Background(), "k")
		require.NoError(t, c.Close())
	}()
	kept := newCache[string](t, cache.WithName("kept"), cache.WithMeterProvider(tel.MeterProvider))
	_, _ = kept.Get(context.Background(), "k")
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	assert.Equal(t, map[string]bool{"kept": true, "short-lived": true}, tel.AttributeValues(t, cache.AttrName),
		"the dropped cache's last counts reach the next collection")
	assert.Eventually(t, func() bool {
		runtime.GC()
		return !tel.AttributeValues(t, cache.AttrName)["short-lived"]
	}, 5*time.Second, 10*time.Millisecond, "the dropped cache's series end")
	assert.Equal(t, map[string]bool{"kept": true}, tel.AttributeValues(t, cache.AttrName))
	runtime.KeepAlive(kept)
}

// TestConcurrentHitsAreCounted protects the sum of the L1 hit counter,
// which concurrent goroutines spread over several counters.
func TestConcurrentHitsAreCounted(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	c := newCache[string](t, cache.WithName("hot"), cache.WithMeterProvider(tel.MeterProvider))
	require.NoError(t, c.Set(ctx, "k", "v"))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 1000 {
				if _, err := c.Get(ctx, "k"); err != nil {
					t.Errorf("Get() = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(16*1000), tel.Int64(t, "cache.requests", cache.AttrName.String("hot"),
		cache.AttrLevel.String("l1"), cache.AttrResult.String("hit")))
}
