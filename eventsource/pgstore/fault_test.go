package pgstore_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/faultproxy"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// proxied returns a fault-injecting proxy in front of the PostgreSQL
// server of the tests, and a pool of at most maxConns connections through
// it, both closed when the test ends (the pool first).
func proxied(t *testing.T, maxConns int32) (*faultproxy.Proxy, *pgxpool.Pool) {
	t.Helper()
	raw := testenv.PostgresURL(t)
	u, err := url.Parse(raw)
	require.NoError(t, err)
	proxy := faultproxy.New(t, u.Host)
	cfg, err := pgxpool.ParseConfig(proxy.URL(raw))
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return proxy, pool
}

// TestSubscribeDetectsBlackhole drops every answer of the server to a
// live subscription, whose connection stays open: the subscription must
// say so with an error within its poll interval and timeout, not stall
// in silence, and deliver what was appended meanwhile once the path
// works again (issue 12 item 3).
func TestSubscribeDetectsBlackhole(t *testing.T) {
	t.Parallel()
	proxy, pool := proxied(t, 4)
	schema := schemaName(t)
	ctx := testenv.Context(t, 20*time.Second)
	direct := newStoreIn(t, testenv.PostgresPool(t, 2), schema)
	require.NoError(t, direct.Migrate(ctx))
	const poll, timeout = 100 * time.Millisecond, 500 * time.Millisecond
	s := newStoreIn(t, pool, schema, pgstore.WithPollInterval(poll), pgstore.WithSubscriptionTimeout(timeout))
	listening := make(chan uint32, 10)
	pgstore.SetListening(s, func(pid uint32) { listening <- pid })

	f := follow(t, s, 0)
	first, err := direct.Append(ctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err)
	assert.Equal(t, first, f.next(t, 1, 5*time.Second))
	<-listening

	hole := proxy.Blackhole(faultproxy.Downstream)
	start := time.Now()
	more, err := direct.Append(ctx, "a", eventsource.Exact(1), events(2, "test.v1")...)
	require.NoError(t, err)
	select {
	case err := <-f.errs:
		took := time.Since(start)
		t.Logf("after %v: %v", took, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, took, poll+timeout+time.Second, "the dead path took too long to detect")
	case e := <-f.events:
		t.Fatalf("an event through a blackhole: %v", e)
	case <-time.After(3 * time.Second):
		t.Fatal("the subscription stalled without an error for 3s behind a blackhole")
	}
	hole.Remove()
	assert.Equal(t, more, f.next(t, 2, 5*time.Second), "the events appended while the path was dead")
	select {
	case <-listening: // listening again, on a new connection
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription did not listen again")
	}
	later, err := direct.Append(ctx, "a", eventsource.Exact(3), events(1, "test.v1")...)
	require.NoError(t, err)
	assert.Equal(t, later, f.next(t, 1, 5*time.Second))
}
