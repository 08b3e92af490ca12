package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"slices"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelpatterns/patterns"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/retry"
)

// A retrier around a circuit breaker, each given the service's meter
// provider (without one they use the global provider). The metrics they
// record come under an instrumentation scope per package, whose version is
// patterns.Version.
func Example() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(ctx) }()

	breaker := circuitbreaker.New("inventory", circuitbreaker.WithMeterProvider(mp))
	retrier := retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(retry.Constant(0)), retry.WithMeterProvider(mp))

	calls := 0
	err := retrier.Do(ctx, func(ctx context.Context) error {
		return breaker.Execute(ctx, func(context.Context) error {
			calls++
			if calls < 3 {
				return errors.New("inventory: connection reset")
			}
			return nil
		})
	})
	fmt.Printf("err: %v after %d calls\n", err, calls)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		fmt.Println(err)
		return
	}
	// The SDK gives the scopes and metrics in no set order: sort them.
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			lines = append(lines, fmt.Sprintf("%s from %s (version patterns.Version: %t)",
				m.Name, sm.Scope.Name, sm.Scope.Version == patterns.Version))
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// err: <nil> after 3 calls
	// circuitbreaker.calls from github.com/otelpatterns/patterns/circuitbreaker (version patterns.Version: true)
	// circuitbreaker.state from github.com/otelpatterns/patterns/circuitbreaker (version patterns.Version: true)
	// retry.attempts from github.com/otelpatterns/patterns/retry (version patterns.Version: true)
	// retry.calls from github.com/otelpatterns/patterns/retry (version patterns.Version: true)
	// retry.delay from github.com/otelpatterns/patterns/retry (version patterns.Version: true)
}
