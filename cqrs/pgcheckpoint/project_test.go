package pgcheckpoint_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

var streams = []string{"s-1", "s-2", "s-3"}

func TestProject_appliesEachEventOnceAndResumes(t *testing.T) {
	s, pool, schema := newStore(t)
	events := &eventsource.MemoryStore{}
	last := appendEvents(t, events, streams, 4)

	var calls atomic.Int64
	count := countHandler(schema)
	handle := func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
		calls.Add(1)
		return count(ctx, tx, e)
	}
	require.NoError(t, projectUntil(t, s, "counts", events, handle, last))
	assert.Equal(t, wantCounts(streams, 4), counts(t, pool, schema), "counts after the first run")
	assert.Equal(t, last, calls.Load(), "handler calls after the first run")

	// A restart handles only the events appended since.
	last = appendEvents(t, events, streams, 2)
	require.NoError(t, projectUntil(t, s, "counts", events, handle, last))
	assert.Equal(t, wantCounts(streams, 6), counts(t, pool, schema), "counts after the restart")
	assert.Equal(t, last, calls.Load(), "handler calls after the restart")
	pos, err := s.LoadCheckpoint(context.Background(), "counts")
	require.NoError(t, err)
	assert.Equal(t, last, pos, "checkpoint")
}

func TestProject_followsLiveEvents(t *testing.T) {
	s, pool, schema := newStore(t)
	events := &eventsource.MemoryStore{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Project(ctx, "live", events, countHandler(schema)) }()
	last := appendEvents(t, events, streams, 3)
	require.Eventually(t, func() bool {
		pos, err := s.LoadCheckpoint(context.Background(), "live")
		return err == nil && pos == last
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done, "Project() after cancel")
	assert.Equal(t, wantCounts(streams, 3), counts(t, pool, schema))
}

func TestProject_handlerErrorRollsBackTheEvent(t *testing.T) {
	s, pool, schema := newStore(t)
	events := &eventsource.MemoryStore{}
	last := appendEvents(t, events, streams, 2) // positions 1..6
	boom := errors.New("boom")
	count := countHandler(schema)
	failAt := int64(4)
	handle := func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
		if err := count(ctx, tx, e); err != nil {
			return err
		}
		if e.Position == failAt {
			return boom // after the write: it must be rolled back
		}
		return nil
	}
	err := s.Project(testenv.Context(t, 10*time.Second), "failing", events, handle)
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), `projection "failing"`)
	assert.Contains(t, err.Error(), "event 4")
	pos, lerr := s.LoadCheckpoint(context.Background(), "failing")
	require.NoError(t, lerr)
	assert.Equal(t, failAt-1, pos, "checkpoint after the failure")
	assert.Equal(t, map[string]int64{"s-1": 1, "s-2": 1, "s-3": 1}, counts(t, pool, schema), "counts after the failure")

	failAt = -1
	require.NoError(t, projectUntil(t, s, "failing", events, handle, last))
	assert.Equal(t, wantCounts(streams, 2), counts(t, pool, schema), "counts after the retry")
}

func TestProject_twoRunnersApplyEachEventOnce(t *testing.T) {
	s, pool, schema := newStore(t)
	events := &eventsource.MemoryStore{}
	last := appendEvents(t, events, streams, 10)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = projectUntil(t, s, "shared", events, countHandler(schema), last) })
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "runner %d", i)
	}
	assert.Equal(t, wantCounts(streams, 10), counts(t, pool, schema))
}

func TestProject_rejectsBadArguments(t *testing.T) {
	s, _, _ := newStore(t)
	err := s.Project(context.Background(), "", nil, nil)
	require.Error(t, err)
	for _, w := range []string{"empty projection name", "nil event store", "nil handler"} {
		assert.Contains(t, err.Error(), w)
	}
}

