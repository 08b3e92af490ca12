package telemetry_test

import (
	"strconv"
	"sync"
	"testing"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// TestSeries checks that a key's value is built once, even by concurrent
// callers, and that keys past the bound share the OtherSeries value.
func TestSeries(t *testing.T) {
	var (
		mu    sync.Mutex
		built []string
	)
	s := telemetry.NewSeries(3, func(key string) *string {
		mu.Lock()
		defer mu.Unlock()
		built = append(built, key)
		return &key
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 5 {
				key := "/r" + strconv.Itoa(i)
				got := *s.Get(key)
				if i < 3 && got != key || i >= 3 && got != telemetry.OtherSeries {
					t.Errorf("Get(%q) = %q", key, got)
				}
			}
		})
	}
	wg.Wait()
	if len(built) != 4 {
		t.Errorf("built %q; want /r0, /r1, /r2 and %s, once each", built, telemetry.OtherSeries)
	}
	n := 0
	s.Range(func(*string) bool { n++; return true })
	if n != 4 {
		t.Errorf("Range saw %d values; want 4", n)
	}
}
