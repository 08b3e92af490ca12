package rediscache_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// After many failed dials go-redis probes the server from a
		// goroutine that sleeps a second between dials and notices only
		// then that its client was closed: the tests that cut Redis off
		// or talk to a dead port leave one behind for up to a second.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}
