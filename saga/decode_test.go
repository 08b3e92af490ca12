package saga_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// plainOrder is data of a plain type (no pointer, slice or map), which
// the orchestrator decodes once per change and hands out as copies.
type plainOrder struct {
	ID    string
	Lines [2]int
	At    time.Time
}

// sharedOrder is data holding a slice and a map, which the orchestrator
// decodes for every attempt.
type sharedOrder struct {
	ID    string
	Lines []int
	Tags  map[string]string
}

// TestAttemptsGetTheirOwnData checks that each attempt of a step, and
// each step, gets the data as it was, whatever an earlier attempt did to
// its copy: for plain data (copies of a cached value) and data with a
// slice and a map (decoded anew); and that an update reaches the next
// step and no other attempt.
func TestAttemptsGetTheirOwnData(t *testing.T) {
	fast := retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(retry.Constant(time.Millisecond)))
	at := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	t.Run("plain", func(t *testing.T) {
		var mu sync.Mutex
		var seen []plainOrder
		tries := 0
		def, err := saga.Define("plain", 1,
			saga.Step[plainOrder]{Name: "a", Retry: fast, Compensate: func(context.Context, plainOrder) error { return nil },
				Action: func(_ context.Context, o plainOrder) (func(*plainOrder), error) {
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, o)
					o.ID, o.Lines[0], o.At = "changed", 99, time.Time{} // the attempt's own copy
					if tries++; tries == 1 {
						return nil, errors.New("transient")
					}
					return func(o *plainOrder) { o.Lines[1] = 7 }, nil
				}},
			saga.Step[plainOrder]{Name: "b", Compensate: func(context.Context, plainOrder) error { return nil },
				Action: func(_ context.Context, o plainOrder) (func(*plainOrder), error) {
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, o)
					return nil, nil
				}},
		)
		require.NoError(t, err)
		o := newOrchestrator(t, &saga.MemoryLog{})
		ctx := context.Background()
		id, err := o.Start(ctx, def, plainOrder{ID: "o-1", Lines: [2]int{1, 2}, At: at})
		require.NoError(t, err)
		st, err := o.Wait(ctx, id)
		require.NoError(t, err)
		require.Equal(t, saga.Completed, st)
		first := plainOrder{ID: "o-1", Lines: [2]int{1, 2}, At: at}
		updated := plainOrder{ID: "o-1", Lines: [2]int{1, 7}, At: at}
		require.Len(t, seen, 3)
		assert.True(t, seen[0].At.Equal(at) && seen[1].At.Equal(at) && seen[2].At.Equal(at), "times %v", seen)
		for i := range seen {
			seen[i].At = at
		}
		assert.Equal(t, []plainOrder{first, first, updated}, seen)
	})
	t.Run("shared", func(t *testing.T) {
		var mu sync.Mutex
		var seen []sharedOrder
		tries := 0
		def, err := saga.Define("shared", 1,
			saga.Step[sharedOrder]{Name: "a", Retry: fast, Compensate: func(context.Context, sharedOrder) error { return nil },
				Action: func(_ context.Context, o sharedOrder) (func(*sharedOrder), error) {
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, sharedOrder{o.ID, append([]int(nil), o.Lines...), copyMap(o.Tags)})
					o.Lines[0], o.Tags["k"] = 99, "changed" // shared with nothing
					if tries++; tries == 1 {
						return nil, errors.New("transient")
					}
					return func(o *sharedOrder) { o.Lines = append(o.Lines, 3) }, nil
				}},
			saga.Step[sharedOrder]{Name: "b", Compensate: func(context.Context, sharedOrder) error { return nil },
				Action: func(_ context.Context, o sharedOrder) (func(*sharedOrder), error) {
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, o)
					return nil, nil
				}},
		)
		require.NoError(t, err)
		o := newOrchestrator(t, &saga.MemoryLog{})
		ctx := context.Background()
		id, err := o.Start(ctx, def, sharedOrder{ID: "o-1", Lines: []int{1, 2}, Tags: map[string]string{"k": "v"}})
		require.NoError(t, err)
		st, err := o.Wait(ctx, id)
		require.NoError(t, err)
		require.Equal(t, saga.Completed, st)
		first := sharedOrder{ID: "o-1", Lines: []int{1, 2}, Tags: map[string]string{"k": "v"}}
		assert.Equal(t, []sharedOrder{first, first, {ID: "o-1", Lines: []int{1, 2, 3}, Tags: map[string]string{"k": "v"}}}, seen)
	})
}

func copyMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// countingCodec is JSON, counting its decodes.
type countingCodec struct {
	saga.JSON
	mu      sync.Mutex
	decodes int
}

func (c *countingCodec) Unmarshal(data []byte, v any) error {
	c.mu.Lock()
	c.decodes++
	c.mu.Unlock()
	return c.JSON.Unmarshal(data, v)
}

// TestDecodesPerChange checks that the data of a plain type is decoded
// once per change of it, not once per attempt: a saga of three steps, the
// first updating the data and failing once, decodes it twice (the data
// started with, and the data after the update), where it decoded it five
// times before (each attempt, and the update).
func TestDecodesPerChange(t *testing.T) {
	fast := retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(retry.Constant(time.Millisecond)))
	undo := func(context.Context, plainOrder) error { return nil }
	next := func(context.Context, plainOrder) (func(*plainOrder), error) { return nil, nil }
	tries := 0
	def, err := saga.Define("decodes", 1,
		saga.Step[plainOrder]{Name: "a", Retry: fast, Compensate: undo,
			Action: func(context.Context, plainOrder) (func(*plainOrder), error) {
				if tries++; tries == 1 {
					return nil, errors.New("transient")
				}
				return func(o *plainOrder) { o.Lines[0]++ }, nil
			}},
		saga.Step[plainOrder]{Name: "b", Action: next, Compensate: undo},
		saga.Step[plainOrder]{Name: "c", Action: next, Compensate: undo},
	)
	require.NoError(t, err)
	codec := &countingCodec{}
	o := newOrchestrator(t, &saga.MemoryLog{}, saga.WithCodec(codec))
	ctx := context.Background()
	id, err := o.Start(ctx, def, plainOrder{ID: "o-1"})
	require.NoError(t, err)
	st, err := o.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, saga.Completed, st)
	codec.mu.Lock()
	defer codec.mu.Unlock()
	assert.Equal(t, 2, codec.decodes, "decodes of plain data")
}
