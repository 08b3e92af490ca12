package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/pgschema"
	"github.com/otelpatterns/patterns/internal/projlag"
)

var _ eventsource.HeadReader = (*Store)(nil)

// Head implements [eventsource.HeadReader]: it returns the position of
// the last committed event, read from the end of the primary key's index.
//
// It has a span, except when the projection lag gauge of a cqrs.Runner or
// a pgcheckpoint projection calls it: the gauge reads the head every
// second, on no request's behalf, and a root span each time would be
// noise. Those reads are in db.client.operation.duration all the same.
func (s *Store) Head(ctx context.Context) (int64, error) {
	var head int64
	var err error
	if projlag.Refreshing(ctx) {
		start := time.Now()
		err = s.pool.QueryRow(ctx, s.sql.head).Scan(&head)
		s.tel.Record(ctx, opHead, start, err)
	} else {
		ctx, span, start := s.tel.Start(ctx, opHead)
		err = s.pool.QueryRow(ctx, s.sql.head).Scan(&head)
		s.tel.End(ctx, span, opHead, start, err)
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: head: %w", pgschema.Err(ctx, err))
	}
	return head, nil
}
