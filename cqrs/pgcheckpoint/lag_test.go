package pgcheckpoint_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
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
