package bustest_test

import (
	"testing"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/bustest"
)

// A bus's test runs the suite against buses it creates.
func ExampleRun() {
	_ = func(t *testing.T) { // in a _test.go file: func TestConformance(t *testing.T) { ... }
		bustest.Run(t, func(t *testing.T) cqrs.EventBus {
			b := cqrs.NewMemoryBus()
			t.Cleanup(func() { _ = b.Close() })
			return b
		})
	}
}
