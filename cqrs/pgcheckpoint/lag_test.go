package pgcheckpoint_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// While Project runs, cqrs.projection.lag reports the events committed
// after its checkpoint; once it returns, the projection is not reported.
func TestProject_reportsLag(t *testing.T) {
	tel := telemetrytest.New(t)
	s, _, schema := newStore(t, pgcheckpoint.WithMeterProvider(tel.MeterProvider))
	events := &eventsource.MemoryStore{}
	appendEvents(t, events, []string{"s-1"}, 6)

	reached, release := make(chan struct{}), make(chan struct{})
	count := countHandler(schema)
	ctx, cancel := context.WithCancel(testenv.Context(t, 20*time.Second))
	done := make(chan error, 1)
	go func() {
		done <- s.Project(ctx, "lagging", events, func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
			if e.Position == 3 {
				close(reached)
				<-release
			}
			return count(ctx, tx, e)
		})
	}()
	<-reached
	lag := func() int64 {
		return tel.Int64(t, "cqrs.projection.lag", attribute.String("cqrs.projection", "lagging"))
	}
	assert.Equal(t, int64(4), lag(), "2 of 6 events handled")
	close(release)
	require.Eventually(t, func() bool { return lag() == 0 && tel.HasMetric(t, "cqrs.projection.lag") },
		10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.NotContains(t, tel.Describe(t, "cqrs.projection.lag"), "lagging")
}

// With pgstore, whose positions are made of transaction ids (gaps of
// 16384 and more between appends), cqrs.projection.lag still counts
// events: the head less the checkpoint would report positions.
func TestProject_reportsLagInEventsWithPgstore(t *testing.T) {
	tel := telemetrytest.New(t)
	s, pool, schema := newStore(t, pgcheckpoint.WithMeterProvider(tel.MeterProvider))
	ctx, cancel := context.WithCancel(testenv.Context(t, 30*time.Second))
	defer cancel()
	events, err := pgstore.New(pool, pgstore.WithSchema(schema))
	require.NoError(t, err)
	require.NoError(t, events.Migrate(ctx))
	appendEvents(t, events, []string{"s-1", "s-2"}, 3) // 6 appends, 6 transactions
	require.NoError(t, events.AwaitVisible(ctx))
	all := collectAll(t, ctx, events)
	require.Len(t, all, 6)
	require.Greater(t, all[5].Position-all[0].Position, int64(5*16384), "positions are sparse")

	reached, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free() // if the test fails first
	count := countHandler(schema)
	done := make(chan error, 1)
	go func() {
		done <- s.Project(ctx, "lagging", events, func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
			if e.Position == all[2].Position {
				close(reached)
				<-release
			}
			return count(ctx, tx, e)
		})
	}()
	<-reached
	lag := func() int64 {
		return tel.Int64(t, "cqrs.projection.lag", attribute.String("cqrs.projection", "lagging"))
	}
	// The gauge counts at every refresh (a second) once collected.
	require.Eventually(t, func() bool { return lag() == 4 }, 10*time.Second, 10*time.Millisecond,
		"2 of 6 events handled; the gauge reports %d", lag())
	free()
	require.Eventually(t, func() bool { return lag() == 0 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

// collectAll reads every event of store.
func collectAll(t testing.TB, ctx context.Context, store eventsource.Store) []eventsource.Event {
	t.Helper()
	var out []eventsource.Event
	for e, err := range store.ReadAll(ctx, 0) {
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}
