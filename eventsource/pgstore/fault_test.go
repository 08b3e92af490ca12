package pgstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
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

// TestWriterAndSubscriberThroughFaults runs a writer and a subscriber
// through one proxy while it cuts every connection, resets them, adds
// latency and drops the server's answers, for about three seconds. The
// writer retries each append, with the same IDs, until it is
// acknowledged. Then every event the store holds (the acknowledged ones
// and those whose acknowledgement was lost) must have reached the
// subscriber exactly once, in position order, each stream in consecutive
// versions: the scenario of issue 12 that found the stalled subscription.
func TestWriterAndSubscriberThroughFaults(t *testing.T) {
	t.Parallel()
	proxy, pool := proxied(t, 4)
	schema := schemaName(t)
	ctx := testenv.Context(t, 30*time.Second)
	direct := newStoreIn(t, testenv.PostgresPool(t, 2), schema)
	require.NoError(t, direct.Migrate(ctx))
	s := newStoreIn(t, pool, schema, pgstore.WithPollInterval(50*time.Millisecond),
		pgstore.WithSubscriptionTimeout(400*time.Millisecond), pgstore.WithAppendIdleTimeout(time.Second))
	f := follow(t, s, 0)
	// Take the subscriber's events as they come, so that it never waits
	// for the test.
	var mu sync.Mutex
	var got []eventsource.Event
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for e := range f.events {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		}
	}()
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}

	// The writer: batches of 1 to 3 events to 4 streams, each retried
	// with its IDs until acknowledged.
	stop := make(chan struct{})
	var acked []uuid.UUID
	tried := map[uuid.UUID]bool{}
	var attempts, failures, lostAcks int
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			batch := events(1+i%3, "test.v1")
			for j := range batch {
				batch[j].ID = uuid.New()
				tried[batch[j].ID] = true
			}
			stream := fmt.Sprintf("s%d", i%4)
			for retry := false; ; retry = true {
				attempts++
				actx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				began := time.Now()
				stored, err := s.Append(actx, stream, eventsource.Any, batch...)
				cancel()
				if err == nil {
					if retry && stored[0].RecordedAt.Before(began) {
						lostAcks++ // an earlier attempt had stored them
					}
					for _, e := range batch {
						acked = append(acked, e.ID)
					}
					break
				}
				failures++
				select {
				case <-stop: // unacknowledged: it may or may not be stored
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}()

	// The faults, one after another, with healthy spells between them.
	faults := []struct {
		name string
		on   func() func()
	}{
		{"cut", func() func() { proxy.Cut(); return proxy.Restore }},
		{"reset", func() func() { return proxy.ResetPeer(faultproxy.Downstream, 0).Remove }},
		{"latency", func() func() { return proxy.Latency(faultproxy.Downstream, 100*time.Millisecond).Remove }},
		{"upstream reset", func() func() { return proxy.ResetPeer(faultproxy.Upstream, 0).Remove }},
		{"cut", func() func() { proxy.Cut(); return proxy.Restore }},
	}
	for _, fault := range faults {
		time.Sleep(200 * time.Millisecond)
		off := fault.on()
		time.Sleep(300 * time.Millisecond)
		off()
	}
	// A blackhole keeps the connections open; removing it closes them,
	// which would hide a subscription stalled behind it: the subscriber
	// must report it while it lasts.
	time.Sleep(200 * time.Millisecond)
	for len(f.errs) > 0 {
		<-f.errs
	}
	hole := proxy.Blackhole(faultproxy.Downstream)
	select {
	case err := <-f.errs:
		t.Logf("behind the blackhole: %v", err)
	case <-time.After(1500 * time.Millisecond):
		t.Error("the subscriber reported nothing for 1.5s behind a blackhole")
	}
	hole.Remove()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-writerDone
	t.Logf("%d events acknowledged, %d of %d attempts failed, %d retries found their events stored", len(acked), failures, attempts, lostAcks)
	require.NotEmpty(t, acked)
	require.Positive(t, failures, "the faults failed no append")

	// What the store holds, read directly; the subscriber must catch up
	// with it.
	want := readVisible(t, ctx, direct, 0)
	deadline := time.Now().Add(10 * time.Second)
	for delivered() < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // for anything more
	f.stop()
	close(f.events)
	<-collected
	require.Len(t, got, len(want), "the subscriber delivered %d events; the store holds %d", len(got), len(want))

	times := map[uuid.UUID]int{}
	version := map[string]int64{}
	for i, e := range got {
		assert.Equal(t, want[i].ID, e.ID, "event %d", i)
		times[e.ID]++
		if i > 0 {
			assert.Greater(t, e.Position, got[i-1].Position, "positions out of order at event %d", i)
		}
		assert.Equal(t, version[e.StreamID]+1, e.Version, "stream %s: a version skipped or repeated", e.StreamID)
		version[e.StreamID] = e.Version
		assert.True(t, tried[e.ID], "an event the writer never appended: %v", e.ID)
	}
	for id, n := range times {
		assert.Equal(t, 1, n, "event %v delivered %d times", id, n)
	}
	for _, id := range acked {
		assert.Equal(t, 1, times[id], "acknowledged event %v delivered %d times", id, times[id])
	}
	t.Logf("%d events stored whose append was not acknowledged", len(got)-len(acked))
}
