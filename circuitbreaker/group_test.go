package circuitbreaker_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
