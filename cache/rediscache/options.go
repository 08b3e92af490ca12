package rediscache

import (
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of a Store built with no options.
const (
	// DefaultPrefix is the key prefix: the cache's key "user:42" is stored
	// under "cache:user:42".
	DefaultPrefix = "cache:"
	// DefaultChannelSuffix is appended to the prefix to name the pub/sub
	// channel of invalidations when [WithChannel] is not given:
	// "cache:invalidate" with the default prefix.
	DefaultChannelSuffix = "invalidate"
	// DefaultTimeout bounds each round trip to Redis.
	DefaultTimeout = time.Second
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
// [New]. If the client is already instrumented (with redisotel), pass a
// no-op provider (go.opentelemetry.io/otel/trace/noop) to avoid recording
// every command twice.
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
