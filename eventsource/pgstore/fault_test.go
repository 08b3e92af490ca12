package pgstore_test

import (
	"context"
	"crypto/rand"
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

// TestSlowUploadIsNotKilled appends 200 KB through a link of 100 KB/s,
// with an idle timeout of 300 ms: the upload takes two seconds, which
// the server's idle_in_transaction_session_timeout used to cut short
// (always, past 5 s with the hard-coded limit), and another append to the
// schema must not wait for it (issue 12 item 4).
func TestSlowUploadIsNotKilled(t *testing.T) {
	t.Parallel()
	proxy, pool := proxied(t, 2)
	schema := schemaName(t)
	ctx := testenv.Context(t, 20*time.Second)
	direct := newStoreIn(t, testenv.PostgresPool(t, 2), schema)
	require.NoError(t, direct.Migrate(ctx))
	s := newStoreIn(t, pool, schema, pgstore.WithAppendIdleTimeout(300*time.Millisecond))
	_, err := s.Append(ctx, "warm", eventsource.NoStream, events(1, "test.v1")...) // connected, statements prepared
	require.NoError(t, err)

	data := make([]byte, 200<<10)
	_, _ = rand.Read(data)
	proxy.Bandwidth(faultproxy.Upstream, 100)
	type result struct {
		events []eventsource.Event
		err    error
		took   time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		got, err := s.Append(ctx, "slow", eventsource.NoStream, eventsource.NewEvent{Type: "test.v1", Data: data})
		done <- result{got, err, time.Since(start)}
	}()

	time.Sleep(500 * time.Millisecond) // the upload is under way
	fast := time.Now()
	_, err = direct.Append(ctx, "fast", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err)
	assert.Less(t, time.Since(fast), time.Second, "an append waited for the slow upload")

	r := <-done
	require.NoError(t, r.err, "the slow append, after %v", r.took)
	t.Logf("the slow append took %v", r.took)
	assert.Greater(t, r.took, time.Second, "the upload was not slowed down")
	stored := collect(t, direct.ReadStream(ctx, "slow", 1))
	require.Len(t, stored, 1)
	assert.Equal(t, data, stored[0].Data)
}
