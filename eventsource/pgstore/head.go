package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/pgschema"
)

var _ eventsource.HeadReader = (*Store)(nil)

// Head implements [eventsource.HeadReader]: it returns the position of
// the last committed event, read from the end of the primary key's index.
func (s *Store) Head(ctx context.Context) (int64, error) {
	var head int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(position), 0) FROM "+pgx.Identifier{s.schema, "events"}.Sanitize()).Scan(&head)
	if err != nil {
		return 0, fmt.Errorf("pgstore: head: %w", pgschema.Err(ctx, err))
	}
	return head, nil
}
