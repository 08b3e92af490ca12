package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestRequestsCountedOnceGlobalSet: a cache built on the global meter
// provider before any was set does not count its lookups then, since no
// reader could see the counts, and counts every one from shortly after
// otel.SetMeterProvider installs a provider (the next tick of its clock).
// It runs in a process of its own, since the global provider cannot be
// unset.
func TestRequestsCountedOnceGlobalSet(t *testing.T) {
	if !testenv.InOwnProcess(t) {
		return
	}
	ctx := context.Background()
	c, err := cache.New[string](cache.WithName("products"))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Set(ctx, "k", "v"))
	get := func(key string) {
		t.Helper()
		_, err := c.Get(ctx, key)
		if key == "k" {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, cache.ErrNotFound)
		}
	}
	const before = 100
	for range before {
		get("k")
		get("absent")
	}

	tel := telemetrytest.New(t)
	otel.SetMeterProvider(tel.MeterProvider)
	requests := func(result string) int64 {
		if !tel.HasMetric(t, "cache.requests") {
			return 0
		}
		return tel.Int64(t, "cache.requests", attribute.String("cache.name", "products"),
			attribute.String("cache.level", "l1"), attribute.String("cache.result", result))
	}
	// Hits from one that the clock's tick has seen the provider.
	after := 0
	for deadline := time.Now().Add(5 * time.Second); requests("hit") == 0; after++ {
		require.True(t, time.Now().Before(deadline), "no hit counted 5s after the provider was set")
		get("k")
		time.Sleep(cache.ClockTick / 4)
	}
	hits := requests("hit")
	require.LessOrEqual(t, hits, int64(after), "hits counted; want none of the %d before the provider was set", before)
	require.Zero(t, requests("miss"), "misses counted before the provider was set")

	for range 10 {
		get("k")
		get("absent")
	}
	require.Equal(t, hits+10, requests("hit"), "hits once counting")
	require.Equal(t, int64(10), requests("miss"), "misses once counting")
}
