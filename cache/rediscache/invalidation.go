package rediscache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
)

// subscribeTimeout bounds the wait for Redis to confirm a new subscription
// when the store has no timeout (WithTimeout(0)) and the context of
// Subscribe no earlier deadline.
const subscribeTimeout = 10 * time.Second

// channelSize is the buffer between go-redis's reader and the goroutine
// calling the handler.
const channelSize = 256

// Publish announces, in one PUBLISH to the store's channel, that keys
// changed on behalf of source: every subscription, in this process or
// another, receives source and every key, whatever bytes they hold.
// Publish with no keys sends nothing. An error means the message may not
// have been sent; Redis pub/sub delivers at most once, to the subscribers
// connected at the time. The keys of a Publish that failed, or whose ctx
// was done before it started, are remembered as those of a failed
// [Store.Set] are, and announced again once Redis answers.
//
// The message is binary: the byte 0x01 (the format's version), then the
// source, the number of keys, and each key, every string preceded by its
// length in bytes and every number written as an unsigned varint
// (encoding/binary's AppendUvarint). A message with no keys, which
// Publish never sends, announces that every key may have changed: the
// store sends one after deleting every key under its prefix.
func (s *Store) Publish(ctx context.Context, source string, keys ...string) error {
	if err := ctx.Err(); err != nil {
		s.dirty.mark(keys...) // the other instances did not hear of them
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	err := s.publish(ctx, source, keys)
	if err != nil {
		s.dirty.mark(keys...)
	}
	return err
}

// publish sends the message announcing keys on behalf of source; with no
// keys, the announcement that every key may have changed.
func (s *Store) publish(ctx context.Context, source string, keys []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msg := encode(source, keys)
	err := s.do(ctx, opPublish, func(ctx context.Context) error {
		return s.client.Publish(ctx, s.channel, msg).Err()
	})
	if err != nil {
		return fmt.Errorf("rediscache: PUBLISH to %q: %w", s.channel, err)
	}
	return nil
}

// publishClear announces that every key may have changed.
func (s *Store) publishClear(ctx context.Context) error {
	return s.publish(ctx, s.repairSource, nil)
}

// Subscribe subscribes to the store's channel and calls handle for every
// key of every message published there, its own included, from one
// goroutine and one call at a time, until stop is called. Messages that
// were not published by a Store (or come from a newer format) are ignored
// and counted in the rediscache.messages metric. A panic in handle or
// reconnected is recovered, counted and reported to otel.Handle, and the
// subscription goes on.
//
// Subscribe returns once Redis has confirmed the subscription, so a message
// published after it returns is received. It returns an error if handle is
// nil, or if Redis cannot be reached or does not confirm before ctx is done
// (or within the timeout of [WithTimeout]; 10 seconds with none). ctx
// bounds only this first subscription.
//
// When the connection is lost later, go-redis reconnects and subscribes
// again, retrying as long as Redis is unreachable. Messages published
// meanwhile are lost, so once subscribed again the subscription calls
// reconnected (if not nil), on the handler's goroutine: the cache drops
// its whole L1 then. reconnected is also called for a message announcing
// that every key may have changed, which a store sends after it deleted
// every key under its prefix (see the package documentation). A
// connection that dies silently is noticed by go-redis's health check, a
// PING every 3 seconds when nothing arrives.
//
// stop closes the subscription's connection and waits for a running call
// of handle or reconnected to return; neither is called after stop
// returns. stop may be called more than once, but not from handle or
// reconnected, which it would wait for.
func (s *Store) Subscribe(ctx context.Context, handle func(source, key string), reconnected func()) (stop func(), err error) {
	if handle == nil {
		return nil, errors.New("rediscache: Subscribe: handle must not be nil")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := s.timeout
	if limit <= 0 {
		limit = subscribeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	// The span covers the SUBSCRIBE and the wait for its confirmation.
	ctx, span, start := s.tel.start(ctx, opSubscribe)
	ps := s.client.Subscribe(ctx, s.channel)
	// Receive does not watch ctx while it reads (only its deadline bounds
	// the read), so cancellation closes the connection under it.
	closed := make(chan struct{})
	unwatch := context.AfterFunc(ctx, func() {
		_ = ps.Close()
		close(closed)
	})
	err = s.confirm(ctx, ps)
	if !unwatch() {
		<-closed
		if err == nil {
			err = ctx.Err()
		}
	}
	if err != nil {
		_ = ps.Close()
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		s.tel.end(ctx, span, opSubscribe, start, err)
		return nil, fmt.Errorf("rediscache: subscribing to %q: %w", s.channel, err)
	}
	s.tel.end(ctx, span, opSubscribe, start, nil)

	sub := &subscription{
		store:       s,
		ps:          ps,
		handle:      handle,
		reconnected: reconnected,
		done:        make(chan struct{}),
	}
	// Receive must not be called once the channel exists.
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(channelSize))
	go sub.run(ch)
	return sub.stop, nil
}

// confirm waits for Redis's reply to the SUBSCRIBE that go-redis sent.
func (s *Store) confirm(ctx context.Context, ps *redis.PubSub) error {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == s.channel {
				return nil
			}
		case *redis.Message:
			// Not possible before the confirmation; nothing to invalidate
			// yet either way.
		}
	}
}

// subscription is one running Subscribe.
type subscription struct {
	store       *Store
	ps          *redis.PubSub
	handle      func(source, key string)
	reconnected func()
	stopped     atomic.Bool
	once        sync.Once
	done        chan struct{}
}

// run calls the handlers for what arrives on ch until go-redis closes it,
// which it does once the PubSub is closed.
func (s *subscription) run(ch <-chan any) {
	defer close(s.done)
	tel := s.store.tel
	ctx := context.Background()
	for msg := range ch {
		if s.stopped.Load() {
			continue // drain, so that go-redis's reader can see the close
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			// The first confirmation was read by Subscribe: this one
			// follows a reconnection.
			if m.Kind != "subscribe" || m.Channel != s.store.channel {
				continue
			}
			tel.resubscribes.Add(ctx, 1)
			if s.reconnected != nil {
				s.call(func() { s.reconnected() })
			}
		case *redis.Message:
			source, keys, err := decode(m.Payload)
			if err != nil {
				tel.messages.Add(ctx, 1, tel.malformedOpts...)
				continue
			}
			tel.messages.Add(ctx, 1, tel.handledOpts...)
			if len(keys) == 0 {
				// Every key may have changed.
				if s.reconnected != nil {
					s.call(func() { s.reconnected() })
				}
				continue
			}
			for _, k := range keys {
				if s.stopped.Load() {
					break
				}
				s.call(func() { s.handle(source, k) })
			}
		}
	}
}

// call runs f, turning a panic into a report, so that a bug in a handler
// does not end invalidation (or the process) for good.
func (s *subscription) call(f func()) {
	defer func() {
		if r := recover(); r != nil {
			s.store.tel.panics.Add(context.Background(), 1)
			otel.Handle(fmt.Errorf("rediscache: invalidation handler for channel %q panicked: %v\n%s", s.store.channel, r, debug.Stack()))
		}
	}()
	f()
}

func (s *subscription) stop() {
	s.once.Do(func() {
		s.stopped.Store(true)
		_ = s.ps.Close()
	})
	<-s.done
}
