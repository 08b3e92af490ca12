package eventsource_test

import (
	"testing"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventsource.Store { return &eventsource.MemoryStore{} })
}

func TestMemorySnapshotsConformance(t *testing.T) {
	storetest.RunSnapshots(t, func(t *testing.T) eventsource.SnapshotStore { return &eventsource.MemorySnapshots{} })
}
