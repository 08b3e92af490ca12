package rediscache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
)

// TestServerKilled kills the store's Redis: calls fail within their
// context's deadline instead of hanging, and once a new server listens on
// the same port the subscription is restored, reconnected is called, and
// invalidations flow again.
func TestServerKilled(t *testing.T) {
	srv := startServer(t)
	client := newClient(t, srv.addr())
	s := newServerStore(t, client)
	e := newEvents()
	subscribe(t, s, e)
	ctx := ctxWithin(t, 5*time.Second)

	require.NoError(t, s.Set(ctx, "k", []byte("v"), 0))
	require.NoError(t, s.Publish(ctx, "src", "before"))
	assert.Equal(t, "src before", e.next(t, 2*time.Second))

	srv.kill()

	const deadline = 500 * time.Millisecond
	// The check is that a call gives up at its context's deadline rather
	// than at go-redis's own timeouts (a 5s dial, retried): the slack is
	// wide so that a loaded machine's scheduling cannot fail it, and
	// still well short of what ignoring the deadline would take.
	const slack = 3 * time.Second
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, "k"); return err }},
		{"Set", func(ctx context.Context) error { return s.Set(ctx, "k", []byte("w"), time.Minute) }},
		{"Delete", func(ctx context.Context) error { return s.Delete(ctx, "k") }},
		{"Publish", func(ctx context.Context) error { return s.Publish(ctx, "src", "k") }},
	}
	for _, c := range calls {
		var err error
		within(t, deadline+slack, c.name+" with Redis down", func() {
			err = c.call(ctxWithin(t, deadline))
		})
		assert.Error(t, err, "%s with Redis down", c.name)
		assert.False(t, errors.Is(err, cache.ErrNotFound), "%s with Redis down = %v; want an error other than ErrNotFound", c.name, err)
	}
	select {
	case <-e.reconnected:
		t.Fatal("reconnected was called while Redis was down")
	default:
	}

	srv.start() // empty: it saves nothing
	e.waitReconnected(t, 5*time.Second)
	assert.Eventually(t, func() bool {
		return s.Publish(ctxWithin(t, time.Second), "src", "after") == nil
	}, 5*time.Second, 50*time.Millisecond, "Publish after Redis came back")
	assert.Equal(t, "src after", e.next(t, 2*time.Second))
	_, err := s.Get(ctx, "k")
	assert.ErrorIs(t, err, cache.ErrNotFound, "Get from the new, empty server")
	require.NoError(t, s.Set(ctx, "k", []byte("v2"), 0))
}

// TestServerFrozen stops the store's Redis without closing its
// connections, as a network partition would: with ContextTimeoutEnabled
// the context's deadline still bounds every call.
func TestServerFrozen(t *testing.T) {
	srv := startServer(t)
	client := newClient(t, srv.addr())
	s := newServerStore(t, client)
	ctx := ctxWithin(t, 5*time.Second)
	require.NoError(t, s.Set(ctx, "k", []byte("v"), 0))

	srv.freeze()
	const deadline = 300 * time.Millisecond
	var err error
	within(t, deadline+300*time.Millisecond, "Get from a frozen Redis", func() {
		_, err = s.Get(ctxWithin(t, deadline), "k")
	})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	within(t, deadline+300*time.Millisecond, "Set on a frozen Redis", func() {
		err = s.Set(ctxWithin(t, deadline), "k", []byte("w"), 0)
	})
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// The cache may call with no deadline at all: the store's timeout
	// bounds the call then.
	bounded := newServerStore(t, client, rediscache.WithTimeout(deadline))
	within(t, deadline+300*time.Millisecond, "Get from a frozen Redis without a deadline", func() {
		_, err = bounded.Get(context.Background(), "k")
	})
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	srv.thaw()
	// The Set failed, so Redis may hold an older value than the caller's
	// L1: the store misses the key until it has deleted it.
	_, err = s.Get(ctx, "k")
	assert.ErrorIs(t, err, cache.ErrNotFound, "Get of a key whose Set failed")
	assert.Eventually(t, func() bool {
		return errors.Is(client.Get(ctxWithin(t, time.Second), s.Prefix()+"k").Err(), redis.Nil)
	}, 5*time.Second, 20*time.Millisecond, "the store should delete the key whose Set failed once Redis answers")
	require.NoError(t, s.Close())
}

// TestSubscribeWhileDown checks that Subscribe fails, and promptly, when
// Redis is down, and that stop works on a subscription whose server died.
func TestSubscribeWhileDown(t *testing.T) {
	srv := startServer(t)
	client := newClient(t, srv.addr())
	s := newServerStore(t, client)
	e := newEvents()
	stop := subscribe(t, s, e)
	srv.kill()

	var err error
	within(t, 1500*time.Millisecond, "Subscribe with Redis down", func() {
		_, err = s.Subscribe(ctxWithin(t, time.Second), e.handle, e.reconnect)
	})
	assert.Error(t, err)
	within(t, time.Second, "stop with Redis down", stop)
}
