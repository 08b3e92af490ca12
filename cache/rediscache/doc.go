// Package rediscache is a Redis second level (L2) for the caches of package
// cache, shared by every instance of a service, and the channel on which
// those instances tell each other which keys changed.
//
// Each instance of a service keeps its own in-process cache (L1), a
// [cache.Cache] of package [github.com/otelpatterns/patterns/cache]. With a
// [Store] behind it, a value one instance loaded is read by the others
// from Redis instead of from the source of truth, and a Set or Delete on
// one instance drops the L1 copies the others hold, so that they do not
// serve a stale value until it expires.
//
//	client := redis.NewClient(&redis.Options{
//		Addr:                  "redis:6379",
//		ContextTimeoutEnabled: true, // let deadlines interrupt a stuck Redis
//	})
//	defer client.Close()
//	store, err := rediscache.New(client, rediscache.WithPrefix("users:"))
//	if err != nil {
//		return err
//	}
//	defer store.Close() // after users.Close, before client.Close
//	users, err := cache.New[User](
//		cache.WithStore(store),
//		cache.WithLoader(loadUser), // func(ctx, id string) (User, error)
//	)
//	if err != nil {
//		return err // also when Redis cannot be reached: see below
//	}
//	defer users.Close() // before client.Close
//
// The store keeps the cache's encoded values under the key prefix
// ([WithPrefix], "cache:" by default) with the cache's ttl, as PX
// milliseconds. Give each kind of cached value its own prefix. The store
// does not own the client: close the caches, then the store, then the
// client. The store is a [cache.Adder]: a cache fills L2 after a load with
// [Store.Add], a SET with NX, which never overwrites a newer value.
//
// # Invalidation across instances
//
// A cache whose store is a [Store] subscribes to the store's pub/sub
// channel ([WithChannel]; the prefix followed by "invalidate" by default)
// when it is created, and publishes each key it sets or deletes there, on
// behalf of its instance. Every instance, on receiving a key announced by
// another, drops its L1 copy; its next Get reads the new value from Redis.
// Each [Store.Publish] is one PUBLISH of one message holding the source and
// every key, length-prefixed so that keys of any bytes survive. Other
// messages on the channel are ignored and counted. Publish can also be
// called on its own, by a process that changed the source of truth without
// going through a cache.
//
// Redis pub/sub delivers each message at most once, to the subscribers
// connected when it is published: an instance that is disconnected misses
// what is published meanwhile. go-redis reconnects and subscribes again on
// its own, retrying while Redis is unreachable, and notices a connection
// that died silently with a PING every 3 seconds. Once subscribed again,
// the store calls the cache's reconnected callback and the cache drops its
// whole L1, since any entry in it may have been invalidated meanwhile.
// The cache's TTL bounds what remains: a message lost without the
// connection dropping (which Redis does not do) or a subscriber so slow that
// go-redis drops messages after a minute.
//
// # When Redis is down
//
// Every call of the store fails within its context's deadline and within
// [WithTimeout] (1 second by default). Every round trip goes through a
// circuit breaker ([WithBreaker]): after 5 failures in a row (timeouts,
// connection errors; not a missing key) it opens, and for the next
// second every call fails at once with an error matching
// [circuitbreaker.ErrOpen], without a round trip; then one call probes
// Redis (the others fail at once with [circuitbreaker.ErrTooManyRequests]
// meanwhile), and the breaker closes if it succeeds. So a frozen Redis
// costs a few calls the store timeout, then each call a fast rejection,
// plus one probe a second that waits the timeout again; when Redis refuses
// connections, go-redis fails at once anyway. The cache goes on without
// its L2: L1 hits are served as before, misses go to the loader, and Set
// and Delete update the local L1 and return the L2 and invalidation
// errors. The other instances do not hear of those writes yet. A round
// trip ended by the caller's deadline counts as a failure only when that
// deadline was at least half the store's timeout away: a caller in a hurry
// (the cache gives an L2 read half of its caller's remaining time) does
// not open the breaker in front of a healthy Redis; a frozen Redis then
// costs such callers their own deadline each.
//
// # What an outage cannot undo
//
// A write or delete that this instance acknowledged locally is never
// undone by an outage: once its Set or Delete has returned, even with an
// error, this instance does not serve a value older than the one written
// (or the deleted one), neither during the outage nor after it. When a
// write, delete or announcement fails, the store remembers the key (a
// dirty key, up to [WithMaxDirtyKeys], 10,000 by default): Get reports it
// missing without asking Redis, which may still hold the older value,
// and Add does not fill it. A goroutine of the store retries, and once
// Redis answers again it deletes the dirty keys from Redis and announces
// them on the channel, so that every instance drops its L1 copy, then
// forgets them. The other instances, which did not hear of the write,
// may serve the older value until then: from their L1 during the outage,
// and from Redis after they resubscribe and before the writer repaired
// it. With a Redis that answers them and not the writer, that lasts until
// the writer reaches Redis again or their copies expire.
//
// When more keys fail than the store remembers, it forgets them all and
// stops trusting Redis: every Get misses (the cache loads from the
// source) until the store has deleted every key under its prefix (SCAN
// and UNLINK, on every master of a cluster) and announced, with a message
// without keys, that every instance must drop its whole L1. The
// announcement reaches a subscription as a call of its reconnected
// callback.
//
// A Set, Delete or Publish called with a context that is already done
// sends nothing, but remembers its keys as a failed one does: the context
// can end between the cache's own check and the store's, after the cache
// changed its L1. The memory is the process's:
// [Store.Close] stops the repair after one last attempt and reports the
// keys it leaves, and a process that exits before Redis is back leaves
// their older values in Redis until they expire. Without a store timeout
// and breaker (WithTimeout(0), [WithoutBreaker]) the guarantee still
// holds, at the cost of waiting for Redis.
//
// Build the client with ContextTimeoutEnabled: without it go-redis lets
// reads run to its ReadTimeout (3 seconds by default) whatever the context
// says. Its retries (MaxRetries, 3 by default, and 5 dial attempts per
// connection) all run within the deadline. go-redis bounds a round trip by
// the context's deadline, not by its cancellation: a context canceled
// while a command waits for Redis is noticed when the command ends, which
// [WithTimeout] bounds.
//
// Subscribing needs Redis: when it cannot be reached, [Store.Subscribe]
// fails, and [cache.New] starts anyway, serving from L1 and the loader, and
// keeps trying to subscribe in the background (clearing L1 once it has,
// since invalidations were missed meanwhile). A cache rides out any outage.
//
// Any client works: *redis.Client, a Sentinel failover client,
// *redis.ClusterClient (PUBLISH reaches every node's subscribers) or
// *redis.Ring.
//
// # Telemetry
//
// Spans come from the tracer named [ScopeName] of the [WithTracerProvider]
// provider, metrics from the meter named [ScopeName] of the
// [WithMeterProvider] provider (the global ones by default). They follow
// the OpenTelemetry semantic conventions (v1.40) for Redis clients.
//
// Each round trip has a client span named after its command, children of
// the cache's cache.l2.* spans: GET, SET (also for Add's SET NX), DEL,
// PUBLISH, and SUBSCRIBE (Subscribe's subscription and the wait for Redis
// to confirm it). The repair of failed writes runs DEL (a pipeline of
// them) and PUBLISH, and a flush of the prefix SCAN and UNLINK (a
// pipeline), in spans of their own. A call the breaker rejects has no
// span. The
// conventions name a Redis span "{db.operation.name} {target}" without
// db.namespace, and these commands have no other target. Attributes, set
// when the span starts:
//
//   - db.system.name: redis.
//   - db.operation.name: the command.
//   - server.address: the host of the client's Addr (or the socket).
//   - server.port: its port, unless it is Redis's 6379 (then only with
//     [WithOptInAttributes]).
//   - db.namespace: the database index of the client's options, the one
//     the connection was established with.
//
// server.address, server.port and db.namespace are recorded for a
// *redis.Client connected to one server, not for a cluster, a ring or a
// failover client, whose server changes from call to call. A missing key
// is not an error. A failed round trip has status Error and error.type:
// for an error reply of Redis, its prefix (WRONGTYPE, ERR, NOSCRIPT, …),
// also recorded as db.response.status_code; otherwise
// context.DeadlineExceeded, context.Canceled, the error's exported type
// name (net.OpError, say) or _OTHER. If the client is instrumented with
// [github.com/redis/go-redis/extra/redisotel/v9] already, give the store a
// no-op tracer provider.
//
// Metrics:
//
//   - db.client.operation.duration (histogram, s): the duration of every
//     round trip, with the span's attributes: error.type and
//     db.response.status_code on failure.
//   - rediscache.messages (counter, {message}): the messages a
//     subscription received, by rediscache.outcome: handled, or
//     malformed ones that were ignored.
//   - rediscache.resubscriptions (counter, {resubscription}): the times a
//     lost subscription was restored (and reconnected called).
//   - rediscache.handler.panics (counter, {panic}): the panics of the
//     handler, recovered, counted and reported to otel.Handle with their
//     stack.
//   - rediscache.dirty.keys (updowncounter, {key}): the keys whose write
//     failed, not yet repaired, which Get misses.
//   - rediscache.repairs (counter, {key}): the dirty keys deleted and
//     announced once Redis answered again.
//   - rediscache.bypass (updowncounter, {store}): 1 while the store does
//     not trust Redis and every Get misses, after too many keys failed.
//   - rediscache.flushes (counter, {flush}): the deletions of every key
//     under the prefix that ended such a bypass.
//
// The breaker reports circuitbreaker.calls, circuitbreaker.state and
// circuitbreaker.state.transitions (in the scope [circuitbreaker.ScopeName]) to
// the same meter provider, with circuitbreaker.name "rediscache:"
// followed by the prefix.
package rediscache
