package kafkabus_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/messagingconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// The attribute keys of the bus's spans and metrics.
var (
	system    = semconv.MessagingSystemKey
	opName    = semconv.MessagingOperationNameKey
	opType    = semconv.MessagingOperationTypeKey
	dest      = semconv.MessagingDestinationNameKey
	group     = semconv.MessagingConsumerGroupNameKey
	partition = semconv.MessagingDestinationPartitionIDKey
	offset    = semconv.MessagingKafkaOffsetKey
	key       = semconv.MessagingKafkaMessageKeyKey
	errType   = semconv.ErrorTypeKey
	msgID     = semconv.MessagingMessageIDKey
	bodySize  = semconv.MessagingMessageBodySizeKey
)

// documentedMetrics are the package's metrics as doc.go describes them.
var documentedMetrics = []telemetrytest.Instrument{
	{Name: messagingconv.ClientOperationDuration{}.Name(), Kind: telemetrytest.Histogram,
		Unit:     messagingconv.ClientOperationDuration{}.Unit(),
		Required: []attribute.Key{system, opName, opType, dest},
		Optional: []attribute.Key{group, errType}},
	{Name: messagingconv.ClientSentMessages{}.Name(), Kind: telemetrytest.Counter,
		Unit:     messagingconv.ClientSentMessages{}.Unit(),
		Required: []attribute.Key{system, opName, dest},
		Optional: []attribute.Key{errType}},
	{Name: messagingconv.ClientConsumedMessages{}.Name(), Kind: telemetrytest.Counter,
		Unit:     messagingconv.ClientConsumedMessages{}.Unit(),
		Required: []attribute.Key{system, opName, dest, group, partition}},
	{Name: messagingconv.ProcessDuration{}.Name(), Kind: telemetrytest.Histogram,
		Unit:     messagingconv.ProcessDuration{}.Unit(),
		Required: []attribute.Key{system, opName, dest, group, partition},
		Optional: []attribute.Key{errType}},
	{Name: cqrs.MetricRedeliveries, Kind: telemetrytest.Counter, Unit: "{message}",
		Required: []attribute.Key{system, dest, group}},
	{Name: cqrs.MetricDeadLetters, Kind: telemetrytest.Counter, Unit: "{message}",
		Required: []attribute.Key{system, dest, group}},
	{Name: kafkabus.MetricUnidentified, Kind: telemetrytest.Counter, Unit: "{message}",
		Required: []attribute.Key{system, dest, group}},
	{Name: kafkabus.MetricLag, Kind: telemetrytest.Gauge, Unit: "{message}",
		Required: []attribute.Key{system, dest, group, partition}},
}

// documentedSpans are the package's spans as doc.go describes them.
var documentedSpans = []telemetrytest.Span{
	{Name: "publish {topic}", Kind: trace.SpanKindProducer,
		Required: []attribute.Key{system, opName, opType, dest, msgID, key},
		Optional: []attribute.Key{bodySize, errType, partition, offset}},
	{Name: "process {topic}", Kind: trace.SpanKindConsumer, Parented: true,
		Required: []attribute.Key{system, opName, opType, dest, group, partition, offset, msgID, cqrs.AttrDelivery},
		Optional: []attribute.Key{bodySize, errType, key}},
}

