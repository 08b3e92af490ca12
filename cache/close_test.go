package cache_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestCloseEndsLoadsWhoseCallersLeft: a caller with a cancellable context
// leaves its shared load when the context ends; that load used to be
// tracked by nothing, outlive Close (its context was cancelled only by the
// load timeout) and then block in ristretto's Wait on the closed L1.
// Close now cancels the loads in flight and waits for them.
func TestCloseEndsLoadsWhoseCallersLeft(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n = 200
	started := make(chan struct{}, n)
	c, err := cache.New[string](cache.WithStore(&cache.MemoryStore{}),
		cache.WithLoader(func(ctx context.Context, key string) (string, error) {
			started <- struct{}{}
			<-ctx.Done() // a slow source
			return "", ctx.Err()
		}))
	require.NoError(t, err)
	results := make(chan error, n)
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			_, err := c.Get(ctx, fmt.Sprint(i))
			results <- err
		}()
		<-started
		cancel()
	}
	for range n {
		assert.ErrorIs(t, <-results, context.Canceled)
	}
	require.NoError(t, c.Close())
}

// TestCloseWaitsForLoadsThatIgnoreCancellation: a loader that does not
// watch its context is waited for; what it returns is not written into
// the closed cache.
func TestCloseWaitsForLoadsThatIgnoreCancellation(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	started := make(chan struct{})
	release := make(chan struct{})
	c, err := cache.New[string](cache.WithLoader(func(context.Context, string) (string, error) {
		close(started)
		<-release
		return "v", nil
	}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "k")
		got <- err
	}()
	<-started
	cancel()
	assert.ErrorIs(t, <-got, context.Canceled)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	close(release)
	require.NoError(t, <-closed)
}

// TestCloseEndsBackgroundWork: L2 fills stuck on a store that does not
// answer, and refreshes stuck in a loader, end by the time Close returns.
func TestCloseEndsBackgroundWork(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	refreshing := make(chan struct{})
	var loads atomic.Int32
	c, err := cache.New[string](cache.WithStore(frozenStore{}), cache.WithLoadTimeout(time.Hour),
		cache.WithTTL(time.Hour), cache.WithRefreshAhead(0.000001), // every hit after the first µs refreshes
		cache.WithLoader(func(ctx context.Context, key string) (string, error) {
			if loads.Add(1) > 1 { // one load, then refreshes one at a time
				close(refreshing)
				<-ctx.Done()
				return "", ctx.Err()
			}
			return "v", nil
		}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // the L2 lookup gives up at 0.5s
	defer cancel()
	_, err = c.Get(ctx, "k") // a load, then an L2 fill that never ends
	require.NoError(t, err)
	for {
		_, err := c.Get(ctx, "k")
		require.NoError(t, err)
		select {
		case <-refreshing:
		default:
			time.Sleep(time.Millisecond) // until the entry is due for a refresh
			continue
		}
		break
	}
	require.NoError(t, c.Close())
}

// TestFlushAfterClose: Flush after Close used to return nil, where the
// documentation promises ErrClosed of every method.
func TestFlushAfterClose(t *testing.T) {
	for name, opts := range map[string][]cache.Option[string]{
		"write-behind": {cache.WithWriteBehind(func(context.Context, []cache.Write[string]) error { return nil })},
		"plain":        nil,
	} {
		t.Run(name, func(t *testing.T) {
			c, err := cache.New[string](opts...)
			require.NoError(t, err)
			require.NoError(t, c.Set(context.Background(), "k", "v"))
			require.NoError(t, c.Close())
			assert.ErrorIs(t, c.Flush(context.Background()), cache.ErrClosed)
		})
	}
}

// TestCloseWaitsForLookupsInFlight: a Get inside its L1 lookup when Close
// begins registers with nothing, so Close must not close ristretto under
// it (ristretto's Get could then send on a closed channel and panic):
// Close waits until the lookup has ended, while later Gets return
// ErrClosed.
func TestCloseWaitsForLookupsInFlight(t *testing.T) {
	ctx := context.Background()
	c, err := cache.New[string]()
	require.NoError(t, err, "New()")
	require.NoError(t, c.Set(ctx, "k", "v"), "Set()")
	held := struct{ lookup func(key string) bool }{cache.InLookup(c)}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close() = %v while a lookup was in flight; want it to wait for the lookup", err)
	case <-time.After(200 * time.Millisecond):
	}
	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrClosed, "Get() once Close() has begun")
	// Enough lookups to fill ristretto's buffers of reads, which it hands
	// to its policy over the channel its Close closes.
	for range 10_000 {
		require.True(t, held.lookup("k"), "lookup in flight during Close(): the key is gone")
	}
	held.lookup = nil
	select {
	case err := <-closed:
		require.NoError(t, err, "Close()")
	case <-time.After(10 * time.Second):
		t.Fatal("Close() still waiting 10s after the lookup ended")
	}
}

// TestCloseFromACleanup: a cache closed by a runtime.AddCleanup of the
// object that owns it runs Close on the runtime's cleanup goroutine (one
// of them, below GOMAXPROCS 8). Close's wait for the garbage collector
// used to wait for a cleanup too, which that goroutine could only run
// after Close returned: it never did, and no cleanup in the process ran
// again. It runs in a process of its own, with GOMAXPROCS 2, so that a
// hang stops no other test's cleanups.
func TestCloseFromACleanup(t *testing.T) {
	if !testenv.InOwnProcess(t, "GOMAXPROCS=2") {
		return
	}
	c, err := cache.New[string]()
	require.NoError(t, err, "New()")
	closed := make(chan error, 1)
	owner := &struct{ _ [64]byte }{}
	runtime.AddCleanup(owner, func(c *cache.Cache[string]) { closed <- c.Close() }, c)
	runtime.GC() // owner is not used after AddCleanup: unreachable
	select {
	case err := <-closed:
		require.NoError(t, err, "Close()")
	case <-time.After(10 * time.Second):
		t.Fatal("Close() from a cleanup still running 10s later")
	}
}
