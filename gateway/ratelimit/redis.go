package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// redisLimiter keeps the buckets in Redis with the GCRA of redis_rate: one
// key per bucket, holding its theoretical arrival time, updated by a Lua
// script in one round trip.
type redisLimiter struct {
	rl       *redis_rate.Limiter
	limit    redis_rate.Limit
	prefix   string // the key prefix and the limit's name
	timeout  time.Duration
	emission time.Duration // the time one token takes to come back
}

func newRedisLimiter(client redis.UniversalClient, l Limit, burst int, prefix string, timeout time.Duration) *redisLimiter {
	return &redisLimiter{
		rl:       redis_rate.NewLimiter(client),
		limit:    redis_rate.Limit{Rate: l.Requests, Burst: burst, Period: l.Per},
		prefix:   prefix + l.Name + ":",
		timeout:  timeout,
		emission: l.Per / time.Duration(l.Requests),
	}
}

// allow spends a token of key's bucket in Redis, within the timeout.
func (r *redisLimiter) allow(ctx context.Context, key string) (d Decision, err error) {
	// redis_rate reads the script's reply with type assertions; a reply
	// of another shape (a proxy in between, a changed script) must be an
	// error, not a panic.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("ratelimit: unexpected reply from Redis: %v", p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := r.rl.Allow(ctx, r.prefix+clusterSafe(key), r.limit)
	if err != nil {
		return Decision{}, err
	}
	d = Decision{Allowed: res.Allowed > 0, Limit: r.limit.Burst}
	if !d.Allowed {
		d.RetryAfter = max(res.RetryAfter, 0)
		d.Reset = d.RetryAfter
		return d, nil
	}
	// redis_rate's Remaining is worked out in floating point on seconds
	// since 2017, and Redis truncates it to an integer: an exact 19 comes
	// back as 18. The tokens are worked out again from ResetAfter, the
	// time until the bucket is full, less a microsecond: the resolution
	// of the script's clock, far above its arithmetic's error.
	tokens := float64(r.limit.Burst) - float64(max(res.ResetAfter-time.Microsecond, 0))/float64(r.emission)
	d.Remaining = min(max(int(math.Floor(tokens)), 0), r.limit.Burst)
	if d.Remaining < r.limit.Burst {
		d.Reset = time.Duration((float64(d.Remaining+1) - tokens) * float64(r.emission))
	}
	return d, nil
}

// clusterSafe escapes the braces of a bucket key (and the escape's own
// '%'): Redis Cluster hashes a key by the part between its first braces,
// and a route pattern's wildcard ("{id}") would send the buckets of every
// such route to one node. Most keys have none, and are returned as they
// are.
func clusterSafe(key string) string {
	if !strings.ContainsAny(key, "{}%") {
		return key
	}
	var b strings.Builder
	b.Grow(len(key) + 8)
	for i := 0; i < len(key); i++ {
		switch c := key[i]; c {
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		case '%':
			b.WriteString("%25")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isNil reports whether client is nil, or a nil pointer of one of
// go-redis's clients: either would fail on the first request.
func isNil(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case nil:
		return true
	case *redis.Client:
		return c == nil
	case *redis.ClusterClient:
		return c == nil
	case *redis.Ring:
		return c == nil
	}
	return false
}

// contextTimeoutEnabled reports whether client lets a context's deadline
// interrupt a call, when it can tell.
func contextTimeoutEnabled(client redis.UniversalClient) (enabled, known bool) {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled, true
	}
	return false, false
}
