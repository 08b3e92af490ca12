package ratelimit

import (
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
)

// Defaults of a [Limiter] built without the matching option.
const (
	DefaultMaxKeys        = 100_000
	DefaultRedisTimeout   = 50 * time.Millisecond
	DefaultRedisKeyPrefix = "gateway:ratelimit:"
	DefaultIPv6Prefix     = 64
)

// Option configures a [Limiter].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	maxKeys       int
	redis         redis.UniversalClient
	redisSet      bool // WithRedis was given, perhaps with nil
	redisTimeout  time.Duration
	redisPrefix   string
	failClosed    bool
	ipv6Prefix    int
	meterProvider metric.MeterProvider
}

// WithMaxKeys bounds the in-process table of buckets to n keys, so that a
// flood of distinct clients cannot grow memory without bound. When it is
// full, a new key evicts one of a few sampled keys: the one whose bucket
// has refilled most, whose eviction loses the least (a full bucket, none
// at all: a new bucket starts full). The default is [DefaultMaxKeys]
// (100,000, a few tens of MB at most). It does not apply with [WithRedis].
func WithMaxKeys(n int) Option {
	return optionFunc(func(c *config) { c.maxKeys = n })
}

// WithRedis keeps the buckets in Redis, shared by every limiter of the same
// name (every instance of the gateway), with the GCRA of
// github.com/go-redis/redis_rate/v10. The client must be built with
// ContextTimeoutEnabled, so that [WithRedisTimeout] bounds a call even
// when Redis stops answering; New refuses a client that says it is not.
// By default buckets are kept in process; a nil client is an error.
func WithRedis(client redis.UniversalClient) Option {
	return optionFunc(func(c *config) { c.redis, c.redisSet = client, true })
}

// WithRedisTimeout bounds each Redis call, far below a request's own
// timeout: a slow Redis must not make every request slow. When it passes,
// or Redis fails, the request is let through or refused as
// [WithFailClosed] says. The default is [DefaultRedisTimeout] (50ms).
func WithRedisTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.redisTimeout = d })
}

// WithRedisKeyPrefix sets the prefix of the limiter's Redis keys, before
// the limit's name. The default is [DefaultRedisKeyPrefix]. The rest of a
// key has its braces escaped, so that a prefix with a hash tag ("{rl}:")
// is the only one Redis Cluster sees: without one, the buckets spread
// over the cluster's nodes, a route pattern's wildcard ("{id}") not
// gathering them on one.
func WithRedisKeyPrefix(prefix string) Option {
	return optionFunc(func(c *config) { c.redisPrefix = prefix })
}

// WithFailClosed refuses requests (503 with Retry-After) when the Redis
// limiter cannot decide: Redis down, slow or erroring. By default the
// limiter fails open and lets them through, which keeps the service up
// while Redis is not, at the price of no limit meanwhile. Either way the
// failure is counted (gateway.ratelimit.decisions with decision error and
// gateway.ratelimit.fail_mode open or closed).
func WithFailClosed() Option {
	return optionFunc(func(c *config) { c.failClosed = true })
}

// WithIPv6Prefix sets the length of the network prefix that keys IPv6
// clients with [ByClientIP], in 1..128 (128 keys each address). The
// default is [DefaultIPv6Prefix] (64).
func WithIPv6Prefix(bits int) Option {
	return optionFunc(func(c *config) { c.ipv6Prefix = bits })
}

// WithMeterProvider sets the meter provider of the limiter's metrics. The
// default is the global provider. A nil provider is ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}
