package pgstore_test

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/eventsource/storetest"
)

// visibleStore is a store whose ReadAll and Subscribe first wait, with
// AwaitVisible, until the events committed before the call can be read.
// The suite reads right after its appends and expects to see them, while
// other tests' transactions, on the same server, hold readers back.
type visibleStore struct{ *pgstore.Store }

func (s visibleStore) ReadAll(ctx context.Context, after int64) iter.Seq2[eventsource.Event, error] {
	return func(yield func(eventsource.Event, error) bool) {
		if err := s.AwaitVisible(ctx); err != nil {
			yield(eventsource.Event{}, err)
			return
		}
		s.Store.ReadAll(ctx, after)(yield)
	}
}

func (s visibleStore) Subscribe(ctx context.Context, after int64) iter.Seq2[eventsource.Event, error] {
	return func(yield func(eventsource.Event, error) bool) {
		if err := s.AwaitVisible(ctx); err != nil && ctx.Err() == nil {
			yield(eventsource.Event{}, err)
			return
		}
		s.Store.Subscribe(ctx, after)(yield)
	}
}

// conformanceStore returns a migrated store for one subtest of the suite.
func conformanceStore(t *testing.T) *pgstore.Store {
	s, _ := newStore(t, 8, pgstore.WithPollInterval(20*time.Millisecond))
	return s
}

// TestConformance runs the suite every eventsource.Store passes, each
// subtest against a schema of its own.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) eventsource.Store {
		return visibleStore{conformanceStore(t)}
	})
}

// TestConformanceStaged runs the suite with every append uploading its
// events before it takes the lock, as appends larger than StageAbove do.
func TestConformanceStaged(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) eventsource.Store {
		s := conformanceStore(t)
		pgstore.SetStageAbove(s, 0)
		return visibleStore{s}
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
