package rediscache

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/dbconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/cache/rediscache"

// AttrOutcome is the attribute of the rediscache.messages metric saying
// what became of a message: "handled" or "malformed".
const AttrOutcome = attribute.Key("rediscache.outcome")

// The Redis commands the store sends, as recorded in db.operation.name.
const (
	opGet = iota
	opSet
	opDel
	opPublish
	opSubscribe
	opScan
	opUnlink
	numOps
)

var opNames = [numOps]string{"GET", "SET", "DEL", "PUBLISH", "SUBSCRIBE", "SCAN", "UNLINK"}

// defaultPort is Redis's port, which server.port is left out for unless
// Opt-In attributes are asked for.
const defaultPort = 6379

// instruments are a store's tracer and metric instruments, with the span
// options and attribute sets they use built once.
type instruments struct {
	tracer        trace.Tracer
	spanOpts      [numOps][]trace.SpanStartOption
	attrs         [numOps][]attribute.KeyValue // for error sets
	duration      metric.Float64Histogram
	durationOpts  [numOps][]metric.RecordOption
	messages      metric.Int64Counter
	handledOpts   []metric.AddOption
	malformedOpts []metric.AddOption
	resubscribes  metric.Int64Counter
	panics        metric.Int64Counter

	// The repair of keys whose writes failed, reported when collected.
	dirty   atomic.Int64 // keys remembered
	bypass  atomic.Int64 // 1 while the store is suspect
	repairs telemetry.Counter
	flushes telemetry.Counter
}

func newInstruments(client redis.UniversalClient, tp trace.TracerProvider, mp metric.MeterProvider, optIn bool) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(tp, ScopeName)}
	check := func(err error) {
		if err != nil {
			otel.Handle(err)
		}
	}
	var err error
	var d dbconv.ClientOperationDuration
	t.duration, err = m.Float64Histogram(d.Name(), metric.WithUnit(d.Unit()),
		metric.WithDescription(d.Description()),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	t.messages, err = m.Int64Counter("rediscache.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Invalidation messages received, by outcome."))
	check(err)
	t.resubscribes, err = m.Int64Counter("rediscache.resubscriptions", metric.WithUnit("{resubscription}"),
		metric.WithDescription("Times a lost subscription to the invalidation channel was restored."))
	check(err)
	t.panics, err = m.Int64Counter("rediscache.handler.panics", metric.WithUnit("{panic}"),
		metric.WithDescription("Panics of the subscription's handler or reconnected callback, recovered."))
	check(err)

	server := serverAttrs(client, optIn)
	for op := range numOps {
		attrs := append([]attribute.KeyValue{semconv.DBSystemNameRedis, semconv.DBOperationName(opNames[op])}, server...)
		t.attrs[op] = attrs
		t.spanOpts[op] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)}
		t.durationOpts[op] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	}
	t.handledOpts = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(AttrOutcome.String("handled")))}
	t.malformedOpts = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(AttrOutcome.String("malformed")))}
	return t
}

// observe registers the callback reporting the repair of s's dirty keys.
func (t *instruments) observe(s *Store, mp metric.MeterProvider) {
	m := telemetry.Meter(mp, ScopeName)
	dirty, err1 := m.Int64ObservableUpDownCounter("rediscache.dirty.keys", metric.WithUnit("{key}"),
		metric.WithDescription("Keys whose write, delete or announcement failed, not yet repaired; Get misses them."))
	bypass, err2 := m.Int64ObservableUpDownCounter("rediscache.bypass", metric.WithUnit("{store}"),
		metric.WithDescription("1 while the store does not trust Redis and every Get misses, until it has flushed its prefix."))
	if err := errors.Join(err1, err2); err != nil {
		otel.Handle(err)
		return
	}
	repairs := telemetry.Int64ObservableCounter(m, "rediscache.repairs", metric.WithUnit("{key}"),
		metric.WithDescription("Keys whose write failed that the store deleted and announced once Redis answered again."))
	flushes := telemetry.Int64ObservableCounter(m, "rediscache.flushes", metric.WithUnit("{flush}"),
		metric.WithDescription("Deletions of every key under the prefix, after more writes failed than the store remembers."))
	telemetry.ObserveState(m, s, t, func(t *instruments, o metric.Observer) {
		o.ObserveInt64(dirty, t.dirty.Load())
		o.ObserveInt64(bypass, t.bypass.Load())
		o.ObserveInt64(repairs, t.repairs.Load())
		o.ObserveInt64(flushes, t.flushes.Load())
	}, dirty, bypass, repairs, flushes)
}

// durationBuckets are the boundaries, in seconds, that the semantic
// conventions advise for db.client.operation.duration.
var durationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// serverAttrs returns server.address, server.port (unless it is Redis's
// default and optIn is false: the conventions make it Opt-In then) and
// db.namespace for a client connected to one server (a *redis.Client);
// none for a cluster, a ring or a Sentinel-backed client, whose server
// changes from call to call.
func serverAttrs(client redis.UniversalClient, optIn bool) []attribute.KeyValue {
	c, ok := client.(interface{ Options() *redis.Options })
	if !ok {
		return nil
	}
	o := c.Options()
	if o == nil {
		return nil
	}
	var attrs []attribute.KeyValue
	if o.Network == "unix" {
		attrs = append(attrs, semconv.ServerAddress(o.Addr))
	} else if host, port, err := net.SplitHostPort(o.Addr); err == nil {
		attrs = append(attrs, semconv.ServerAddress(host))
		if p, err := strconv.Atoi(port); err == nil && (p != defaultPort || optIn) {
			attrs = append(attrs, semconv.ServerPort(p))
		}
	}
	if len(attrs) == 0 {
		return nil // a failover client's Addr names no server
	}
	return append(attrs, semconv.DBNamespace(strconv.Itoa(o.DB)))
}

// start starts the span of one round trip.
func (t *instruments) start(ctx context.Context, op int) (context.Context, trace.Span, time.Time) {
	ctx, span := t.tracer.Start(ctx, opNames[op], t.spanOpts[op]...)
	return ctx, span, time.Now()
}

// end records the round trip's duration and ends its span. redis.Nil, a
// missing key, is not an error.
func (t *instruments) end(ctx context.Context, span trace.Span, op int, start time.Time, err error) {
	if err != nil && errors.Is(err, redis.Nil) {
		err = nil
	}
	if t.duration.Enabled(ctx) {
		d := time.Since(start).Seconds()
		if err == nil {
			t.duration.Record(ctx, d, t.durationOpts[op]...)
		} else {
			attrs := append(t.attrs[op][:len(t.attrs[op]):len(t.attrs[op])], telemetry.ErrorType(err))
			if prefix := telemetry.RedisErrorPrefix(err); prefix != "" {
				attrs = append(attrs, semconv.DBResponseStatusCode(prefix))
			}
			t.duration.Record(ctx, d, metric.WithAttributes(attrs...))
		}
	}
	if err != nil && span.IsRecording() {
		telemetry.RecordError(span, err)
		if prefix := telemetry.RedisErrorPrefix(err); prefix != "" {
			span.SetAttributes(semconv.DBResponseStatusCode(prefix))
		}
	}
	span.End()
}
