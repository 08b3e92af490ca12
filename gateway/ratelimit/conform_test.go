package ratelimit_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// documented is the package's telemetry as doc.go describes it.
var documented = []telemetrytest.Instrument{
	{Name: "gateway.ratelimit.decisions", Kind: telemetrytest.Counter, Unit: "{request}",
		Required: []attribute.Key{ratelimit.AttrName, ratelimit.AttrDecision},
		Optional: []attribute.Key{semconv.HTTPRouteKey, ratelimit.AttrFailMode, semconv.ErrorTypeKey}},
}

// TestTelemetryConforms allows, limits and fails decisions on two routes
// and outside a gateway, and checks every data point against the
// documented instruments, doc.go against them, and the span events.
func TestTelemetryConforms(t *testing.T) {
	tel := telemetrytest.New(t)
	l := newLimiter(t, ratelimit.Limit{Name: "api", Requests: 1, Per: time.Hour, Key: ratelimit.ByClientIP(), Scope: ratelimit.PerRoute},
		ratelimit.WithMeterProvider(tel.MeterProvider))
	// A Redis nobody listens on, with a short timeout: every decision fails.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true, MaxRetries: -1})
	defer down.Close()
	broken := newLimiter(t, ratelimit.Limit{Name: "shared", Requests: 1, Per: time.Hour, Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes},
		ratelimit.WithRedis(down), ratelimit.WithRedisTimeout(20*time.Millisecond), ratelimit.WithFailClosed(), ratelimit.WithMeterProvider(tel.MeterProvider))

	ctx, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "GET /a")
	for _, route := range []string{"GET /a", "GET /a", "GET /b"} {
		do(request(route, "198.51.100.7").WithContext(ctxWithRoute(ctx, route)), l)
	}
	do(request("GET /a", "198.51.100.7").WithContext(ctxWithRoute(ctx, "GET /a")), broken)
	span.End()
	r := httptest.NewRequest("GET", "/", nil) // outside a gateway
	do(r, l)
	_, err := broken.Allow(context.Background(), "k")
	require.Error(t, err)
	assert.False(t, errors.Is(err, context.Canceled))

	tel.CheckMetrics(t, ratelimit.ScopeName, documented, "gateway.ratelimit.decisions")
	telemetrytest.CheckDoc(t, "doc.go", documented, nil)
	for _, event := range []string{ratelimit.EventLimited, ratelimit.EventError} {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: event}}, nil)
	}

	name, decision, route := ratelimit.AttrName.String, ratelimit.AttrDecision.String, semconv.HTTPRouteKey.String
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.ratelimit.decisions", name("api"), decision("allowed"), route("/a")))
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.ratelimit.decisions", name("api"), decision("limited"), route("/a")))
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.ratelimit.decisions", name("api"), decision("allowed"), route("/b")))
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.ratelimit.decisions", name("api"), decision("allowed")), "outside a gateway")

	spans := tel.SpansNamed("GET /a")
	require.Len(t, spans, 1)
	var events []string
	for _, e := range spans[0].Events() {
		events = append(events, e.Name)
		if e.Name == ratelimit.EventError {
			set := attribute.NewSet(e.Attributes...)
			mode, _ := set.Value(ratelimit.AttrFailMode)
			assert.Equal(t, "closed", mode.AsString())
			assert.True(t, set.HasValue(semconv.ErrorTypeKey))
		}
	}
	assert.Equal(t, []string{ratelimit.EventLimited, ratelimit.EventError}, events)
}
