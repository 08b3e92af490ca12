package rediscache

import (
	"fmt"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of a Store built with no options.
const (
	// DefaultPrefix is the key prefix: the cache's key "user:42" is stored
	// under "cache:user:42".
	DefaultPrefix = "cache:"
	// DefaultChannelSuffix is appended to the prefix to name the pub/sub
	// channel of invalidations when WithChannel is not given:
	// "cache:invalidate" with the default prefix.
	DefaultChannelSuffix = "invalidate"
	// DefaultTimeout bounds each round trip to Redis.
	DefaultTimeout = time.Second
	// DefaultBreakerFailures is how many round trips in a row must fail
	// for the store's breaker to open (see WithBreaker).
	DefaultBreakerFailures = 5
	// DefaultBreakerOpenDuration is how long the store's breaker stays
	// open before it lets one round trip through to probe Redis.
	DefaultBreakerOpenDuration = time.Second
	// DefaultMaxDirtyKeys is how many keys whose writes failed the store
	// remembers (see WithMaxDirtyKeys).
	DefaultMaxDirtyKeys = 10_000
)

// Option configures a [Store].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	prefix         string
	channel        string
	channelSet     bool
	timeout        time.Duration
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	optIn          bool
	breakerOpts    []circuitbreaker.Option
	noBreaker      bool
	maxDirty       int
	faults         []error // found by the options themselves
}

// WithPrefix sets the namespace of the store's keys in Redis: a cache key k
// is stored under prefix+k. Caches of different kinds of values sharing
// one Redis database need different prefixes. prefix must not be empty.
// The default is [DefaultPrefix] ("cache:").
func WithPrefix(prefix string) Option {
	return optionFunc(func(c *config) { c.prefix = prefix })
}

// WithChannel sets the Redis pub/sub channel on which the instances sharing
// the store announce changed keys (see [Store.Publish]). Every instance of a
// cache must use the same channel, and caches with different prefixes
// should use different channels, or they drop each other's L1 entries for
// nothing. channel must not be empty. The default is the prefix followed by
// [DefaultChannelSuffix]: "cache:invalidate" with the default prefix,
// "users:invalidate" with WithPrefix("users:").
func WithChannel(channel string) Option {
	return optionFunc(func(c *config) { c.channel, c.channelSet = channel, true })
}

// WithTimeout bounds each call of the store, on top of its context's
// deadline, and the wait of [Store.Subscribe] for Redis to confirm the
// subscription. An L2 that is slower than this is not worth waiting for:
// the cache above counts the error and goes on to its loader. The cache
// may call the store with a context that has no deadline (a load shared by
// several callers outlives the first one's deadline), so this is what keeps
// a frozen or unreachable Redis from holding the cache up for the client's
// read timeout times its retries. d of 0 sets no bound besides the
// context's. The default is [DefaultTimeout] (1 second).
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.timeout = d })
}

// WithTracerProvider sets where the spans of Redis round trips go. The
// default, also used when tp is nil, is the global provider at the time of
// [New]. If the client is already instrumented (with
// [github.com/redis/go-redis/extra/redisotel/v9]), pass a no-op provider
// ([go.opentelemetry.io/otel/trace/noop]) to avoid recording every
// command twice.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets where the store's metrics go. The default, also
// used when mp is nil, is the global provider at the time of [New].
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// WithOptInAttributes records the semantic conventions' Opt-In
// attributes as well: server.port when it is Redis's default 6379
// (another port is always recorded). It is off by default.
func WithOptInAttributes() Option {
	return optionFunc(func(c *config) { c.optIn = true })
}

// WithBreaker configures the circuit breaker (of package [circuitbreaker])
// that every round trip of the store goes through, named "rediscache:"
// and the prefix. Once it opens, each call fails at once with an error
// matching [circuitbreaker.ErrOpen], instead of waiting for a Redis that does not
// answer; once it has been open for a while, it lets one call through to
// probe Redis, and closes if the call succeeds. opts apply on top of the
// store's defaults: open after [DefaultBreakerFailures] (5) failed round
// trips in a row, for [DefaultBreakerOpenDuration] (1 second), with the
// breaker's metrics going to the meter provider of [WithMeterProvider].
//
// Only failures to reach or use Redis count: timeouts, connection
// errors, and replies saying the server cannot serve now (LOADING,
// READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, BUSY, NOREPLICAS). A
// missing key and other error replies (WRONGTYPE) count as successes, and
// a canceled context as nothing, as does a call ended by the caller's
// deadline when that was under half the store's timeout (a hurried
// caller, not a failing Redis). A classifier given with
// [circuitbreaker.WithClassifier] sees nil for those successes, and an
// error matching context.Canceled for those hurried calls.
//
// The breaker is on by default; [WithoutBreaker] turns it off. The last
// of the two options given wins. The panic of [circuitbreaker.New] on a
// bad option is an error of [New] naming WithBreaker, as is a nil option.
func WithBreaker(opts ...circuitbreaker.Option) Option {
	return optionFunc(func(c *config) {
		for i, o := range opts {
			if o == nil {
				c.faults = append(c.faults, fmt.Errorf("WithBreaker: opts[%d] is nil", i))
				return
			}
		}
		c.breakerOpts = append(c.breakerOpts, opts...)
		c.noBreaker = false
	})
}

// WithoutBreaker sends every call to Redis, however many failed before:
// a frozen Redis then costs every call the store's timeout. The default
// is a breaker (see [WithBreaker]).
func WithoutBreaker() Option {
	return optionFunc(func(c *config) { c.noBreaker = true })
}

// WithMaxDirtyKeys bounds how many keys whose Set, Delete or Publish
// failed the store remembers until it has repaired them (see
// the package documentation). Beyond n, the store stops trusting Redis:
// every Get misses until it has deleted every key under its prefix and
// told every instance to drop its L1. n must be positive; each key costs
// its length plus about 50 bytes. The default is [DefaultMaxDirtyKeys]
// (10,000).
func WithMaxDirtyKeys(n int) Option {
	return optionFunc(func(c *config) { c.maxDirty = n })
}
