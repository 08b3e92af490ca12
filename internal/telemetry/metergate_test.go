package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

func TestMeterGate(t *testing.T) {
	sdk := sdkmetric.NewMeterProvider()
	defer sdk.Shutdown(context.Background())
	cases := []struct {
		name string
		gate MeterGate
		want bool
	}{
		{"no-op provider", NewMeterGate(noop.NewMeterProvider()), true},
		{"SDK provider", NewMeterGate(sdk), false},
		// The test binary sets no global provider (the cache's tests check
		// a provider set later, in a process of their own).
		{"global provider, none set", NewMeterGate(nil), true},
	}
	for _, c := range cases {
		if got := c.gate.Skip(); got != c.want {
			t.Errorf("%s: Skip = %v, want %v", c.name, got, c.want)
		}
	}
}
