package eventsource

import "context"

// HeadReader is implemented by stores that can tell how far their global
// order reaches, so that readers can report how far behind they are (the
// lag metrics of cqrs projections). [MemoryStore] and
// [github.com/otelpatterns/patterns/eventsource/pgstore] implement it.
type HeadReader interface {
	// Head returns the position of the last committed event, or 0 if the
	// store holds none. In a store whose positions are 1, 2, 3, … (the
	// memory store), a reader whose last handled position is p is
	// Head - p events behind; a store whose positions have gaps (pgstore's
	// are made of transaction ids) is an [EventCounter] too, which says
	// how many.
	Head(ctx context.Context) (int64, error)
}

// EventCounter is implemented by stores that can count the events after a
// position cheaply: those whose positions are not counts of events
// ([github.com/otelpatterns/patterns/eventsource/pgstore]'s have gaps), so
// that lag metrics (the cqrs projection lag gauge) count events, not
// positions. A store whose positions are 1, 2, 3, … ([MemoryStore]) need
// not implement it: the head less a position counts the events after it.
type EventCounter interface {
	// CountAfter returns how many events [Store.ReadAll] would yield now
	// after afterPosition, counting no further than limit: the result is
	// min(that number, limit), and 0 if limit is not positive. It costs
	// at most limit steps, however many events follow.
	CountAfter(ctx context.Context, afterPosition, limit int64) (int64, error)
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
