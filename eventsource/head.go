package eventsource

import "context"

// HeadReader is implemented by stores that can tell how far their global
// order reaches, so that readers can report how far behind they are (the
// lag metrics of cqrs projections). [MemoryStore] and
// [github.com/otelpatterns/patterns/eventsource/pgstore] implement it.
type HeadReader interface {
	// Head returns the position of the last committed event, or 0 if the
	// store holds none. A reader whose last handled position is p is
	// Head - p events behind.
	Head(ctx context.Context) (int64, error)
}

var _ HeadReader = (*MemoryStore)(nil)

// Head implements [HeadReader].
func (m *MemoryStore) Head(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.events)), nil
}
