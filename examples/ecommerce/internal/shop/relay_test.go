package shop

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/cqrs"
)

// flakyCheckpoints fails the first saves, as a store that blinks would.
type flakyCheckpoints struct {
	cqrs.CheckpointStore
	failures atomic.Int64
}

func (f *flakyCheckpoints) SaveCheckpoint(ctx context.Context, name string, pos int64) error {
	if f.failures.Add(-1) >= 0 {
		return errors.New("checkpoint store out of reach")
	}
	return f.CheckpointStore.SaveCheckpoint(ctx, name, pos)
}

// A relay that fails (its store, bus or checkpoint store out of reach for
// a moment) returns, "run it again to resume": the order service resumes
// it rather than let the whole process, every service in it, shut down.
func TestRelayResumesAfterAFailure(t *testing.T) {
	flaky := &flakyCheckpoints{}
	flaky.failures.Store(2)
	s, stop := startedTuned(t, Config{}, func(s *Shop) {
		s.wrapCheckpoints = func(c cqrs.CheckpointStore) cqrs.CheckpointStore {
			flaky.CheckpointStore = c
			return flaky
		}
	})
	t.Cleanup(stop)
	code, out := placeOrder(t, s, "k-relay", "kim", Line{"MUG-1", 1})
	if code != http.StatusAccepted {
		t.Fatalf("POST /orders: %d %v", code, out)
	}
	orderEnds(t, s, out["order_id"].(string), "completed", 15*time.Second)
}
