package rediscache_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/dbconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

var opDuration = dbconv.ClientOperationDuration{}.Name()

var (
	// server.address and db.namespace are recorded for a *redis.Client;
	// server.port unless it is 6379 (Opt-In then).
	dbRequired = []attribute.Key{semconv.DBSystemNameKey, semconv.DBOperationNameKey}
	dbOptional = []attribute.Key{semconv.ServerAddressKey, semconv.ServerPortKey, semconv.DBNamespaceKey,
		semconv.ErrorTypeKey, semconv.DBResponseStatusCodeKey}
)

// documentedSpans are the store's spans as doc.go describes them.
var documentedSpans = []telemetrytest.Span{
	{Name: "GET", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional},
	{Name: "SET", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional},
	{Name: "DEL", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional},
	{Name: "PUBLISH", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional},
	{Name: "SUBSCRIBE", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional},
	{Name: "SCAN", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional},
	{Name: "UNLINK", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional},
}

// documentedMetrics are the store's metrics as doc.go describes them.
var documentedMetrics = []telemetrytest.Instrument{
	{Name: opDuration, Kind: telemetrytest.Histogram, Unit: dbconv.ClientOperationDuration{}.Unit(),
		Required: dbRequired, Optional: dbOptional},
	{Name: "rediscache.messages", Kind: telemetrytest.Counter, Unit: "{message}", Required: []attribute.Key{rediscache.AttrOutcome}},
	{Name: "rediscache.resubscriptions", Kind: telemetrytest.Counter, Unit: "{resubscription}"},
	{Name: "rediscache.handler.panics", Kind: telemetrytest.Counter, Unit: "{panic}"},
	{Name: "rediscache.dirty.keys", Kind: telemetrytest.UpDownCounter, Unit: "{key}"},
	{Name: "rediscache.bypass", Kind: telemetrytest.UpDownCounter, Unit: "{store}"},
	{Name: "rediscache.repairs", Kind: telemetrytest.Counter, Unit: "{key}"},
	{Name: "rediscache.flushes", Kind: telemetrytest.Counter, Unit: "{flush}"},
}

// TestTelemetryConforms runs every command of the store, a server error
// included, and checks every span and data point against the documented
// telemetry, and doc.go against it.
func TestTelemetryConforms(t *testing.T) {
	client := sharedClient(t)
	for _, optIn := range []bool{false, true} {
		tel := telemetrytest.New(t)
		opts := []rediscache.Option{rediscache.WithTracerProvider(tel.TracerProvider), rediscache.WithMeterProvider(tel.MeterProvider)}
		if optIn {
			opts = append(opts, rediscache.WithOptInAttributes())
		}
		s := newStore(t, client, opts...)
		ctx := ctxWithin(t, 5*time.Second)
		received := make(chan struct{}, 1)
		stop, err := s.Subscribe(ctx, func(string, string) { received <- struct{}{} }, nil)
		require.NoError(t, err)
		require.NoError(t, s.Set(ctx, "k", []byte("v"), time.Minute))
		_, err = s.Get(ctx, "k")
		require.NoError(t, err)
		require.NoError(t, s.Delete(ctx, "k"))
		require.NoError(t, s.Publish(ctx, "src", "k"))
		<-received
		require.NoError(t, client.Publish(ctx, s.Channel(), "not a message").Err())
		require.Eventually(t, func() bool {
			return tel.Int64(t, "rediscache.messages", rediscache.AttrOutcome.String("malformed")) == 1
		}, 5*time.Second, 5*time.Millisecond)
		stop()
		require.NoError(t, client.LPush(ctx, s.Prefix()+"list", "x").Err())
		_, err = s.Get(ctx, "list")
		require.Error(t, err)

		tel.CheckSpans(t, rediscache.ScopeName, documentedSpans, "GET", "SET", "DEL", "PUBLISH", "SUBSCRIBE")
		tel.CheckMetrics(t, rediscache.ScopeName, documentedMetrics, opDuration, "rediscache.messages")
	}
	telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, documentedSpans)
}

// TestTelemetry checks the names and values of the attributes of the
// store's spans and durations.
func TestTelemetry(t *testing.T) {
	client := sharedClient(t)
	tel := telemetrytest.New(t)
	s := newStore(t, client, rediscache.WithTracerProvider(tel.TracerProvider), rediscache.WithMeterProvider(tel.MeterProvider))
	ctx := ctxWithin(t, 5*time.Second)
	ctx, parent := tel.TracerProvider.Tracer("test").Start(ctx, "parent")

	require.NoError(t, s.Set(ctx, "k", []byte("v"), 0))
	_, err := s.Get(ctx, "k")
	require.NoError(t, err)
	_, err = s.Get(ctx, "missing")
	require.ErrorIs(t, err, cache.ErrNotFound)
	require.NoError(t, s.Delete(ctx, "k"))
	require.NoError(t, s.Publish(ctx, "src", "k"))
	stop, err := s.Subscribe(ctx, func(string, string) {}, nil)
	require.NoError(t, err)
	stop()
	parent.End()

	server := serverAttrs(t, client.Options().Addr, false)
	var names []string
	for _, span := range tel.Spans.Ended() {
		if span.Name() == "parent" {
			continue
		}
		names = append(names, span.Name())
		assert.Equal(t, trace.SpanKindClient, span.SpanKind(), "span %s", span.Name())
		assert.Equal(t, parent.SpanContext().SpanID(), span.Parent().SpanID(), "span %s's parent", span.Name())
		assert.Equal(t, codes.Unset, span.Status().Code, "span %s's status (a missing key is no error)", span.Name())
		assert.ElementsMatch(t, append([]attribute.KeyValue{semconv.DBOperationName(span.Name())}, server...), span.Attributes(),
			"span %s", span.Name())
	}
	assert.Equal(t, []string{"SET", "GET", "GET", "DEL", "PUBLISH", "SUBSCRIBE"}, names)
	assert.Equal(t, uint64(2), tel.HistogramCount(t, opDuration, append(server, semconv.DBOperationName("GET"))...))
	assert.Equal(t, dbconv.ClientOperationDuration{}.Unit(), tel.Metric(t, opDuration).Unit)
}

