package rediscache

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Store is a [cache.Store] and [cache.Invalidator] backed by Redis: the
// shared second level of the caches of every instance of a service, and
// the channel on which they tell each other which keys changed.
//
// A Store guards Redis with a circuit breaker (see [WithBreaker]) and
// remembers the keys whose writes failed until it has repaired them (see
// "What an outage cannot undo" in the package documentation);
// [Store.Close] stops that repair. A Store does not own its client: close
// the store after the caches using it, and the client after the store.
// Make a Store with [New]: the zero Store is not usable. A Store is safe
// for concurrent use.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	channel string
	timeout time.Duration
	breaker *circuitbreaker.Breaker // nil: WithoutBreaker
	dirty   *dirtyKeys
	// repairSource is the source of the announcements of repaired keys:
	// no cache's, so that every cache drops its copies, the writer's too.
	repairSource string
	tel          *instruments
}

var (
	_ cache.Store       = (*Store)(nil)
	_ cache.Adder       = (*Store)(nil)
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
// New returns an error naming every fault at once: a nil client, a nil
// option, an empty prefix or channel, a negative timeout, a
// [WithMaxDirtyKeys] under 1, or [WithBreaker] options that
// [circuitbreaker.New] rejects (or that are nil).
func New(client redis.UniversalClient, opts ...Option) (*Store, error) {
	c := config{prefix: DefaultPrefix, timeout: DefaultTimeout, maxDirty: DefaultMaxDirtyKeys}
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(&c)
	}
	if !c.channelSet {
		c.channel = c.prefix + DefaultChannelSuffix
	}
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
	if c.maxDirty <= 0 {
		errs = append(errs, fmt.Errorf("WithMaxDirtyKeys(%d): must be positive", c.maxDirty))
	}
	errs = append(errs, c.faults...)
	if !c.noBreaker {
		if err := circuitbreaker.Validate(c.breakerOpts...); err != nil {
			errs = append(errs, fmt.Errorf("WithBreaker: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("rediscache: New: %w", errors.Join(errs...))
	}
	var br *circuitbreaker.Breaker
	if !c.noBreaker {
		br = newBreaker("rediscache:"+c.prefix, c)
	}
	var id [8]byte
	_, _ = crand.Read(id[:])
	s := &Store{
		client:       client,
		prefix:       c.prefix,
		channel:      c.channel,
		timeout:      c.timeout,
		breaker:      br,
		repairSource: "rediscache-repair-" + hex.EncodeToString(id[:]),
		tel:          newInstruments(client, c.tracerProvider, c.meterProvider, c.optIn),
	}
	s.dirty = newDirtyKeys(s, c.maxDirty)
	s.tel.observe(s, c.meterProvider)
	return s, nil
}

// newBreaker builds the store's breaker: the defaults of [WithBreaker],
// then the options given, which New has validated.
func newBreaker(name string, c config) *circuitbreaker.Breaker {
	opts := append([]circuitbreaker.Option{
		circuitbreaker.WithConsecutiveFailures(DefaultBreakerFailures),
		circuitbreaker.WithOpenDuration(DefaultBreakerOpenDuration),
		circuitbreaker.WithMeterProvider(c.meterProvider),
	}, c.breakerOpts...)
	return circuitbreaker.New(name, opts...)
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
// Redis could not answer: it wraps go-redis's error, ctx's error when ctx
// is done, or, without a round trip, the breaker's rejection (matching
// [circuitbreaker.ErrOpen], or [circuitbreaker.ErrTooManyRequests] while it
// probes).
//
// Get reports a key whose last write or delete through the store failed,
// and not repaired since, as missing without asking Redis, which may
// still hold the value from before; so does every key while the store
// does not trust Redis after losing track of such keys (see the package
// documentation). A Get during whose round trip a write of any key failed
// reports a miss too, since the value it read may predate that write.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	marks := s.dirty.marks.Load() // before has: a mark in between is seen
	if s.dirty.has(key) {
		return nil, cache.ErrNotFound
	}
	var v []byte
	err := s.do(ctx, opGet, func(ctx context.Context) error {
		var err error
		v, err = s.client.Get(ctx, s.prefix+key).Bytes()
		return err
	})
	switch {
	case err == nil:
		// A write failed meanwhile, of this key or another: v may be
		// older than that write, even if the repair has already deleted
		// the key from Redis and forgotten it (so has would not tell).
		if s.dirty.marks.Load() != marks {
			return nil, cache.ErrNotFound
		}
		return v, nil
	case errors.Is(err, redis.Nil):
		return nil, cache.ErrNotFound
	default:
		return nil, fmt.Errorf("rediscache: GET %s: %w", brief.Quote(key), err)
	}
}

// Set stores value under key for ttl, replacing any value and ttl the key
// had. A ttl of 0 means no expiry; Redis keeps ttls to the millisecond, and
// rounds a positive ttl under a millisecond up to one. A negative ttl is an
// error. Set does not keep value.
//
// When Set fails once it has tried to reach Redis (or the breaker
// rejected it), Redis may still hold the key's previous value: the store
// remembers the key, misses it in Get, and deletes and announces it once
// Redis answers again. A Set whose ctx is done before it starts sends
// nothing but is remembered too: its caller may have changed its own copy
// (the cache's L1) all the same. A Set with a negative ttl changes
// nothing and is not remembered.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		s.dirty.mark(key) // the caller may have changed its own copy
		return err
	}
	if ttl < 0 {
		return fmt.Errorf("rediscache: SET %s: negative ttl %v", brief.Quote(key), ttl)
	}
	if value == nil {
		value = []byte{}
	}
	err := s.do(ctx, opSet, func(ctx context.Context) error {
		return s.client.Set(ctx, s.prefix+key, value, ttl).Err()
	})
	if err != nil {
		s.dirty.mark(key)
		return fmt.Errorf("rediscache: SET %s: %w", brief.Quote(key), err)
	}
	return nil
}

// Add stores value under key for ttl, as Set does, only if key holds no
// value: SET with NX (and PX ttl in milliseconds; a ttl of 0 means no
// expiry). It reports whether it stored value. A negative ttl is an error.
//
// Add stores nothing, and reports false without asking Redis, for a key
// that Get reports missing because a write of it failed (or while the
// store does not trust Redis): a value loaded now must not land next to
// the stale one before it is repaired. A failed Add is not remembered:
// it only tried to fill L2 with a value just loaded, and leaves Redis no
// staler than it was (remembering it would fill the store's memory with
// every miss of an outage).
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if ttl < 0 {
		return false, fmt.Errorf("rediscache: SET NX %s: negative ttl %v", brief.Quote(key), ttl)
	}
	if s.dirty.has(key) {
		return false, nil
	}
	if value == nil {
		value = []byte{}
	}
	err := s.do(ctx, opSet, func(ctx context.Context) error {
		return s.client.SetArgs(ctx, s.prefix+key, value, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	default:
		return false, fmt.Errorf("rediscache: SET NX %s: %w", brief.Quote(key), err)
	}
}

// Delete removes key. Deleting a missing key is not an error. A Delete
// that fails is remembered as a failed Set is.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		s.dirty.mark(key)
		return err
	}
	err := s.do(ctx, opDel, func(ctx context.Context) error {
		return s.client.Del(ctx, s.prefix+key).Err()
	})
	if err != nil {
		s.dirty.mark(key)
		return fmt.Errorf("rediscache: DEL %s: %w", brief.Quote(key), err)
	}
	return nil
}

