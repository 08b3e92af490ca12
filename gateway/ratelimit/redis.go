package ratelimit

import (
	"context"
	"fmt"
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
	res, err := r.rl.Allow(ctx, r.prefix+key, r.limit)
	if err != nil {
		return Decision{}, err
	}
	d = Decision{Allowed: res.Allowed > 0, Limit: r.limit.Burst, Remaining: max(res.Remaining, 0)}
	if !d.Allowed {
		d.RetryAfter = max(res.RetryAfter, 0)
		d.Reset = d.RetryAfter
		return d, nil
	}
	if d.Remaining < r.limit.Burst {
		// ResetAfter is when the bucket is full again; the next token
		// comes back that much earlier than the last.
		missing := time.Duration(r.limit.Burst - d.Remaining - 1)
		d.Reset = max(res.ResetAfter-missing*r.emission, 0)
	}
	return d, nil
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