// serverAttrs returns the attributes of the server at addr: server.port
// only at another port than Redis's 6379, or with optIn.
func serverAttrs(t *testing.T, addr string, optIn bool) []attribute.KeyValue {
	t.Helper()
	host, port := splitAddr(t, addr)
	attrs := []attribute.KeyValue{semconv.DBSystemNameRedis, semconv.ServerAddress(host), semconv.DBNamespace("0")}
	if port != 6379 || optIn {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return attrs
}

// TestServerErrorTelemetry protects the attributes of a Redis error reply:
// db.response.status_code is its prefix, as the conventions for Redis say,
// and error.type the same, on the span and on the duration. error.type
// used to be go-redis's internal type name, and there was no status code.
func TestServerErrorTelemetry(t *testing.T) {
	client := sharedClient(t)
	tel := telemetrytest.New(t)
	s := newStore(t, client, rediscache.WithTracerProvider(tel.TracerProvider), rediscache.WithMeterProvider(tel.MeterProvider))
	ctx := ctxWithin(t, 5*time.Second)
	require.NoError(t, client.LPush(ctx, s.Prefix()+"list", "x").Err()) // a list, not a string
	_, err := s.Get(ctx, "list")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "WRONGTYPE"), "Get of a list = %v; want WRONGTYPE", err)
	require.False(t, errors.Is(err, cache.ErrNotFound))

	spans := tel.Spans.Ended()
	require.Len(t, spans, 1)
	assert.Equal(t, codes.Error, spans[0].Status().Code)
	attrs := telemetrytest.Attrs(spans[0])
	assert.Equal(t, "WRONGTYPE", attrs[semconv.DBResponseStatusCodeKey].AsString(), "db.response.status_code")
	assert.Equal(t, "WRONGTYPE", attrs[semconv.ErrorTypeKey].AsString(), "error.type")
	assert.Equal(t, uint64(1), tel.HistogramCount(t, opDuration, append(serverAttrs(t, client.Options().Addr, false),
		semconv.DBOperationName("GET"), semconv.ErrorTypeKey.String("WRONGTYPE"), semconv.DBResponseStatusCode("WRONGTYPE"))...),
		tel.Describe(t, opDuration))
}

// TestTelemetryOfFailures checks that a round trip that reached no server
// is an error on its span and in its duration's attributes, without a
// status code.
func TestTelemetryOfFailures(t *testing.T) {
	tel := telemetrytest.New(t)
	port := freePort(t)
	dead := newClient(t, "127.0.0.1:"+itoa(port))
	s, err := rediscache.New(dead, rediscache.WithTracerProvider(tel.TracerProvider), rediscache.WithMeterProvider(tel.MeterProvider))
	require.NoError(t, err)
	_, err = s.Get(ctxWithin(t, 500*time.Millisecond), "k")
	require.Error(t, err)
	require.False(t, errors.Is(err, cache.ErrNotFound), "Get from a dead server = %v; want an error other than ErrNotFound", err)

	spans := tel.Spans.Ended()
	require.Len(t, spans, 1)
	assert.Equal(t, codes.Error, spans[0].Status().Code)
	attrs := telemetrytest.Attrs(spans[0])
	errType := attrs[semconv.ErrorTypeKey].AsString()
	assert.NotEmpty(t, errType, "error.type on the span")
	assert.NotContains(t, errType, "internal", "error.type names no internal type")
	assert.NotContains(t, attrs, semconv.DBResponseStatusCodeKey, "no reply, no status code")
	assert.Equal(t, uint64(1), tel.HistogramCount(t, opDuration,
		semconv.DBSystemNameRedis, semconv.DBOperationName("GET"), semconv.ServerAddress("127.0.0.1"), semconv.ServerPort(port),
		semconv.DBNamespace("0"), semconv.ErrorTypeKey.String(errType)),
		tel.Describe(t, opDuration))
}

// TestDefaultPortIsOptIn: server.port 6379 is recorded only under
// WithOptInAttributes.
func TestDefaultPortIsOptIn(t *testing.T) {
	for _, optIn := range []bool{false, true} {
		tel := telemetrytest.New(t)
		opts := []rediscache.Option{rediscache.WithTracerProvider(tel.TracerProvider)}
		if optIn {
			opts = append(opts, rediscache.WithOptInAttributes())
		}
		lazy := newClient(t, "127.0.0.1:6379")
		s, err := rediscache.New(lazy, opts...)
		require.NoError(t, err)
		_, _ = s.Get(ctxWithin(t, 500*time.Millisecond), "k") // whether or not a server answers
		_, hasPort := telemetrytest.Attrs(tel.Spans.Ended()[0])[semconv.ServerPortKey]
		assert.Equal(t, optIn, hasPort, "server.port 6379 with Opt-In %v", optIn)
	}
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	require.Positive(t, i)
	port, err := atoi(addr[i+1:])
	require.NoError(t, err)
	return addr[:i], port
}
