package natsbus_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/internal/faultproxy"
)

func TestMain(m *testing.M) {
	// The fault tests reset busy connections through toxiproxy, which
	// leaves a goroutine of its own blocked for each.
	goleak.VerifyTestMain(m, faultproxy.IgnoreResetLeaks())
}
