package auth_test

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// documented is the package's telemetry as doc.go describes it.
var documented = []telemetrytest.Instrument{
	{Name: "gateway.auth.failures", Kind: telemetrytest.Counter, Unit: "{request}",
		Required: []attribute.Key{auth.AttrReason}, Optional: []attribute.Key{semconv.HTTPRouteKey}},
	{Name: "gateway.auth.jwks.failures", Kind: telemetrytest.Counter, Unit: "{fetch}",
		Required: []attribute.Key{semconv.ServerAddressKey, semconv.ErrorTypeKey}},
}

// TestTelemetryConforms refuses requests for several reasons on two routes
// and outside a gateway, fails a key-set fetch, and checks every data point
// against the documented instruments, and doc.go against them.
func TestTelemetryConforms(t *testing.T) {
	tel := telemetrytest.New(t)
	srv := newJWKSServer(t)
	srv.add(t, "k1", rsa1, "RS256")
	a := newAuth(t, auth.WithJWKS(srv.URL, "RS256"), auth.WithAPIKeys(ciKey), auth.WithMeterProvider(tel.MeterProvider))
	srv.setDown(true)

	onRoute := func(route string, r *http.Request) *http.Request {
		return r.WithContext(gateway.WithRoute(context.Background(), route))
	}
	good := sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice"))
	requests := []struct {
		r    *http.Request
		opts []auth.RouteOption
	}{
		{onRoute("GET /orders/{id}", bearerRequest("")), nil},
		{onRoute("GET /orders/{id}", bearerRequest("")), nil},
		{onRoute("GET /orders/{id}", bearerRequest("x.y")), nil},
		{onRoute("POST /orders", bearerRequest(sign(t, jwt.SigningMethodRS256, rsa2, "k9", claims("bob")))), nil},
		{onRoute("POST /orders", bearerRequest(good)), []auth.RouteOption{auth.RequireScopes("orders:write")}},
		{onRoute("POST /orders", apiKeyRequest("X-API-Key", "wrong-0123456789abcdef")), nil},
		{bearerRequest("").WithContext(context.Background()), nil}, // no route in the context
		{onRoute("POST /orders", bearerRequest(good)), nil},
	}
	for _, req := range requests {
		serve(t, a, req.r, req.opts...)
	}

	tel.CheckMetrics(t, auth.ScopeName, documented, "gateway.auth.failures", "gateway.auth.jwks.failures")
	telemetrytest.CheckDoc(t, "doc.go", documented, nil)
	for _, event := range []string{auth.EventFailure, auth.EventAuthenticated, string(auth.AttrScheme)} {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: event}}, nil)
	}

	route := semconv.HTTPRouteKey.String
	reason := func(r auth.Reason) attribute.KeyValue { return auth.AttrReason.String(string(r)) }
	assert.EqualValues(t, 2, tel.Int64(t, "gateway.auth.failures", reason(auth.ReasonMissing), route("/orders/{id}")))
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.auth.failures", reason(auth.ReasonMalformed), route("/orders/{id}")))
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.auth.failures", reason(auth.ReasonUnknownKey), route("/orders")))
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.auth.failures", reason(auth.ReasonForbidden), route("/orders")))
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.auth.failures", reason(auth.ReasonAPIKey), route("/orders")))
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.auth.failures", reason(auth.ReasonMissing)), "outside a gateway")
	host, _, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	assert.EqualValues(t, 1, tel.Int64(t, "gateway.auth.jwks.failures",
		semconv.ServerAddressKey.String(host), semconv.ErrorTypeKey.String("gateway.auth.jwks_status")))
}

// TestSpanEvents: a failure adds gateway.auth.failure with its reason to
// the request's span, a success gateway.auth.authenticated with the
// scheme; neither carries the subject.
func TestSpanEvents(t *testing.T) {
	tel := telemetrytest.New(t)
	a := staticAuth(t)
	ctx, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "GET /orders/{id}")
	good := bearerRequest(sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", claims("alice")))
	serve(t, a, good.WithContext(ctx))
	serve(t, a, bearerRequest("x.y").WithContext(ctx))
	span.End()

	spans := tel.SpansNamed("GET /orders/{id}")
	require.Len(t, spans, 1)
	events := spans[0].Events()
	require.Len(t, events, 2)
	assert.Equal(t, auth.EventAuthenticated, events[0].Name)
	assert.Equal(t, []attribute.KeyValue{auth.AttrScheme.String("jwt")}, events[0].Attributes)
	assert.Equal(t, auth.EventFailure, events[1].Name)
	assert.Equal(t, []attribute.KeyValue{auth.AttrReason.String("malformed")}, events[1].Attributes)
}