func TestRebuild(t *testing.T) {
	s, pool, schema := newStore(t)
	events := &eventsource.MemoryStore{}
	last := appendEvents(t, events, streams, 3)
	require.NoError(t, projectUntil(t, s, "counts", events, countHandler(schema), last))
	truncate := func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "TRUNCATE "+pgx.Identifier{schema}.Sanitize()+".counts")
		return err
	}

	t.Run("reset fails: nothing changes", func(t *testing.T) {
		boom := errors.New("boom")
		err := s.Rebuild(context.Background(), "counts", func(ctx context.Context, tx pgx.Tx) error {
			if err := truncate(ctx, tx); err != nil {
				return err
			}
			return boom
		})
		require.ErrorIs(t, err, boom)
		assert.Contains(t, err.Error(), `projection "counts"`)
		assert.Equal(t, wantCounts(streams, 3), counts(t, pool, schema))
		pos, err := s.LoadCheckpoint(context.Background(), "counts")
		require.NoError(t, err)
		assert.Equal(t, last, pos)
	})

	t.Run("reset and replay", func(t *testing.T) {
		require.NoError(t, s.Rebuild(context.Background(), "counts", truncate))
		pos, err := s.LoadCheckpoint(context.Background(), "counts")
		require.NoError(t, err)
		assert.Zero(t, pos, "checkpoint after Rebuild")
		assert.Empty(t, counts(t, pool, schema), "read model after Rebuild")
		require.NoError(t, projectUntil(t, s, "counts", events, countHandler(schema), last))
		assert.Equal(t, wantCounts(streams, 3), counts(t, pool, schema), "counts after the replay")
	})

	t.Run("while projecting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Project(ctx, "counts", events, countHandler(schema)) }()
		require.NoError(t, s.Rebuild(context.Background(), "counts", truncate))
		more := appendEvents(t, events, streams, 1)
		require.Eventually(t, func() bool {
			pos, err := s.LoadCheckpoint(context.Background(), "counts")
			return err == nil && pos == more
		}, 10*time.Second, 5*time.Millisecond)
		cancel()
		require.NoError(t, <-done)
		assert.Equal(t, wantCounts(streams, 4), counts(t, pool, schema), "counts after a rebuild under a running projection")
	})
}

// Project's spans: one per handled event, named after the projection,
// with the projection and position, and Error status when handle fails.
func TestProject_spans(t *testing.T) {
	tel := telemetrytest.New(t)
	s, _, schema := newStore(t, pgcheckpoint.WithTracerProvider(tel.TracerProvider))
	events := &eventsource.MemoryStore{}
	appendEvents(t, events, []string{"s-1"}, 2)
	boom := errors.New("boom")
	count := countHandler(schema)
	err := s.Project(testenv.Context(t, 10*time.Second), "traced", events, func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
		if !trace.SpanFromContext(ctx).SpanContext().IsValid() {
			return errors.New("handler ctx carries no span")
		}
		if e.Position == 2 {
			return boom
		}
		return count(ctx, tx, e)
	})
	require.ErrorIs(t, err, boom)
	spans := tel.SpansNamed("project traced")
	require.Len(t, spans, 2)
	for i, sp := range spans {
		assert.Equal(t, "project traced", sp.Name())
		attrs := attribute.NewSet(sp.Attributes()...)
		v, _ := attrs.Value("cqrs.projection")
		assert.Equal(t, "traced", v.AsString())
		v, _ = attrs.Value("eventsource.position")
		assert.Equal(t, int64(i+1), v.AsInt64())
	}
	assert.Equal(t, codes.Unset, spans[0].Status().Code)
	assert.Equal(t, codes.Error, spans[1].Status().Code)
}

// TestRebuildReplaysAtOnce protects a Rebuild under a running Project when
// no event comes after it: the read model was left empty until the next
// append (the earlier test hid it by appending right after). Through the
// same Store the Project is woken at once; through another (another
// process) it finds the reset at its next check.
func TestRebuildReplaysAtOnce(t *testing.T) {
	for _, other := range []bool{false, true} {
		t.Run(map[bool]string{false: "same store", true: "another store"}[other], func(t *testing.T) {
			s, pool, schema := newStore(t, pgcheckpoint.WithCheckInterval(time.Hour))
			rebuilder := s
			if other {
				var err error
				s, err = pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema), pgcheckpoint.WithCheckInterval(100*time.Millisecond))
				require.NoError(t, err)
			}
			events := &eventsource.MemoryStore{}
			appendEvents(t, events, streams, 3)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Project(ctx, "counts", events, countHandler(schema)) }()
			require.Eventually(t, func() bool {
				return assert.ObjectsAreEqual(wantCounts(streams, 3), counts(t, pool, schema))
			}, 10*time.Second, 5*time.Millisecond)

			require.NoError(t, rebuilder.Rebuild(context.Background(), "counts", func(ctx context.Context, tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "TRUNCATE "+pgx.Identifier{schema}.Sanitize()+".counts")
				return err
			}))
			assert.Eventually(t, func() bool {
				return assert.ObjectsAreEqual(wantCounts(streams, 3), counts(t, pool, schema))
			}, 3*time.Second, 5*time.Millisecond, "the read model is replayed with no event appended")
			cancel()
			require.NoError(t, <-done)
			assert.Equal(t, wantCounts(streams, 3), counts(t, pool, schema), "each event applied once after the replay")
		})
	}
}
