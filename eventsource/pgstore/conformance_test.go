package pgstore_test

import (
	"testing"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/eventsource/storetest"
)

// TestConformance runs the suite every eventsource.Store passes, each
// subtest against a schema of its own.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) eventsource.Store {
		s, _ := newStore(t, 8)
		return s
	})
}

// TestConformanceStaged runs the suite with every append uploading its
// events before it takes the lock, as appends larger than StageAbove do.
func TestConformanceStaged(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) eventsource.Store {
		s, _ := newStore(t, 8)
		pgstore.SetStageAbove(s, 0)
		return s
	})
}

// TestSnapshotConformance runs the suite every eventsource.SnapshotStore
// passes, each subtest against a schema of its own.
func TestSnapshotConformance(t *testing.T) {
	t.Parallel()
	storetest.RunSnapshots(t, func(t *testing.T) eventsource.SnapshotStore {
		s, _ := newStore(t, 8)
		return s
	})
}
