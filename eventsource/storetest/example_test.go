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

// A snapshot store's test runs the snapshot suite against stores it
// creates; the Delete cases run if the store is an
// eventsource.SnapshotDeleter.
func ExampleRunSnapshots() {
	_ = func(t *testing.T) { // in a _test.go file: func TestSnapshots(t *testing.T) { ... }
		storetest.RunSnapshots(t, func(t *testing.T) eventsource.SnapshotStore {
			return &eventsource.MemorySnapshots{}
		})
	}
}
