// Package patterns is the root of otelpatterns, a library of architecture and
// resilience patterns with OpenTelemetry spans and metrics built in. It holds
// only the module's [Version]: the patterns live in sub-packages that are
// imported on their own.
//
// Resilience, around a call to a dependency:
//
//   - [github.com/otelpatterns/patterns/circuitbreaker] stops calling a
//     dependency that keeps failing, and lets it recover.
//   - [github.com/otelpatterns/patterns/retry] calls an operation again when
//     it fails, with backoff, jitter and a budget that bounds the load
//     retries add.
//   - [github.com/otelpatterns/patterns/cache] is a two-level cache
//     (in-process and a shared store) with loaders, write strategies and
//     protection against stampedes, avalanches and penetration.
//   - [github.com/otelpatterns/patterns/cache/rediscache] is the cache's
//     second level on Redis, with invalidations across instances.
//
// Data and workflows across services:
//
//   - [github.com/otelpatterns/patterns/eventsource] keeps aggregates as
//     streams of events, with a global order that projections can follow
//     without missing events; in memory here.
//   - [github.com/otelpatterns/patterns/eventsource/pgstore] is the event
//     store (and snapshot store) in PostgreSQL.
//   - [github.com/otelpatterns/patterns/cqrs] has typed command and query
//     buses, an event bus, an outbox relay and projections, traced from
//     command to projection.
//   - [github.com/otelpatterns/patterns/cqrs/natsbus] is the event bus on
//     NATS JetStream.
//   - [github.com/otelpatterns/patterns/cqrs/pgcheckpoint] keeps
//     projections' checkpoints in PostgreSQL, and runs projections whose
//     read models live there with an exactly-once effect.
//   - [github.com/otelpatterns/patterns/saga] runs sagas: steps that each
//     commit on their own, with compensations that undo them when a later
//     step fails; orchestrated from a durable log, or choreographed over a
//     cqrs event bus.
//   - [github.com/otelpatterns/patterns/saga/pglog] is the saga log in
//     PostgreSQL, so that a saga survives a crash and resumes elsewhere.
//
// At the edge of a service:
//
//   - [github.com/otelpatterns/patterns/gateway] is an API gateway to embed
//     in a Go service: routes to upstreams, load balancing, health checks,
//     retries, breakers and graceful degradation.
//   - [github.com/otelpatterns/patterns/gateway/auth] authenticates and
//     authorises a gateway's requests: bearer JWTs (static keys or JWKS),
//     API keys, and the roles or scopes each route requires.
//   - [github.com/otelpatterns/patterns/gateway/ratelimit] limits the rate
//     of a gateway route's requests, in process or on Redis.
//   - [github.com/otelpatterns/patterns/gateway/aggregate] serves
//     backend-for-frontend routes: one request answered from several
//     upstream calls.
//   - [github.com/otelpatterns/patterns/gateway/strangler] moves a legacy
//     system to a new one route by route, with a percentage split, shadow
//     traffic and a comparison of the answers.
//   - [github.com/otelpatterns/patterns/gateway/strangler/pgcdc] streams a
//     legacy PostgreSQL database's row changes (change data capture), to
//     keep the new system's data in step.
//
// Inside a service:
//
//   - [github.com/otelpatterns/patterns/hexagonal] is what a service built
//     in the hexagonal (ports and adapters) style needs: a lifecycle for its
//     adapters, health endpoints, a span and metrics per layer, domain
//     errors answered as problem details.
//   - [github.com/otelpatterns/patterns/hexagonal/archtest] checks the
//     dependency rule of such a service in a test.
//
// For implementers of the stores and buses: the helpers every event store
// and event bus shares, [github.com/otelpatterns/patterns/eventsource/storekit]
// and [github.com/otelpatterns/patterns/cqrs/buskit], and the conformance
// test suites [github.com/otelpatterns/patterns/cache/storetest],
// [github.com/otelpatterns/patterns/eventsource/storetest],
// [github.com/otelpatterns/patterns/cqrs/bustest] and
// [github.com/otelpatterns/patterns/saga/logtest].
//
// # Telemetry
//
// Every package that makes spans or metrics uses the global OpenTelemetry
// providers unless it is given its own, so a service that has set up
// OpenTelemetry gets the library's telemetry with no further code. Each
// package's documentation lists the spans, metrics and attributes it
// emits. The options to give a package its own providers:
//
//   - WithTracerProvider and WithMeterProvider: cache, cache/rediscache,
//     cqrs, cqrs/natsbus, cqrs/pgcheckpoint, eventsource/pgstore, gateway,
//     gateway/aggregate, gateway/strangler, gateway/strangler/pgcdc,
//     hexagonal, retry, saga and saga/pglog.
//   - WithMeterProvider only: circuitbreaker, gateway/auth and
//     gateway/ratelimit. They start no span of their own; they add events
//     and attributes to the caller's span (the request's, in a gateway).
//   - Neither: eventsource, whose in-memory store does no I/O and records
//     nothing (eventsource/pgstore traces its database calls), and the
//     test suites and archtest.
//
// Every tracer and meter the library creates reports the module's
// [Version] as its instrumentation scope version.
package patterns

// Version is the version of this module. Every tracer and meter the library
// creates reports it as its instrumentation scope version.
const Version = "0.1.0"