// TestTelemetryConforms runs a bus through a success, a redelivery, a dead
// letter, a panic, a record without ID, a failed publish, a backlog (the
// lag gauge) and a Close (a commit), checks every span and data point
// against the documented telemetry, and doc.go against it. Not parallel:
// it sets the global propagator.
func TestTelemetryConforms(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	tel := telemetrytest.New(t)
	c := newCluster(t, 3)
	opts := []kafkabus.Option{kafkabus.WithTracerProvider(tel.TracerProvider),
		kafkabus.WithMeterProvider(tel.MeterProvider), kafkabus.WithOptInAttributes()}
	bus := newBus(t, c, opts...)
	ctx := ctxWithin(t, 20*time.Second)
	require.NoError(t, bus.Setup(ctx, "orders", "backlog"))

	dead := make(chan struct{}, 2)
	handled := &collector{}
	subscribe(t, bus, "orders", "billing", func(ctx context.Context, m cqrs.Message) error {
		switch m.ID {
		case "bad":
			return errors.New("boom")
		case "panic":
			panic("kaboom")
		}
		return handled.handle(ctx, m)
	}, cqrs.WithMaxDeliver(2), cqrs.WithRedeliveryBackoff(func(int) time.Duration { return time.Millisecond }),
		cqrs.WithDeadLetter(func(context.Context, cqrs.Message, error) { dead <- struct{}{} }))
	require.NoError(t, bus.Publish(ctx, "orders",
		cqrs.Message{ID: "good", Data: []byte("{}")}, cqrs.Message{ID: "bad"}, cqrs.Message{ID: "panic"}))
	// A record from another producer: no ID, but a trace context.
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})), carrier)
	raw := &kgo.Record{Topic: bus.KafkaTopic("orders"), Value: []byte("{}")}
	for k, v := range carrier {
		raw.Headers = append(raw.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, fastClient...)...)
	require.NoError(t, err)
	require.NoError(t, cl.ProduceSync(ctx, raw).FirstErr())
	cl.Close()
	for range 2 {
		select {
		case <-dead:
		case <-ctx.Done():
			t.Fatal("dead letters missing")
		}
	}
	waitFor(t, 5*time.Second, "the good messages", func() bool { return len(handled.messages()) == 2 })
	ids := []string{handled.messages()[0].ID, handled.messages()[1].ID}
	slices.Sort(ids)
	require.Equal(t, "good", ids[0])
	require.Regexp(t, "^"+regexp.QuoteMeta("kafka:"+bus.KafkaTopic("orders")+":")+`[0-3]:[0-9]+$`, ids[1],
		"a record without ID gets one from its topic, partition and offset")

	// A bus that does not set topics up fails to publish to a missing one.
	unset, err := kafkabus.New(c.brokers, append(opts, kafkabus.WithTopicPrefix(prefix(t)),
		kafkabus.WithClientOptions(fastClient...))...)
	require.NoError(t, err)
	t.Cleanup(unset.Close)
	errPublish := unset.Publish(ctx, "orders", cqrs.Message{ID: "lost"})
	require.Error(t, errPublish)

	// A backlog: five records wait behind a blocked handler.
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	backlog, err := bus.Subscribe(ctx, "backlog", "slow", func(context.Context, cqrs.Message) error {
		select {
		case blocked <- struct{}{}:
		default:
		}
		<-release
		return nil
	})
	require.NoError(t, err)
	msgs := keyed("b", 5, 1)
	require.NoError(t, bus.Publish(ctx, "backlog", msgs...))
	<-blocked
	lagOf := func() int64 {
		if !tel.HasMetric(t, kafkabus.MetricLag) {
			return -1
		}
		var total int64 = -1
		for _, set := range telemetrytest.AttributeSets(tel.Metric(t, kafkabus.MetricLag)) {
			if v, _ := set.Value(group); v.AsString() == "slow" {
				total = max(total, 0) + tel.Int64(t, kafkabus.MetricLag, set.ToSlice()...)
			}
		}
		return total
	}
	waitFor(t, 5*time.Second, "a lag of 5", func() bool { return lagOf() == 5 })
	close(release)
	waitFor(t, 5*time.Second, "a lag of 0", func() bool { return lagOf() == 0 })
	require.NoError(t, backlog.Close()) // commits
	assert.EqualValues(t, 1, tel.HistogramCount(t, messagingconv.ClientOperationDuration{}.Name(),
		system.String("kafka"), opName.String("commit"), opType.String("settle"),
		dest.String(bus.KafkaTopic("backlog")), group.String("slow")), "the commit of Close")

	// Every process span has ended once the process durations are all in:
	// good, bad twice, panic twice, the raw record, five of the backlog.
	waitFor(t, 5*time.Second, "the process spans", func() bool {
		return histogramTotal(t, tel, messagingconv.ProcessDuration{}.Name()) == 11
	})
	tel.CheckMetrics(t, kafkabus.ScopeName, documentedMetrics,
		messagingconv.ClientOperationDuration{}.Name(), messagingconv.ClientSentMessages{}.Name(),
		messagingconv.ClientConsumedMessages{}.Name(), messagingconv.ProcessDuration{}.Name(),
		cqrs.MetricRedeliveries, cqrs.MetricDeadLetters, kafkabus.MetricUnidentified, kafkabus.MetricLag)
	tel.CheckSpans(t, kafkabus.ScopeName, documentedSpans, "publish {topic}", "process {topic}")
	var failedSent int64
	for _, set := range telemetrytest.AttributeSets(tel.Metric(t, messagingconv.ClientSentMessages{}.Name())) {
		if v, ok := set.Value(errType); ok && v == telemetry.ErrorType(errPublish).Value {
			failedSent += tel.Int64(t, messagingconv.ClientSentMessages{}.Name(), set.ToSlice()...)
		}
	}
	assert.EqualValues(t, 1, failedSent, "the failed publish: %s", tel.Describe(t, messagingconv.ClientSentMessages{}.Name()))
	for _, s := range tel.Spans.Ended() {
		attrs := telemetrytest.Attrs(s)
		if _, ok := attrs[bodySize]; !ok {
			t.Errorf("span %s has no messaging.message.body.size with WithOptInAttributes", s.Name())
		}
		if s.SpanKind() == trace.SpanKindProducer && s.Status().Code != codes.Error {
			if _, ok := attrs[offset]; !ok {
				t.Errorf("acknowledged publish span %s has no messaging.kafka.offset", s.Name())
			}
		}
	}
	telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, documentedSpans)
	for _, word := range []string{"dead_letter", "kafkabus.panic", "client span", "MaxTopicTelemetry", "commit"} {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: word}}, nil)
	}
}

// histogramTotal returns the count of every data point of the histogram
// called name.
func histogramTotal(t *testing.T, tel *telemetrytest.Providers, name string) uint64 {
	t.Helper()
	if !tel.HasMetric(t, name) {
		return 0
	}
	var n uint64
	for _, set := range telemetrytest.AttributeSets(tel.Metric(t, name)) {
		n += tel.HistogramCount(t, name, set.ToSlice()...)
	}
	return n
}
