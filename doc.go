// Package patterns is the root of otelpatterns, a library of architecture and
// resilience patterns with OpenTelemetry spans and metrics built in.
//
// The patterns live in sub-packages that are imported on their own:
//
//   - [github.com/otelpatterns/patterns/circuitbreaker] stops calling a
//     dependency that keeps failing, and lets it recover.
//   - [github.com/otelpatterns/patterns/retry] calls an operation again
//     when it fails, with backoff, jitter and a budget that bounds the load
//     retries add.
//   - [github.com/otelpatterns/patterns/cache] is a two-level cache
//     (in-process and Redis) with loaders, write strategies and protection
//     against stampedes, avalanches and penetration.
//   - [github.com/otelpatterns/patterns/eventsource] keeps aggregates as
//     streams of events, in memory or in PostgreSQL, with a global order
//     that projections can follow without missing events.
//   - [github.com/otelpatterns/patterns/cqrs] has typed command and query
//     buses, an event bus (in memory or on NATS JetStream), an outbox relay
//     and projections, traced from command to projection.
//
// Every package takes WithTracerProvider and WithMeterProvider options and
// otherwise uses the global OpenTelemetry providers, so a service that has set
// up OpenTelemetry gets the library's telemetry with no further code. Each
// package's documentation lists the spans, metrics and attributes it emits.
package patterns

import "github.com/otelpatterns/patterns/internal/telemetry"

// Version is the version of this module. Every tracer and meter the library
// creates reports it as its instrumentation scope version.
const Version = telemetry.Version
