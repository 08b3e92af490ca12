package pgcheckpoint

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/nilcheck"
	"github.com/otelpatterns/patterns/internal/pgschema"
	"github.com/otelpatterns/patterns/internal/projlag"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Handler applies one event to a read model kept in the store's database,
// through tx, the transaction that also advances the projection's
// checkpoint. It must not commit or roll back tx. It may run again for the
// same event only if its earlier run was rolled back, so it need not be
// idempotent for writes made through tx; effects outside tx (an e-mail, a
// call to another service) are at least once.
type Handler func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error

// Project runs the projection called name: it loads its checkpoint,
// subscribes to the events of events after it and, for each event, runs
// one transaction in which handle writes the read model and the checkpoint
// moves to the event's position, then commits. A crash anywhere loses
// both the write and the checkpoint or keeps both, so every event has its
// effect on the read model exactly once.
//
// Project blocks until ctx is done, then returns nil; an event whose
// transaction was interrupted by the cancellation is rolled back and
// handled by the next run. It returns an error naming the projection and
// the event's position when handle fails or the database or event store
// does; the failed event's transaction is rolled back, so run Project
// again to retry it.
//
// Each transaction locks the projection's checkpoint row first, so
// several Project calls for one name (in one process or several) never
// apply an event twice: one handles it and the others skip it. If the
// checkpoint changes under a running Project (another runner moved it on,
// or [Store.Rebuild] reset it), Project resubscribes from the stored
// position.
//
// Project holds one connection of the pool for each event's transaction;
// if events is a pgstore.Store on the same pool, its subscription holds
// another for as long as Project runs.
//
// Each handled event has a span "project <name>" linked to the span of the
// append that recorded it; handle's ctx carries the span.
func (s *Store) Project(ctx context.Context, name string, events eventsource.Store, handle Handler) error {
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("empty projection name"))
	}
	if nilcheck.IsNil(events) {
		errs = append(errs, errors.New("nil event store"))
	}
	if handle == nil {
		errs = append(errs, errors.New("nil handler"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pgcheckpoint: Project: %w", err)
	}
	if err := s.ensure(ctx, name); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("pgcheckpoint: projection %s: creating the checkpoint: %w", brief.Quote(name), pgschema.Err(ctx, err))
	}
	attrName := AttrProjection.String(brief.String(name))
	gauge := projlag.New(s.meter, events, 0)
	defer gauge.Close()
	var lag *projlag.Position
	defer func() {
		if lag != nil {
			gauge.Untrack(name, lag)
		}
	}()
	for {
		pos, err := s.LoadCheckpoint(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("pgcheckpoint: projection %s: %w", brief.Quote(name), err)
		}
		if lag == nil {
			lag = gauge.Track(ctx, name, pos)
		}
		lag.Store(pos)
		moved, err := s.follow(ctx, name, attrName, pos, lag, events, handle)
		if err != nil || ctx.Err() != nil {
			return err
		}
		if !moved {
			return nil // the subscription ends only when ctx is done
		}
	}
}

// follow applies the events after pos until ctx is done, an error, or
// the checkpoint is found moved: by apply, at an event, or, while no event
// comes, by watch. It reports whether it was moved.
func (s *Store) follow(ctx context.Context, name string, attrName attribute.KeyValue, pos int64, lag *projlag.Position,
	events eventsource.Store, handle Handler) (moved bool, err error) {
	subCtx, stop := context.WithCancel(ctx)
	var reset atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		if s.watchReset(subCtx, name, lag) {
			reset.Store(true)
			stop()
		}
	})
	defer func() {
		stop()
		wg.Wait()
		moved = moved || reset.Load()
	}()
	for e, err := range events.Subscribe(subCtx, pos) {
		if err != nil {
			if subCtx.Err() != nil {
				return false, nil
			}
			return false, fmt.Errorf("pgcheckpoint: projection %s: reading events after %d: %w", brief.Quote(name), pos, err)
		}
		// The event's transaction runs on ctx: a reset found meanwhile
		// ends the subscription after it, not in the middle of it.
		moved, err := s.apply(ctx, name, attrName, pos, e, handle)
		if err != nil {
			if ctx.Err() != nil {
				return false, nil
			}
			return false, err
		}
		if moved {
			return true, nil
		}
		pos = e.Position
		lag.Store(pos)
	}
	return false, nil
}

// watchReset waits, while a Project follows its subscription, for its
// checkpoint to go back behind the position it handled (a Rebuild reset
// it): woken at once by a Rebuild through s, and every check interval for
// one elsewhere. It reports whether it found a reset; it returns false
// when ctx is done.
func (s *Store) watchReset(ctx context.Context, name string, handled *projlag.Position) bool {
	var tick <-chan time.Time
	if s.watch > 0 {
		t := time.NewTicker(s.watch)
		defer t.Stop()
		tick = t.C
	}
	// The checks run on no one's behalf: durations, no spans.
	qctx := telemetry.Untraced(ctx)
	for {
		s.mu.Lock()
		rebuilt := s.rebuilds
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-rebuilt:
		case <-tick:
		}
		// A checkpoint only moves forward, but for a Rebuild: one behind
		// what this Project handled was reset.
		if stored, err := s.LoadCheckpoint(qctx, name); err == nil && stored < handled.Load() {
			return true
		}
	}
}

