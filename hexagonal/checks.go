package hexagonal

import (
	"context"
	"errors"
)

// Pinger is a dependency that answers a ping: a *pgxpool.Pool, a
// *pgx.Conn, and anything with the same method.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PingCheck returns a check that pings p: for PostgreSQL through pgx,
//
//	hexagonal.WithReadinessCheck("postgres", hexagonal.PingCheck(pool))
//
// A *sql.DB's PingContext method is a check as it is.
func PingCheck(p Pinger) func(context.Context) error {
	if p == nil {
		panic("hexagonal: PingCheck(nil)")
	}
	return p.Ping
}

// Result is the result of a command that carries its error, as
// go-redis's *redis.StatusCmd does.
type Result interface {
	Err() error
}

// ResultPinger is a dependency whose ping returns a [Result]: a go-redis
// *redis.Client, *redis.ClusterClient, redis.UniversalClient.
type ResultPinger[R Result] interface {
	Ping(ctx context.Context) R
}

// RedisCheck returns a check that sends PING to a Redis server through
// go-redis, without this package importing go-redis:
//
//	hexagonal.WithReadinessCheck("redis", hexagonal.RedisCheck(rdb))
func RedisCheck[R Result](c ResultPinger[R]) func(context.Context) error {
	if c == nil {
		panic("hexagonal: RedisCheck(nil)")
	}
	return func(ctx context.Context) error { return c.Ping(ctx).Err() }
}

// NATSConn is what [NATSCheck] needs of a *nats.Conn.
type NATSConn interface {
	IsConnected() bool
	FlushWithContext(ctx context.Context) error
}

// ErrNotConnected is the error of a [NATSCheck] on a connection that is
// not connected (it is reconnecting, or closed).
var ErrNotConnected = errors.New("hexagonal: not connected")

// NATSCheck returns a check that fails at once while the NATS connection
// c is not connected, and otherwise makes a round trip to the server
// (a PING answered by a PONG, behind the messages buffered before it):
//
//	hexagonal.WithReadinessCheck("nats", hexagonal.NATSCheck(nc))
func NATSCheck(c NATSConn) func(context.Context) error {
	if c == nil {
		panic("hexagonal: NATSCheck(nil)")
	}
	return func(ctx context.Context) error {
		if !c.IsConnected() {
			return ErrNotConnected
		}
		return c.FlushWithContext(ctx)
	}
}
