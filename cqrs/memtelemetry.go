package cqrs

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/msgtel"
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

// memTelemetry holds a memory bus's tracer and instruments, created once.
type memTelemetry struct {
	tracer trace.Tracer
	optIn  bool
	msgtel.Instruments
}

func newMemTelemetry(c busConfig) *memTelemetry {
	return &memTelemetry{
		tracer:      telemetry.Tracer(c.tp, ScopeName),
		optIn:       c.optIn,
		Instruments: msgtel.New(telemetry.Meter(c.mp, ScopeName)),
	}
}

// The names of the metrics both buses record besides the semantic
// conventions' ones.
const (
	// MetricRedeliveries counts the deliveries of a message to a consumer
	// group after its first: those whose [Message.Delivery] is above 1.
	MetricRedeliveries = msgtel.Redeliveries
	// MetricDeadLetters counts the messages given to the DeadLetter
	// function of their subscription.
	MetricDeadLetters = msgtel.DeadLetters
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
