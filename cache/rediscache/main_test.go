package rediscache_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/internal/faultproxy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// After many failed dials go-redis probes the server from a
		// goroutine that sleeps a second between dials and notices only
		// then that its client was closed: the tests that cut Redis off
		// or talk to a dead port leave one behind for up to a second.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
		// Cutting a proxied connection while data flows (the fault
		// tests) can leave one of toxiproxy's goroutines blocked: the
		// proxy's, not the store's (seen once in CI, under load).
		faultproxy.IgnoreResetLeaks())
}
