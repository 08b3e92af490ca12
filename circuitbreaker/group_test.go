package circuitbreaker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

func TestGroupGet(t *testing.T) {
	g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(1))
	a := g.Get("a.example")
	assert.Same(t, a, g.Get("a.example"))
	assert.Equal(t, "a.example", a.Name())
	b := g.Get("b.example")
	assert.NotSame(t, a, b)
	run(t, a, "f")
	assert.Equal(t, circuitbreaker.StateOpen, a.State(), "members take the group's options")
	assert.Equal(t, circuitbreaker.StateClosed, b.State(), "members are independent")
	assert.Equal(t, 2, g.Len())
}

func TestGroupIsBounded(t *testing.T) {
	g := circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(3), circuitbreaker.WithConsecutiveFailures(1))
	open := g.Get("open")
	run(t, open, "f")
	for i := range 100 {
		g.Get(fmt.Sprintf("k%d", i))
		require.LessOrEqual(t, g.Len(), 3)
	}
	assert.Equal(t, 3, g.Len())
	assert.Same(t, open, g.Get("open"), "an open breaker is kept over closed ones")
}

func TestGroupEvictsLeastRecentlyUsedFirst(t *testing.T) {
	g := circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(3))
	a, b, c := g.Get("a"), g.Get("b"), g.Get("c")
	g.Get("d") // every entry was used: the sweep clears all marks and takes the first, a
	g.Get("b") // b is used again; c is not
	g.Get("e") // so c goes
	assert.Same(t, b, g.Get("b"))
	// Getting an evicted key creates a new breaker (and evicts another).
	assert.NotSame(t, c, g.Get("c"))
	assert.NotSame(t, a, g.Get("a"))
	assert.Equal(t, 3, g.Len())
}

func TestGroupEvictsOpenWhenAllAreOpen(t *testing.T) {
	g := circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(2), circuitbreaker.WithConsecutiveFailures(1))
	run(t, g.Get("a"), "f")
	run(t, g.Get("b"), "f")
	c := g.Get("c")
	assert.Equal(t, 2, g.Len())
	assert.Equal(t, circuitbreaker.StateClosed, c.State())
}

func TestGroupConcurrentGet(t *testing.T) {
	g := circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(64))
	var wg sync.WaitGroup
	got := make([][]*circuitbreaker.Breaker, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				b := g.Get(fmt.Sprintf("k%d", i%32))
				got[w] = append(got[w], b)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 32, g.Len())
	for i := range 1000 {
		for w := 1; w < 8; w++ {
			require.Same(t, got[0][i], got[w][i], "every goroutine must get the same breaker for a key")
		}
	}
}

// Remove drops a key's breaker and its series; the key's next Get starts
// closed, and the group's ring stays consistent for eviction.
func TestGroupRemove(t *testing.T) {
	tel := telemetrytest.New(t)
	g := circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(3), circuitbreaker.WithConsecutiveFailures(1),
		circuitbreaker.WithMeterProvider(tel.MeterProvider))
	gone := g.Get("gone.example")
	run(t, gone, "f")
	g.Get("kept.example")
	g.Remove("gone.example")
	g.Remove("never.example") // no such key: nothing happens
	assert.Equal(t, 1, g.Len())
	for _, sm := range tel.Collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, set := range telemetrytest.AttributeSets(m) {
				if v, _ := set.Value(circuitbreaker.AttrName); v.AsString() == "gone.example" {
					t.Errorf("%s still reports the removed breaker: %v", m.Name, set)
				}
			}
		}
	}
	again := g.Get("gone.example")
	assert.NotSame(t, gone, again)
	assert.Equal(t, circuitbreaker.StateClosed, again.State())
	for i := range 10 { // eviction goes on over the ring Remove shortened
		g.Get(fmt.Sprintf("k%d", i))
		require.LessOrEqual(t, g.Len(), 3)
	}
}

// callsPoint returns the circuitbreaker.calls data point of breaker name
// and outcome from one collection of r.
func callsPoint(t *testing.T, r sdkmetric.Reader, name, outcome string) (metricdata.DataPoint[int64], bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "circuitbreaker.calls" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				n, _ := dp.Attributes.Value(circuitbreaker.AttrName)
				o, _ := dp.Attributes.Value(circuitbreaker.AttrOutcome)
				if n.AsString() == name && o.AsString() == outcome {
					return dp, true
				}
			}
		}
	}
	return metricdata.DataPoint[int64]{}, false
}

// A key that comes back to a group, after Remove or an eviction, gets a
// new breaker reporting circuitbreaker.calls under the same attribute set
// {circuitbreaker.name=key, circuitbreaker.outcome=success}, while the
// SDK's start time for the observable counter stays the same. Its counts
// go on from the old breaker's, so the cumulative series does not drop
// (from 5 to 1) without a new start time, and a delta reader does not see
// the monotonic counter report a negative delta (-4): both would break
// the OpenTelemetry data model for a monotonic sum.
func TestGroupReturningKeyCountsOn(t *testing.T) {
	for _, temporality := range []metricdata.Temporality{metricdata.CumulativeTemporality, metricdata.DeltaTemporality} {
		for _, way := range []string{"removed", "evicted"} {
			t.Run(temporality.String()+"/"+way, func(t *testing.T) {
				reader := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(
					func(sdkmetric.InstrumentKind) metricdata.Temporality { return temporality }))
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
				t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
				g := circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(1), circuitbreaker.WithMeterProvider(mp))

				run(t, g.Get("api.example"), "sssss")
				before, ok := callsPoint(t, reader, "api.example", "success")
				require.True(t, ok)
				require.Equal(t, int64(5), before.Value)
				if way == "removed" {
					g.Remove("api.example")
				} else {
					g.Get("other.example")
				}
				run(t, g.Get("api.example"), "s")
				after, ok := callsPoint(t, reader, "api.example", "success")
				require.True(t, ok, "no success point after the key came back")
				switch temporality {
				case metricdata.CumulativeTemporality:
					assert.Equal(t, int64(6), after.Value, "the cumulative count goes on from 5")
					assert.Equal(t, before.StartTime, after.StartTime)
				case metricdata.DeltaTemporality:
					assert.Equal(t, int64(1), after.Value, "the delta is the one call since")
				}
			})
		}
	}
}

// A group remembers the counts of as many gone keys as it holds breakers,
// forgetting the oldest first: a forgotten key starts again from zero.
func TestGroupForgetsOldestCounts(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	g := circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(1), circuitbreaker.WithMeterProvider(mp))
	run(t, g.Get("a"), "ss")
	run(t, g.Get("b"), "sss") // evicts a, whose counts are kept
	run(t, g.Get("c"), "s")   // evicts b: a's counts are forgotten
	run(t, g.Get("b"), "s")   // evicts c
	run(t, g.Get("a"), "s")   // evicts b
	p, ok := callsPoint(t, reader, "a", "success")
	require.True(t, ok)
	assert.Equal(t, int64(1), p.Value, "a was forgotten: it starts again from zero")
	g.Remove("a")
	_, ok = callsPoint(t, reader, "b", "success")
	assert.False(t, ok, "b is gone, and not reported")
	run(t, g.Get("b"), "s") // b's counts were forgotten when a went
	p, ok = callsPoint(t, reader, "b", "success")
	require.True(t, ok)
	assert.Equal(t, int64(1), p.Value)
}
