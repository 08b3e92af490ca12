package storetest_test

import (
	"testing"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/storetest"
)

// A backend's test runs the suite against stores it creates.
func ExampleRun() {
	_ = func(t *testing.T) { // in a _test.go file: func TestConformance(t *testing.T) { ... }
		storetest.Run(t, func(t *testing.T) eventsource.Store {
			return &eventsource.MemoryStore{}
		})
	}
}
