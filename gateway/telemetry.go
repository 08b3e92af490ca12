package gateway

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's meter: its
// import path. The server and client spans and the HTTP metrics come from
// otelhttp, under its own scope.
const ScopeName = "github.com/otelpatterns/patterns/gateway"

// Attribute keys the package records.
const (
	AttrUpstream       = attribute.Key("gateway.upstream")
	AttrFallbackReason = attribute.Key("gateway.fallback.reason")
	AttrFallbackSource = attribute.Key("gateway.fallback.source")
)

// observe registers the callback that reports the gateway's counts and
// target health from the live table at each collection. Counts are kept
// in memory on the hot path (an atomic add per attempt) rather than in
// synchronous SDK counters. The callback holds the gateway weakly, and
// Close unregisters it.
func (g *Gateway) observe() {
	m := telemetry.Meter(g.mp, ScopeName)
	selections := telemetry.Int64ObservableCounter(m, "gateway.upstream.selections",
		metric.WithUnit("{selection}"),
		metric.WithDescription("Targets chosen by the load balancer, one per attempt."))
	ejections := telemetry.Int64ObservableCounter(m, "gateway.upstream.ejections",
		metric.WithUnit("{ejection}"),
		metric.WithDescription("Targets ejected by outlier detection."))
	unavailable := telemetry.Int64ObservableCounter(m, "gateway.upstream.unavailable",
		metric.WithUnit("{request}"),
		metric.WithDescription("Attempts that no target of the upstream could take."))
	fallbacks := telemetry.Int64ObservableCounter(m, "gateway.fallbacks",
		metric.WithUnit("{response}"),
		metric.WithDescription("Fallback responses served instead of the gateway's error."))
	health, err := m.Int64ObservableGauge("gateway.upstream.health",
		metric.WithUnit("{target}"),
		metric.WithDescription("1 when the target is in service (healthy, not ejected, breaker not open), 0 when not."))
	if err != nil {
		otel.Handle(err)
		return
	}
	g.reg = telemetry.Observe(m, g, func(g *Gateway, o metric.Observer) {
		t := g.table.Load()
		for _, u := range t.upstreams {
			if n := u.stats.unavailable.Load(); n > 0 {
				o.ObserveInt64(unavailable, n, u.stats.opts...)
			}
			var now int64
			for _, tg := range u.targets {
				s := tg.state
				if n := s.selections.Load(); n > 0 {
					o.ObserveInt64(selections, n, s.opts...)
				}
				if n := s.ejections.Load(); n > 0 {
					o.ObserveInt64(ejections, n, s.opts...)
				}
				var v int64
				if u.available(tg, &now) {
					v = 1
				}
				o.ObserveInt64(health, v, s.opts...)
			}
		}
		for _, rs := range t.stats {
			for r := range numReasons {
				for src := range numSources {
					if n := rs.fallbacks[r][src].Load(); n > 0 {
						o.ObserveInt64(fallbacks, n, rs.opts[r][src]...)
					}
				}
			}
		}
	}, selections, ejections, unavailable, fallbacks, health)
}
