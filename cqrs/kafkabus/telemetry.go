package kafkabus

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/msgtel"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/cqrs/kafkabus"

// The metrics of the package besides the messaging ones.
const (
	// MetricLag is the name of the gauge of a subscription's consumer lag
	// per partition.
	MetricLag = "kafkabus.consumer.lag"
	// MetricUnidentified is the name of the counter of deliveries of
	// records that carried no message ID.
	MetricUnidentified = "kafkabus.unidentified_messages"
)

// MaxTopicTelemetry is how many topics a bus keeps the telemetry options
// (span name and attribute sets) of. Publishing to a topic beyond them
// builds its options on each publish, at the cost of a few allocations.
const MaxTopicTelemetry = 256

// The messaging.operation.name values.
const (
	opPublish = "publish"
	opProcess = "process"
	opCommit  = "commit" // a commit of the offsets of handled records
)

// instruments are a bus's tracer and metric instruments, with the
// telemetry options of its topics, built once per topic.
type instruments struct {
	tracer trace.Tracer
	spans  telemetry.SpanGate // skips spans that could not record
	meter  metric.Meter
	optIn  bool
	msgtel.Instruments
	unidentified metric.Int64Counter
	lag          metric.Int64ObservableGauge

	topics  sync.Map // topic -> *topicTelemetry, at most MaxTopicTelemetry
	nTopics atomic.Int64
}

func newInstruments(c config) *instruments {
	m := telemetry.Meter(c.meterProvider, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(c.tracerProvider, ScopeName), meter: m, optIn: c.optIn, Instruments: msgtel.New(m)}
	t.spans = telemetry.NewSpanGate(c.tracerProvider, t.tracer)
	var err error
	t.unidentified, err = m.Int64Counter(MetricUnidentified, metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries of records that carried no message ID, handled with one derived from their partition and offset."))
	if err != nil {
		otel.Handle(err)
	}
	t.lag, err = m.Int64ObservableGauge(MetricLag, metric.WithUnit("{message}"),
		metric.WithDescription("Records of a partition assigned to a subscription that its handler has not finished: the partition's high watermark minus the offset after the last record handled."))
	if err != nil {
		otel.Handle(err)
	}
	return t
}

var messagingSystem = semconv.MessagingSystemKafka

// with returns base followed by kv, in a slice of its own.
func with(base []attribute.KeyValue, kv ...attribute.KeyValue) []attribute.KeyValue {
	return append(base[:len(base):len(base)], kv...)
}

// topicTelemetry holds the options of the publish spans and metrics of one
// topic.
type topicTelemetry struct {
	spanName string
	spanOpts []trace.SpanStartOption
	sentOpts []metric.AddOption
	durOpts  []metric.RecordOption
	sentBase []attribute.KeyValue
	durBase  []attribute.KeyValue
}

func newTopicTelemetry(ktopic string) *topicTelemetry {
	sent := []attribute.KeyValue{messagingSystem, semconv.MessagingOperationName(opPublish), semconv.MessagingDestinationName(ktopic)}
	dur := with(sent, semconv.MessagingOperationTypeSend)
	return &topicTelemetry{
		spanName: opPublish + " " + ktopic,
		spanOpts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(dur...)},
		sentOpts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(sent...))},
		durOpts:  []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(dur...))},
		sentBase: sent,
		durBase:  dur,
	}
}

// forTopic returns the publish telemetry of the Kafka topic ktopic.
func (t *instruments) forTopic(ktopic string) *topicTelemetry {
	if v, ok := t.topics.Load(ktopic); ok {
		return v.(*topicTelemetry)
	}
	tt := newTopicTelemetry(ktopic)
	if t.nTopics.Add(1) > MaxTopicTelemetry {
		t.nTopics.Add(-1)
		return tt
	}
	if v, loaded := t.topics.LoadOrStore(ktopic, tt); loaded {
		t.nTopics.Add(-1)
		return v.(*topicTelemetry)
	}
	return tt
}

// partTelemetry holds the options of the spans and metrics of one
// partition of a subscription.
type partTelemetry struct {
	spanName     string
	spanOpts     []trace.SpanStartOption
	consumedOpts []metric.AddOption
	processOpts  []metric.RecordOption
	processBase  []attribute.KeyValue
	groupOpts    []metric.AddOption // cqrs.redeliveries, cqrs.dead_letters
	lagOpts      []metric.ObserveOption
}

func newPartTelemetry(ktopic, group string, partition int32) *partTelemetry {
	dest := semconv.MessagingDestinationName(ktopic)
	grp := semconv.MessagingConsumerGroupName(group)
	part := semconv.MessagingDestinationPartitionID(strconv.FormatInt(int64(partition), 10))
	process := []attribute.KeyValue{messagingSystem, semconv.MessagingOperationName(opProcess), dest, grp, part}
	set := attribute.NewSet(process...)
	return &partTelemetry{
		spanName: opProcess + " " + ktopic,
		spanOpts: []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(with(process, semconv.MessagingOperationTypeProcess)...),
		},
		consumedOpts: []metric.AddOption{metric.WithAttributeSet(set)},
		processOpts:  []metric.RecordOption{metric.WithAttributeSet(set)},
		processBase:  process,
		groupOpts:    []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(messagingSystem, dest, grp))},
		lagOpts:      []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(messagingSystem, dest, grp, part))},
	}
}

// commitTelemetry returns the attributes of a subscription's commits.
func commitAttrs(ktopic, group string) []attribute.KeyValue {
	return []attribute.KeyValue{messagingSystem, semconv.MessagingOperationName(opCommit),
		semconv.MessagingOperationTypeSettle, semconv.MessagingDestinationName(ktopic), semconv.MessagingConsumerGroupName(group)}
}

// recordFailure records d in h with the attributes base and the
// error.type of err, building the set only when h records.
func recordFailure(ctx context.Context, h metric.Float64Histogram, d float64, base []attribute.KeyValue, err error) {
	if h.Enabled(ctx) {
		h.Record(ctx, d, metric.WithAttributeSet(attribute.NewSet(with(base, telemetry.ErrorType(err))...)))
	}
}

// addFailure adds n to c with the attributes base and the error.type of
// err, building the set only when c records.
func addFailure(ctx context.Context, c metric.Int64Counter, n int64, base []attribute.KeyValue, err error) {
	if c.Enabled(ctx) {
		c.Add(ctx, n, metric.WithAttributeSet(attribute.NewSet(with(base, telemetry.ErrorType(err))...)))
	}
}

// seconds returns the seconds since start.
func seconds(start time.Time) float64 { return time.Since(start).Seconds() }
