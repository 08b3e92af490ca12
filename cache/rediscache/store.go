package rediscache

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/cache"
)

// Store is a [cache.Store] and [cache.Invalidator] backed by Redis: the
// shared second level of the caches of every instance of a service, and
// the channel on which they tell each other which keys changed.
//
// A Store does not own its client: close the client after the caches
// using the store are closed. A Store is safe for concurrent use.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	channel string
	timeout time.Duration
	tel     *instruments
}

var (
	_ cache.Store       = (*Store)(nil)
	_ cache.Invalidator = (*Store)(nil)
)

// New returns a store that keeps values in Redis through client, under
// keys prefixed as [WithPrefix] says, and announces changes on the
// channel of [WithChannel]. It sends nothing to Redis: a store can be
// created while Redis is down.
//
// client may be a *redis.Client, *redis.ClusterClient, *redis.Ring or a
// failover client. Build it with ContextTimeoutEnabled set, so that a
// context's deadline bounds the wait for a Redis that stopped answering;
// without it, go-redis waits for its ReadTimeout (3 seconds by default)
// whatever the context says.
//
// New returns an error naming the field for a nil client, an empty prefix
// or channel, or a negative timeout.
func New(client redis.UniversalClient, opts ...Option) (*Store, error) {
	c := config{prefix: DefaultPrefix, timeout: DefaultTimeout}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if !c.channelSet {
		c.channel = c.prefix + DefaultChannelSuffix
	}
	var errs []error
	if isNil(client) {
		errs = append(errs, errors.New("client: must not be nil"))
	}
	if c.prefix == "" {
		errs = append(errs, errors.New(`WithPrefix(""): the key prefix must not be empty`))
	}
	if c.channel == "" {
		errs = append(errs, errors.New(`WithChannel(""): the invalidation channel must not be empty`))
	}
	if c.timeout < 0 {
		errs = append(errs, fmt.Errorf("WithTimeout(%v): must not be negative", c.timeout))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("rediscache: New: %w", errors.Join(errs...))
	}
	return &Store{
		client:  client,
		prefix:  c.prefix,
		channel: c.channel,
		timeout: c.timeout,
		tel:     newInstruments(client, c.tracerProvider, c.meterProvider, c.optIn),
	}, nil
}

// isNil reports whether client is nil or a nil pointer in an interface.
func isNil(client redis.UniversalClient) bool {
	if client == nil {
		return true
	}
	v := reflect.ValueOf(client)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// bound applies the store's timeout to ctx.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// Prefix returns the prefix of the store's keys in Redis.
func (s *Store) Prefix() string { return s.prefix }

// Channel returns the pub/sub channel of the store's invalidations.
func (s *Store) Channel() string { return s.channel }

// Get returns the value stored under key, or an error matching
// [cache.ErrNotFound] if there is none (or it expired). The value is a
// fresh slice that the caller may keep and modify. Any other error means
// Redis could not answer: it wraps go-redis's error, or ctx's error when
// ctx is done.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ctx, span, start := s.tel.start(ctx, opGet)
	v, err := s.client.Get(ctx, s.prefix+key).Bytes()
	s.tel.end(ctx, span, opGet, start, err)
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, redis.Nil):
		return nil, cache.ErrNotFound
	default:
		return nil, fmt.Errorf("rediscache: GET %q: %w", key, err)
	}
}

// Set stores value under key for ttl, replacing any value and ttl the key
// had. A ttl of 0 means no expiry; Redis keeps ttls to the millisecond, and
// rounds a positive ttl under a millisecond up to one. A negative ttl is an
// error. Set does not keep value.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl < 0 {
		return fmt.Errorf("rediscache: SET %q: negative ttl %v", key, ttl)
	}
	if value == nil {
		value = []byte{}
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ctx, span, start := s.tel.start(ctx, opSet)
	err := s.client.Set(ctx, s.prefix+key, value, ttl).Err()
	s.tel.end(ctx, span, opSet, start, err)
	if err != nil {
		return fmt.Errorf("rediscache: SET %q: %w", key, err)
	}
	return nil
}

// Delete removes key. Deleting a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ctx, span, start := s.tel.start(ctx, opDel)
	err := s.client.Del(ctx, s.prefix+key).Err()
	s.tel.end(ctx, span, opDel, start, err)
	if err != nil {
		return fmt.Errorf("rediscache: DEL %q: %w", key, err)
	}
	return nil
}
