package pgstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/internal/faultproxy"
)

// TestMain checks for leaked goroutines, ignoring the one toxiproxy leaves
// blocked for each busy connection the fault tests reset
// (TestWriterAndSubscriberThroughFaults): it is the proxy's, not the store's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, faultproxy.IgnoreResetLeaks())
}
