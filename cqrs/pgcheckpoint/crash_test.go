package pgcheckpoint_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// The environment of the helper process.
const (
	envRole    = "PGCHECKPOINT_TEST_ROLE" // "project"
	envURL     = "PGCHECKPOINT_TEST_URL"
	envSchema  = "PGCHECKPOINT_TEST_SCHEMA" // of the events, checkpoints and read model
	envCrashAt = "PGCHECKPOINT_TEST_CRASH_AT"
	envPoint   = "PGCHECKPOINT_TEST_CRASH_POINT" // "handle" or "before-commit"
)

// crashPoints are where the helper stops, in the transaction of an event.
var crashPoints = []string{
	"handle",        // inside the handler, after its read-model write
	"before-commit", // after the handler and the checkpoint update
}

// TestHelperProcess is not a test: it is the child process of the crash
// tests, selected by PGCHECKPOINT_TEST_ROLE. It runs a projection and,
// at the event and point the parent chose, prints testenv.CrashMarker and waits
// to be killed.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(envRole) != "project" {
		t.Skip("the child process of the crash tests")
	}
	url, schema, point := os.Getenv(envURL), os.Getenv(envSchema), os.Getenv(envPoint)
	crashAt, err := strconv.ParseInt(os.Getenv(envCrashAt), 10, 64)
	require.NoError(t, err)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	events, err := pgstore.New(pool, pgstore.WithSchema(schema), pgstore.WithPollInterval(50*time.Millisecond))
	require.NoError(t, err)
	s, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema))
	require.NoError(t, err)

	stop := func() {
		fmt.Println(testenv.CrashMarker)
		time.Sleep(time.Minute) // until killed
		os.Exit(3)
	}
	pgcheckpoint.SetBeforeCommit(s, func(_ context.Context, e eventsource.Event) {
		if point == "before-commit" && e.Position == crashAt {
			stop()
		}
	})
	count := countHandler(schema)
	err = s.Project(ctx, "counts", events, func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
		if err := count(ctx, tx, e); err != nil {
			return err
		}
		if point == "handle" && e.Position == crashAt {
			stop()
		}
		return nil
	})
	t.Fatalf("Project() = %v before the crash point", err)
}

// TestProject_crash kills a projecting process at each crash point of an
// event's transaction and checks that a new run, on the same database,
// leaves every event applied exactly once.
func TestProject_crash(t *testing.T) {
	const perStream = 5
	for _, point := range crashPoints {
		for _, crashAt := range []int64{1, 8} {
			t.Run(fmt.Sprintf("%s/event %d", point, crashAt), func(t *testing.T) {
				t.Parallel()
				pool := testenv.PostgresPool(t, 0)
				schema := schemaName(t)
				ctx := testenv.Context(t, 20*time.Second)
				events, err := pgstore.New(pool, pgstore.WithSchema(schema), pgstore.WithPollInterval(50*time.Millisecond))
				require.NoError(t, err)
				require.NoError(t, events.Migrate(ctx))
				s, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema))
				require.NoError(t, err)
				require.NoError(t, s.Migrate(ctx))
				createReadModel(t, ctx, pool, schema)
				last := appendEvents(t, events, streams, perStream)
				// Positions are made of transaction ids: the crash point is
				// the position of the crashAt-th event of the global order.
				require.NoError(t, events.AwaitVisible(ctx))
				var order []int64
				for e, err := range events.ReadAll(ctx, 0) {
					require.NoError(t, err)
					order = append(order, e.Position)
				}
				want := int64(0) // the checkpoint after the crash
				if crashAt > 1 {
					want = order[crashAt-2]
				}

				runUntilCrash(t, pool.Config().ConnString(), schema, point, order[crashAt-1])

				// The killed transaction is gone: neither its write nor its
				// checkpoint survived.
				pos, err := s.LoadCheckpoint(ctx, "counts")
				require.NoError(t, err)
				assert.Equal(t, want, pos, "checkpoint after the crash")
				var applied int64
				for _, n := range counts(t, pool, schema) {
					applied += n
				}
				assert.Equal(t, crashAt-1, applied, "events applied before the crash")

				require.NoError(t, projectUntil(t, s, "counts", events, countHandler(schema), last))
				assert.Equal(t, wantCounts(streams, perStream), counts(t, pool, schema), "counts after recovery")
			})
		}
	}
}

// runUntilCrash starts the helper process, waits until it reports that it
// is at its crash point, and kills it.
func runUntilCrash(t *testing.T, url, schema, point string, crashAt int64) {
	t.Helper()
	testenv.KillAtCrashPoint(t, "TestHelperProcess", []string{envRole + "=project", envURL + "=" + url,
		envSchema + "=" + schema, envPoint + "=" + point, envCrashAt + "=" + strconv.FormatInt(crashAt, 10)}, 15*time.Second)
}
