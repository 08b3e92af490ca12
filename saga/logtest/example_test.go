package logtest_test

import (
	"testing"

	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/logtest"
)

// A log implementation's test runs the suite against logs it creates,
// one per subtest.
func ExampleRun() {
	_ = func(t *testing.T) { // in a _test.go file: func TestConformance(t *testing.T) { ... }
		logtest.Run(t, func(t *testing.T) saga.Log {
			return &saga.MemoryLog{}
		})
	}
}
