package ratelimit_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/internal/faultproxy"
)

// TestMain checks for leaked goroutines, ignoring the one toxiproxy leaves
// blocked for each busy connection a fault ends (TestRedisUnreachable's
// frozen Redis): it is the proxy's, not the limiter's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, faultproxy.IgnoreResetLeaks())
}