// ensure creates the checkpoint of name at 0 unless it exists.
func (s *Store) ensure(ctx context.Context, name string) error {
	ctx, span, start := s.tel.Start(ctx, opEnsure)
	_, err := s.pool.Exec(ctx, s.sql.ensure, name)
	s.tel.End(ctx, span, opEnsure, start, err)
	return err
}

// apply handles e in one transaction with the move of the checkpoint from
// pos to e's position. It reports moved, without handling e, if the
// stored checkpoint is not pos.
//
// The event's span, linked to the append's, starts first, so that the
// transaction's queries are its children: lock_checkpoint (the BEGIN and
// the lock of the checkpoint's row), the handler's, save_checkpoint and
// commit.
func (s *Store) apply(ctx context.Context, name string, attrName attribute.KeyValue, pos int64, e eventsource.Event, handle Handler) (moved bool, err error) {
	link := trace.LinkFromContext(eventsource.TraceContext(ctx, e))
	ctx, span := s.tel.Tracer.Start(ctx, "project "+brief.String(name), trace.WithLinks(link),
		trace.WithAttributes(attrName, AttrPosition.Int64(e.Position)))
	defer func() {
		telemetry.RecordError(span, err)
		span.End()
	}()
	tx, stored, err := s.lock(ctx, name)
	if err != nil {
		return false, fmt.Errorf("pgcheckpoint: projection %s: event %d: locking the checkpoint: %w", brief.Quote(name), e.Position, pgschema.Err(ctx, err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // after the commit, a no-op
	if stored != pos {
		telemetry.AddEvent(ctx, eventCheckpointMoved, func() []attribute.KeyValue {
			return []attribute.KeyValue{AttrPosition.Int64(stored)}
		})
		return true, nil
	}
	if err := handle(ctx, tx, e); err != nil {
		return false, fmt.Errorf("pgcheckpoint: projection %s: event %d (%s): %w", brief.Quote(name), e.Position, brief.String(e.Type), err)
	}
	sctx, sspan, start := s.tel.Start(ctx, opSave)
	_, err = tx.Exec(sctx, s.sql.save, name, e.Position)
	s.tel.End(sctx, sspan, opSave, start, err)
	if err != nil {
		return false, fmt.Errorf("pgcheckpoint: projection %s: event %d: saving the checkpoint: %w", brief.Quote(name), e.Position, pgschema.Err(ctx, err))
	}
	if s.beforeCommit != nil {
		s.beforeCommit(ctx, e)
	}
	cctx, cspan, start := s.tel.Start(ctx, opCommit)
	err = tx.Commit(cctx)
	s.tel.End(cctx, cspan, opCommit, start, err)
	if err != nil {
		return false, fmt.Errorf("pgcheckpoint: projection %s: event %d: committing: %w", brief.Quote(name), e.Position, pgschema.Err(ctx, err))
	}
	return false, nil
}

// eventCheckpointMoved is the event of a project span whose event another
// run of the projection handled, or whose checkpoint a Rebuild reset.
const eventCheckpointMoved = "pgcheckpoint.checkpoint_moved"

// lock begins a transaction and locks the checkpoint of name in it,
// returning its position (0 if there is none).
func (s *Store) lock(ctx context.Context, name string) (pgx.Tx, int64, error) {
	ctx, span, start := s.tel.Start(ctx, opLock)
	tx, err := s.pool.Begin(ctx)
	var stored int64
	if err == nil {
		err = tx.QueryRow(ctx, s.sql.lock, name).Scan(&stored)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}
	s.tel.End(ctx, span, opLock, start, err)
	if err != nil {
		return nil, 0, err
	}
	return tx, stored, nil
}

// Rebuild empties the read model of the projection called name and resets
// its checkpoint to 0, in one transaction: reset runs in tx (deleting or
// truncating the read model's tables), then the checkpoint is set to 0,
// then the transaction commits; so either both happen or neither.
//
// Rebuild waits for the event a running [Store.Project] of name is
// handling, and that Project then starts again from the first event, at
// once (in another process, within its [WithCheckInterval]); so the
// projection need not be stopped. It returns an error naming the
// projection if reset or the database fails.
func (s *Store) Rebuild(ctx context.Context, name string, reset func(ctx context.Context, tx pgx.Tx) error) error {
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("empty projection name"))
	}
	if reset == nil {
		errs = append(errs, errors.New("nil reset function"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pgcheckpoint: Rebuild %s: %w", brief.Quote(name), err)
	}
	ctx, span, start := s.tel.Start(ctx, opRebuild)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.sql.ensure, name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.sql.lock, name); err != nil {
			return err
		}
		if err := reset(ctx, tx); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
		_, err := tx.Exec(ctx, s.sql.save, name, 0)
		return err
	})
	s.tel.End(ctx, span, opRebuild, start, err)
	if err != nil {
		return fmt.Errorf("pgcheckpoint: rebuilding projection %s: %w", brief.Quote(name), pgschema.Err(ctx, err))
	}
	s.mu.Lock()
	close(s.rebuilds) // wake this store's Project calls
	s.rebuilds = make(chan struct{})
	s.mu.Unlock()
	return nil
}
