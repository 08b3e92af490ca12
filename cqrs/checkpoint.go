package cqrs

import (
	"context"
	"sync"
)

// CheckpointStore keeps, per name, the global position of the last event a
// reader of the event store has handled, so that it resumes after it.
// Implementations are safe for concurrent use. Load returns 0 for a name
// with no checkpoint.
type CheckpointStore interface {
	LoadCheckpoint(ctx context.Context, name string) (int64, error)
	SaveCheckpoint(ctx context.Context, name string, position int64) error
}

// MemoryCheckpoints is an in-process [CheckpointStore]. The zero value is
// ready to use.
type MemoryCheckpoints struct {
	mu sync.Mutex
	m  map[string]int64
}

// LoadCheckpoint implements [CheckpointStore.LoadCheckpoint].
func (c *MemoryCheckpoints) LoadCheckpoint(ctx context.Context, name string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name], nil
}

// SaveCheckpoint implements [CheckpointStore.SaveCheckpoint].
func (c *MemoryCheckpoints) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[name] = position
	return nil
}
