package pgcheckpoint_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// schemaName returns a schema name private to this test run, made of the
// test's name and a random suffix, dropped (with everything in it) when
// the test ends.
func schemaName(t testing.TB) string { return testenv.Schema(t, "pgcp_test_") }

// newStore returns a migrated store in a schema of the test's own, with a
// read-model table "counts" in that schema.
func newStore(t testing.TB, opts ...pgcheckpoint.Option) (*pgcheckpoint.Store, *pgxpool.Pool, string) {
	t.Helper()
	pool := testenv.PostgresPool(t, 0)
	schema := schemaName(t)
	s, err := pgcheckpoint.New(pool, append([]pgcheckpoint.Option{pgcheckpoint.WithSchema(schema)}, opts...)...)
	require.NoError(t, err)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx))
	createReadModel(t, ctx, pool, schema)
	return s, pool, schema
}

// createReadModel creates the read model of the tests: a counter per
// stream, so that an event applied twice shows as a wrong count.
func createReadModel(t testing.TB, ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, schema string) {
	t.Helper()
	_, err := db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()+
		".counts (stream_id text PRIMARY KEY, n bigint NOT NULL)")
	require.NoError(t, err)
}

// countHandler returns a handler that adds 1 to the stream's counter.
func countHandler(schema string) pgcheckpoint.Handler {
	q := "INSERT INTO " + pgx.Identifier{schema}.Sanitize() + `.counts AS c (stream_id, n) VALUES ($1, 1)
ON CONFLICT (stream_id) DO UPDATE SET n = c.n + 1`
	return func(ctx context.Context, tx pgx.Tx, e eventsource.Event) error {
		_, err := tx.Exec(ctx, q, e.StreamID)
		return err
	}
}

// counts returns the read model: the counter of each stream.
func counts(t testing.TB, pool *pgxpool.Pool, schema string) map[string]int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT stream_id, n FROM "+pgx.Identifier{schema}.Sanitize()+".counts")
	require.NoError(t, err)
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		require.NoError(t, rows.Scan(&id, &n))
		out[id] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// appendEvents appends perStream events to each of streams, interleaved
// (one to each stream in turn), and returns the position of the last.
func appendEvents(t testing.TB, store eventsource.Store, streams []string, perStream int) int64 {
	t.Helper()
	var last int64
	for i := range perStream {
		for _, id := range streams {
			evs, err := store.Append(context.Background(), id, eventsource.Any,
				eventsource.NewEvent{Type: "counted", Data: []byte(fmt.Sprint(i))})
			require.NoError(t, err)
			last = evs[0].Position
		}
	}
	return last
}

// wantCounts returns perStream for each of streams.
func wantCounts(streams []string, perStream int64) map[string]int64 {
	out := map[string]int64{}
	for _, id := range streams {
		out[id] = perStream
	}
	return out
}

// projectUntil runs s.Project in the background until the checkpoint of
// name reaches target, then stops it and returns what it returned.
func projectUntil(t testing.TB, s *pgcheckpoint.Store, name string, events eventsource.Store, handle pgcheckpoint.Handler, target int64) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Project(ctx, name, events, handle) }()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		case <-deadline:
			cancel()
			<-done
			t.Fatalf("projection %q did not reach position %d in 10s", name, target)
		case <-time.After(5 * time.Millisecond):
		}
		pos, err := s.LoadCheckpoint(context.Background(), name)
		require.NoError(t, err)
		if pos >= target {
			cancel()
			return <-done
		}
	}
}
