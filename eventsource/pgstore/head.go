package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/pgschema"
	"github.com/otelpatterns/patterns/internal/projlag"
)

var (
	_ eventsource.HeadReader   = (*Store)(nil)
	_ eventsource.EventCounter = (*Store)(nil)
)

// Head implements [eventsource.HeadReader]: it returns the position of
// the last event that readers may read (below those that a transaction
// still running holds back; see "The global order" in the package
// documentation), read from the primary key's index.
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

// CountAfter implements [eventsource.EventCounter]: it counts the events
// that [Store.ReadAll] would read after afterPosition now, limit at most,
// with one query that scans the primary key's index from afterPosition
// and stops after limit rows. Positions have gaps (see "The global
// order" in the package documentation), so the head less a position
// counts positions, not events: the projection lag gauges of packages
// cqrs and cqrs/pgcheckpoint count with this instead.
//
// Like [Store.Head], it has a span except when those gauges call it.
func (s *Store) CountAfter(ctx context.Context, afterPosition, limit int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	var n int64
	var err error
	if projlag.Refreshing(ctx) {
		start := time.Now()
		err = s.pool.QueryRow(ctx, s.sql.countAfter, max(afterPosition, 0), limit).Scan(&n)
		s.tel.Record(ctx, opCount, start, err)
	} else {
		ctx, span, start := s.tel.Start(ctx, opCount)
		err = s.pool.QueryRow(ctx, s.sql.countAfter, max(afterPosition, 0), limit).Scan(&n)
		s.tel.End(ctx, span, opCount, start, err)
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: counting the events after position %d: %w", afterPosition, pgschema.Err(ctx, err))
	}
	return n, nil
}

// AwaitVisible waits until readers ([Store.ReadAll], [Store.Subscribe],
// [Store.Head]) can read every event committed before the call: until
// every transaction of the server with a lower id than the last one
// to end before the call has ended (see "The global order" in the
// package documentation). A transaction running at the call that took
// its id after that one may still be running when it returns. A reader
// that must see its own appends, a test say, calls it between the
// append and the read. It polls, every millisecond at first and every
// 50 milliseconds at most, until ctx is done; a transaction that does not
// end keeps it waiting. Its queries record no telemetry.
func (s *Store) AwaitVisible(ctx context.Context) error {
	var next int64
	err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&next)
	wait := time.Millisecond
	for err == nil {
		var visible bool
		if err = s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint >= $1`, next).Scan(&visible); err != nil || visible {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			err = ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("pgstore: awaiting visible events: %w", pgschema.Err(ctx, err))
	}
	return nil
}
