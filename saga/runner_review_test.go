package saga_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/saga"
)

// TestCloseLosesNoRunHandedToARunner starts sagas from several
// goroutines, so that runs are handed to runners waiting after their
// last, while Close comes: once Close returns, every saga that Start
// wrote must have completed or have its lease released (claimable at
// once), never be left leased by a run that no runner executed.
func TestCloseLosesNoRunHandedToARunner(t *testing.T) {
	for round := range 20 {
		var j journal
		def, err := saga.Define("order", 1, step(&j, "pay", nil))
		require.NoError(t, err)
		log := &saga.MemoryLog{}
		o, err := saga.NewOrchestrator(log, saga.WithLease(time.Hour))
		require.NoError(t, err)
		ctx := ctxWithin(t, 10*time.Second)
		var mu sync.Mutex
		var ids []string
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					id, err := o.Start(ctx, def, order{ID: "o"})
					if err != nil {
						return // closed
					}
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		require.NoError(t, o.Close(ctx))
		wg.Wait()

		claimed, err := log.Claim(ctx, "other", []string{"order"}, time.Hour, len(ids)+1)
		require.NoError(t, err)
		var free []string
		for _, r := range claimed {
			free = append(free, r.ID)
		}
		for _, id := range ids {
			rec, _, err := log.Load(ctx, id)
			require.NoError(t, err)
			if !rec.Status.Final() {
				assert.True(t, slices.Contains(free, id), "round %d: saga %s is %s and still leased after Close", round, id, rec.Status)
			}
		}
	}
}
