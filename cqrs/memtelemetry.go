package cqrs

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/messagingconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// The messaging.operation.name values of a [MemoryBus]: publish and process,
// and the settlements of a delivery. cqrs/natsbus uses the same names.
const (
	opPublish = "publish"
	opProcess = "process"
	opAck     = "ack"  // handled: removed from the group
	opNak     = "nak"  // failed: handed back for redelivery after the backoff
	opTerm    = "term" // failed for the last time: dead-lettered and removed
)

// settlement is how a delivery is settled.
type settlement int

const (
	settleAck settlement = iota
	settleNak
	settleTerm
	settlements
)

var settleNames = [settlements]string{opAck, opNak, opTerm}

// durationBuckets are the bucket boundaries, in seconds, of the messaging
// duration histograms (messaging.client.operation.duration and
// messaging.process.duration), as the semantic conventions advise.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// memTelemetry holds a memory bus's tracer and instruments, created once.
type memTelemetry struct {
	tracer      trace.Tracer
	optIn       bool
	opDuration  metric.Float64Histogram // messaging.client.operation.duration
	sent        metric.Int64Counter     // messaging.client.sent.messages
	consumed    metric.Int64Counter     // messaging.client.consumed.messages
	process     metric.Float64Histogram // messaging.process.duration
	redelivered metric.Int64Counter     // cqrs.redeliveries
	deadLetters metric.Int64Counter     // cqrs.dead_letters
}

func newMemTelemetry(c busConfig) *memTelemetry {
	m := telemetry.Meter(c.mp, ScopeName)
	check := func(err error) {
		if err != nil {
			otel.Handle(err)
		}
	}
	t := &memTelemetry{tracer: telemetry.Tracer(c.tp, ScopeName), optIn: c.optIn}
	opDuration, err := messagingconv.NewClientOperationDuration(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	sent, err := messagingconv.NewClientSentMessages(m)
	check(err)
	consumed, err := messagingconv.NewClientConsumedMessages(m)
	check(err)
	process, err := messagingconv.NewProcessDuration(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	t.opDuration, t.sent, t.consumed, t.process = opDuration.Inst(), sent.Inst(), consumed.Inst(), process.Inst()
	t.redelivered, err = m.Int64Counter(MetricRedeliveries, metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries of a message to a consumer group after its first."))
	check(err)
	t.deadLetters, err = m.Int64Counter(MetricDeadLetters, metric.WithUnit("{message}"),
		metric.WithDescription("Messages given to the dead-letter function after their last delivery failed."))
	check(err)
	return t
}

// The names of the metrics both buses record besides the semantic
// conventions' ones.
const (
	// MetricRedeliveries counts the deliveries of a message to a consumer
	// group after its first: those whose [Message.Delivery] is above 1.
	MetricRedeliveries = "cqrs.redeliveries"
	// MetricDeadLetters counts the messages given to the DeadLetter
	// function of their subscription.
	MetricDeadLetters = "cqrs.dead_letters"
)

// topicTelemetry is the telemetry of the publications to a topic of a
// memory bus, built when the topic is first used.
type topicTelemetry struct {
	spanName string
	spanOpts []trace.SpanStartOption
	sentOpts []metric.AddOption
	durOpts  []metric.RecordOption
	sentBase []attribute.KeyValue // sentOpts' attributes, for a failure
	durBase  []attribute.KeyValue // durOpts' attributes, for a failure
}

func newTopicTelemetry(topic string) *topicTelemetry {
	system := semconv.MessagingSystemKey.String(MemorySystem)
	dest := semconv.MessagingDestinationName(topic)
	op := semconv.MessagingOperationName(opPublish)
	sent := []attribute.KeyValue{system, op, dest}
	dur := []attribute.KeyValue{system, op, semconv.MessagingOperationTypeSend, dest}
	attrs := trace.WithAttributes(system, dest, semconv.MessagingOperationTypeSend, op)
	return &topicTelemetry{
		spanName: opPublish + " " + topic,
		spanOpts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), attrs},
		sentOpts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(sent...))},
		durOpts:  []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(dur...))},
		sentBase: sent,
		durBase:  dur,
	}
}

// groupTelemetry is the telemetry of the deliveries to a consumer group of
// a memory bus, built when the group is first used.
type groupTelemetry struct {
	spanName     string
	spanOpts     []trace.SpanStartOption
	consumedOpts []metric.AddOption
	processOpts  []metric.RecordOption
	processBase  []attribute.KeyValue // processOpts' attributes, for a failure
	groupOpts    []metric.AddOption   // of cqrs.redeliveries and cqrs.dead_letters
	settleOpts   [settlements][]metric.RecordOption
}

func newGroupTelemetry(topic, group string) *groupTelemetry {
	system := semconv.MessagingSystemKey.String(MemorySystem)
	dest := semconv.MessagingDestinationName(topic)
	grp := semconv.MessagingConsumerGroupName(group)
	op := semconv.MessagingOperationName(opProcess)
	process := []attribute.KeyValue{system, op, dest, grp}
	set := attribute.NewSet(process...)
	g := &groupTelemetry{
		spanName: opProcess + " " + topic,
		spanOpts: []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(system, dest, grp, semconv.MessagingOperationTypeProcess, op),
		},
		consumedOpts: []metric.AddOption{metric.WithAttributeSet(set)},
		processOpts:  []metric.RecordOption{metric.WithAttributeSet(set)},
		processBase:  process,
		groupOpts:    []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(system, dest, grp))},
	}
	for i, name := range settleNames {
		g.settleOpts[i] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
			system, semconv.MessagingOperationName(name), semconv.MessagingOperationTypeSettle, dest, grp))}
	}
	return g
}

// recordFailure records d in h with the attributes base and the
// error.type of err, building the set only when h records.
func recordFailure(ctx context.Context, h metric.Float64Histogram, d float64, base []attribute.KeyValue, err error) {
	if !h.Enabled(ctx) {
		return
	}
	h.Record(ctx, d, metric.WithAttributeSet(attribute.NewSet(append(base[:len(base):len(base)], telemetry.ErrorType(err))...)))
}

// addFailure adds n to c with the attributes base and the error.type of
// err, building the set only when c records.
func addFailure(ctx context.Context, c metric.Int64Counter, n int64, base []attribute.KeyValue, err error) {
	if !c.Enabled(ctx) {
		return
	}
	c.Add(ctx, n, metric.WithAttributeSet(attribute.NewSet(append(base[:len(base):len(base)], telemetry.ErrorType(err))...)))
}

// seconds returns the seconds since start.
func seconds(start time.Time) float64 { return time.Since(start).Seconds() }