// do runs one round trip of op under the store's timeout, through the
// breaker, in a span. A call the breaker rejects starts no span and
// returns the breaker's error.
func (s *Store) do(ctx context.Context, op int, f func(context.Context) error) error {
	// A caller's deadline under half the store's timeout that ends a
	// round trip says that the caller was in a hurry, not that Redis
	// failed: counted as a failure, callers with tight deadlines would
	// open the breaker in front of a healthy Redis.
	callerDeadline, hurried := ctx.Deadline()
	if hurried && s.timeout > 0 {
		hurried = time.Until(callerDeadline) < s.timeout/2
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if s.breaker == nil {
		return s.roundTrip(ctx, op, f)
	}
	var err error
	rejected := s.breaker.Execute(ctx, func(ctx context.Context) error {
		err = s.roundTrip(ctx, op, f)
		if hurried && errors.Is(err, context.DeadlineExceeded) {
			return errCallerDeadline // ignored, as the caller's cancellation is
		}
		return infraFailure(err)
	})
	if err == nil && rejected != nil {
		return rejected
	}
	return err
}

func (s *Store) roundTrip(ctx context.Context, op int, f func(context.Context) error) error {
	ctx, span, start := s.tel.start(ctx, op)
	err := f(ctx)
	if cerr := ctx.Err(); err != nil && cerr != nil && !errors.Is(err, cerr) {
		// go-redis sets the connection's deadline from ctx's, and which of
		// the two fires first is a race: say that ctx ended, either way.
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	s.tel.end(ctx, span, op, start, err)
	return err
}

// errCallerDeadline is what the breaker sees of a round trip ended by the
// caller's deadline, under half the store's timeout: it matches
// context.Canceled, which circuitbreaker.DefaultClassifier ignores.
var errCallerDeadline = fmt.Errorf("rediscache: the caller's deadline, under half the store's timeout, ended the call: %w", context.Canceled)

// infraFailure returns err if it says that Redis could not be reached or
// could not serve (which the breaker counts), and nil if Redis answered:
// a missing key (redis.Nil) or an error reply about the command, such as
// WRONGTYPE. Replies saying that the server cannot serve for now count.
func infraFailure(err error) error {
	if err == nil {
		return nil
	}
	var reply redis.Error
	if !errors.As(err, &reply) {
		return err
	}
	switch telemetry.RedisErrorPrefix(err) {
	case "LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS":
		return err
	}
	return nil
}

// Close stops the store's repair of the keys whose writes failed (see
// the package documentation), after one last attempt at it within the
// store's timeout, and waits for it to end. It returns an error saying how
// many keys it leaves unrepaired, whose older values other instances may
// serve from Redis until they expire. Close does not close the client.
// The store still works after Close, but no longer repairs keys; later
// calls of Close do nothing and return nil. The repair goroutine runs only
// while there are keys to repair; a store dropped without Close during an
// outage leaves it retrying (at most every 2 seconds) until Redis answers.
func (s *Store) Close() error {
	return s.dirty.close()
}
