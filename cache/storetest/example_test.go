package storetest_test

import (
	"testing"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/storetest"
)

// A backend's test runs the suite against stores it creates.
func ExampleRun() {
	_ = func(t *testing.T) { // in a _test.go file: func TestConformance(t *testing.T) { ... }
		storetest.Run(t, func(t *testing.T) cache.Store {
			return &cache.MemoryStore{}
		})
	}
}
