package natsbus

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/cqrs/natsbus"

// messagingSystem is messaging.system: the semantic conventions define no
// value for NATS, so the bus uses the system's name.
var messagingSystem = semconv.MessagingSystemKey.String("nats")

// instruments are a bus's tracer and metric instruments.
type instruments struct {
	tracer      trace.Tracer
	published   metric.Int64Counter
	processed   metric.Int64Counter
	redelivered metric.Int64Counter
	deadLetters metric.Int64Counter

	// pubByTopic caches the publish span and metric options per topic.
	pubByTopic sync.Map // string -> *topicTelemetry
}

func newInstruments(tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(tp, ScopeName)}
	check := func(err error) {
		if err != nil {
			otel.Handle(err)
		}
	}
	var err error
	t.published, err = m.Int64Counter("cqrs.messages.published", metric.WithUnit("{message}"),
		metric.WithDescription("Messages stored by the stream on publication."))
	check(err)
	t.processed, err = m.Int64Counter("cqrs.messages.processed", metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries handled, by outcome."))
	check(err)
	t.redelivered, err = m.Int64Counter("cqrs.redeliveries", metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries of a message after its first."))
	check(err)
	t.deadLetters, err = m.Int64Counter("cqrs.dead_letters", metric.WithUnit("{message}"),
		metric.WithDescription("Messages given to the dead-letter function after their last delivery failed."))
	check(err)
	return t
}

// topicTelemetry holds the options of the publish spans and metrics of one
// topic, built once.
type topicTelemetry struct {
	spanName  string
	spanOpts  []trace.SpanStartOption
	countOpts []metric.AddOption
}

func (t *instruments) forTopic(topic, subject string) *topicTelemetry {
	if v, ok := t.pubByTopic.Load(topic); ok {
		return v.(*topicTelemetry)
	}
	attrs := []attribute.KeyValue{
		messagingSystem,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
		semconv.MessagingDestinationName(subject),
	}
	tt := &topicTelemetry{
		spanName:  "publish " + topic,
		spanOpts:  []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...)},
		countOpts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(messagingSystem, semconv.MessagingDestinationName(subject)))},
	}
	v, _ := t.pubByTopic.LoadOrStore(topic, tt)
	return v.(*topicTelemetry)
}

// subTelemetry holds the options of one subscription's spans and metrics,
// built once.
type subTelemetry struct {
	spanName    string
	spanOpts    []trace.SpanStartOption
	successOpts []metric.AddOption
	failureOpts []metric.AddOption
	plainOpts   []metric.AddOption
}

func newSubTelemetry(topic, subject, group, consumer string) *subTelemetry {
	base := []attribute.KeyValue{
		messagingSystem,
		semconv.MessagingDestinationName(subject),
		semconv.MessagingConsumerGroupName(group),
	}
	spanAttrs := append(base[:len(base):len(base)],
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationSubscriptionName(consumer),
	)
	with := func(kv ...attribute.KeyValue) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(append(base[:len(base):len(base)], kv...)...))}
	}
	return &subTelemetry{
		spanName:    "process " + topic,
		spanOpts:    []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(spanAttrs...)},
		successOpts: with(cqrs.AttrOutcome.String("success")),
		failureOpts: with(cqrs.AttrOutcome.String("failure")),
		plainOpts:   with(),
	}
}

// add adds 1 to c when c is enabled.
func add(ctx context.Context, c metric.Int64Counter, opts []metric.AddOption) {
	if c.Enabled(ctx) {
		c.Add(ctx, 1, opts...)
	}
}
