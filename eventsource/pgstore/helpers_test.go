package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// schemaName returns a schema name private to this test run, made of the
// test's name and a random suffix, dropped (with everything in it) when
// the test ends.
func schemaName(t testing.TB) string { return testenv.Schema(t, "pgstore_test_") }

// newStore returns a migrated store in a schema of the test's own, on a
// pool of its own of maxConns connections.
func newStore(t testing.TB, maxConns int32, opts ...pgstore.Option) (*pgstore.Store, *pgxpool.Pool) {
	t.Helper()
	pool := testenv.PostgresPool(t, maxConns)
	s := newStoreIn(t, pool, schemaName(t), opts...)
	require.NoError(t, s.Migrate(testenv.Context(t, 10*time.Second)))
	return s, pool
}

// newStoreIn returns a store of schema on pool, not migrated.
func newStoreIn(t testing.TB, pool *pgxpool.Pool, schema string, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	s, err := pgstore.New(pool, append([]pgstore.Option{pgstore.WithSchema(schema)}, opts...)...)
	require.NoError(t, err)
	return s
}

// events returns n new events of type typ with numbered data.
func events(n int, typ string) []eventsource.NewEvent {
	out := make([]eventsource.NewEvent, n)
	for i := range out {
		out[i] = eventsource.NewEvent{Type: typ, Data: []byte{byte(i), byte(i >> 8)}}
	}
	return out
}

// collect reads seq to its end and returns the events, failing the test on
// an error.
func collect(t testing.TB, seq func(yield func(eventsource.Event, error) bool)) []eventsource.Event {
	t.Helper()
	var out []eventsource.Event
	for e, err := range seq {
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

// readVisible waits until s can read the events committed so far
// (AwaitVisible: other tests' transactions hold readers back) and reads
// all events after the position after.
func readVisible(t testing.TB, ctx context.Context, s *pgstore.Store, after int64) []eventsource.Event {
	t.Helper()
	require.NoError(t, s.AwaitVisible(ctx))
	return collect(t, s.ReadAll(ctx, after))
}
