package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// Past the routes a limiter keeps series for, the error points of the
// rest count under http.route "_OTHER", as their decisions do, never
// under an empty route.
func TestErrorPointsPastRouteBound(t *testing.T) {
	tel := telemetrytest.New(t)
	down := redis.NewClient(&redis.Options{Addr: "redis.invalid:6379", ContextTimeoutEnabled: true})
	down.AddHook(failingHook{})
	defer down.Close()
	l, err := New(Limit{Name: "overflow", Requests: 1, Per: time.Hour, Key: AllClients(), Scope: PerRoute},
		WithRedis(down), WithRedisTimeout(20*time.Millisecond), WithMeterProvider(tel.MeterProvider))
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxRouteSeries + 5 {
		ctx := gateway.WithRoute(context.Background(), fmt.Sprintf("GET /r%d", i))
		if _, err := l.Allow(ctx, "k"); err == nil {
			t.Fatal("a decision from a Redis that is down")
		}
	}
	routes := map[string]int{}
	for _, sm := range tel.Collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != metricDecisions {
				continue
			}
			for _, set := range telemetrytest.AttributeSets(m) {
				if v, ok := set.Value(semconv.HTTPRouteKey); ok && (v.AsString() == "" || v.AsString() == telemetry.OtherSeries) {
					routes[v.AsString()]++
				}
			}
		}
	}
	if routes[""] > 0 || routes[telemetry.OtherSeries] == 0 {
		t.Errorf("error points past the route bound: http.route values %v; want %q, never empty", routes, telemetry.OtherSeries)
	}
}

// failingHook fails every command before it is sent: a Redis that is down,
// without the client's dialling (and its background redials).
type failingHook struct{}

func (failingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (failingHook) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(context.Context, redis.Cmder) error { return errors.New("redis down") }
}

func (failingHook) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(context.Context, []redis.Cmder) error { return errors.New("redis down") }
}
