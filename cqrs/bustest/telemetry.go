package bustest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/messagingconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// NewTelemetryBus returns a bus whose spans go to tp and metrics to mp.
type NewTelemetryBus func(t *testing.T, tp trace.TracerProvider, mp metric.MeterProvider) cqrs.EventBus

// RunTelemetry runs the conformance tests of the telemetry every bus of
// this module records, against the buses newBus returns, each with SDK
// providers of its own:
//
//   - the messaging semantic conventions' messaging.client.consumed.messages
//     counts every delivery, and messaging.process.duration carries the
//     error.type of the deliveries that failed;
//   - cqrs.redeliveries counts the deliveries after the first (those whose
//     Delivery is above 1) when they happen, not the failures that will
//     lead to them, and cqrs.dead_letters the messages given to
//     DeadLetter;
//   - the name of every messaging span is its messaging.operation.name
//     and its messaging.destination.name, space-separated;
//   - a process span is a child of its message's creation context and
//     links to it: the publish span's, or, for a message published with a
//     trace context in its Metadata, that one, which Publish keeps and
//     links its span to.
//
// Like [Run], it sets the global text map propagator for the duration of
// a subtest: do not run it in parallel with tests that depend on it.
func RunTelemetry(t *testing.T, newBus NewTelemetryBus) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, b cqrs.EventBus, p *telemetrytest.Providers)
	}{
		{"RedeliveriesAreDeliveriesAfterTheFirst", testRedeliveryMetrics},
		{"FailureIsNoRedeliveryUntilRedelivered", testPendingRedelivery},
		{"DeadLettersCounted", testDeadLetterMetrics},
		{"SpanNamesAndLinks", testSpans},
		{"CreationContextKept", testCreationContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := otel.GetTextMapPropagator()
			otel.SetTextMapPropagator(propagation.TraceContext{})
			t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
			p := telemetrytest.New(t)
			b := newBus(t, p.TracerProvider, p.MeterProvider)
			if b == nil {
				t.Fatal("newBus returned nil")
			}
			tt.run(t, b, p)
		})
	}
}

// points returns the data points of the int64 sum or float64 histogram
// called name that carry every attribute of attrs: their values (for a
// sum) or counts (for a histogram), added up.
func points(t *testing.T, p *telemetrytest.Providers, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	if !p.HasMetric(t, name) {
		return 0
	}
	match := func(set attribute.Set) bool {
		for _, kv := range attrs {
			if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	var total int64
	switch d := p.Metric(t, name).Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			if match(dp.Attributes) {
				total += dp.Value
			}
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			if match(dp.Attributes) {
				total += int64(dp.Count)
			}
		}
	default:
		t.Fatalf("metric %q is a %T, not an int64 sum or a float64 histogram", name, d)
	}
	return total
}

// waitMetric waits until the metric called name adds up to want over the
// data points that carry attrs, failing the test after patience: the
// buses record after a handler returns.
func waitMetric(t *testing.T, p *telemetrytest.Providers, want int64, name string, attrs ...attribute.KeyValue) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		got := points(t, p, name, attrs...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s%v = %d; want %d; recorded: %s", name, attrs, got, want, p.Describe(t, name))
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testRedeliveryMetrics(t *testing.T, b cqrs.EventBus, p *telemetrytest.Providers) {
	topic, group := name(t, "topic"), name(t, "group")
	r := newRecorder()
	mustSubscribe(t, b, topic, group, func(_ context.Context, m cqrs.Message) error {
		r.add(m)
		if m.Delivery < 3 {
			return errors.New("bustest: failing")
		}
		return nil
	}, cqrs.WithMaxDeliver(5))
	mustPublish(t, b, topic, messages(t, 1)...)
	r.waitCount(t, 3)
	grp := semconv.MessagingConsumerGroupName(group)
	waitMetric(t, p, 3, messagingconv.ProcessDuration{}.Name(), grp)
	waitMetric(t, p, 2, messagingconv.ProcessDuration{}.Name(), grp, semconv.ErrorTypeOther)
	waitMetric(t, p, 3, messagingconv.ClientConsumedMessages{}.Name(), grp)
	waitMetric(t, p, 2, cqrs.MetricRedeliveries, grp)
	waitMetric(t, p, 0, cqrs.MetricDeadLetters, grp)
}

// testPendingRedelivery: a message whose delivery failed and that waits
// out its backoff has been delivered once, so it is no redelivery yet.
func testPendingRedelivery(t *testing.T, b cqrs.EventBus, p *telemetrytest.Providers) {
	topic, group := name(t, "topic"), name(t, "group")
	r := newRecorder()
	mustSubscribe(t, b, topic, group, func(_ context.Context, m cqrs.Message) error {
		r.add(m)
		return errors.New("bustest: failing")
	}, cqrs.WithRedeliveryBackoff(func(int) time.Duration { return time.Hour }))
	mustPublish(t, b, topic, messages(t, 1)...)
	r.waitCount(t, 1)
	grp := semconv.MessagingConsumerGroupName(group)
	waitMetric(t, p, 1, messagingconv.ProcessDuration{}.Name(), grp, semconv.ErrorTypeOther)
	if n := points(t, p, cqrs.MetricRedeliveries, grp); n != 0 {
		t.Errorf("%s = %d while the message waits out its backoff; want 0 (one delivery so far)", cqrs.MetricRedeliveries, n)
	}
}

func testDeadLetterMetrics(t *testing.T, b cqrs.EventBus, p *telemetrytest.Providers) {
	topic, group := name(t, "topic"), name(t, "group")
	dl := &deadLetters{done: make(chan struct{})}
	mustSubscribe(t, b, topic, group, func(context.Context, cqrs.Message) error {
		return errors.New("bustest: failing")
	}, cqrs.WithMaxDeliver(2), cqrs.WithDeadLetter(dl.add))
	mustPublish(t, b, topic, messages(t, 1)...)
	select {
	case <-dl.done:
	case <-time.After(patience):
		t.Fatalf("DeadLetter not called after %v", patience)
	}
	grp := semconv.MessagingConsumerGroupName(group)
	waitMetric(t, p, 2, messagingconv.ClientConsumedMessages{}.Name(), grp)
	waitMetric(t, p, 1, cqrs.MetricRedeliveries, grp)
	waitMetric(t, p, 1, cqrs.MetricDeadLetters, grp)
}

// waitSpans waits until n spans called name have ended, failing the test
// after patience: a publish span may end after its message was processed.
func waitSpans(t *testing.T, p *telemetrytest.Providers, name string, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		spans := p.SpansNamed(name)
		if len(spans) >= n || time.Now().After(deadline) {
			if len(spans) < n {
				t.Fatalf("%d spans called %q ended; want %d", len(spans), name, n)
			}
			return spans
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// messagingSpans returns the ended spans with a messaging.operation.name
// whose messaging.destination.name ends with topic, by operation.
func messagingSpans(p *telemetrytest.Providers, topic string) map[string][]sdktrace.ReadOnlySpan {
	out := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range p.Spans.Ended() {
		attrs := telemetrytest.Attrs(s)
		op, dest := attrs[semconv.MessagingOperationNameKey], attrs[semconv.MessagingDestinationNameKey]
		if op.AsString() != "" && strings.HasSuffix(dest.AsString(), topic) {
			out[op.AsString()] = append(out[op.AsString()], s)
		}
	}
	return out
}

// destination returns the messaging.destination.name of the spans of
// topic, from its publish span.
func destination(t *testing.T, p *telemetrytest.Providers, topic string) string {
	t.Helper()
	spans := messagingSpans(p, topic)["publish"]
	if len(spans) == 0 {
		t.Fatalf("no publish span with a messaging.destination.name ending in %q", topic)
	}
	return telemetrytest.Attrs(spans[0])[semconv.MessagingDestinationNameKey].AsString()
}

func testSpans(t *testing.T, b cqrs.EventBus, p *telemetrytest.Providers) {
	topic, group := name(t, "topic"), name(t, "group")
	r := newRecorder()
	mustSubscribe(t, b, topic, group, r.handle)
	mustPublish(t, b, topic, messages(t, 1)...)
	r.waitCount(t, 1)
	dest := destination(t, p, topic)
	pub := waitSpans(t, p, "publish "+dest, 1)[0]
	proc := waitSpans(t, p, "process "+dest, 1)[0]
	for op, spans := range messagingSpans(p, topic) {
		for _, s := range spans {
			if want := op + " " + dest; s.Name() != want {
				t.Errorf("span %q has messaging.operation.name %q and messaging.destination.name %q; want it called %q",
					s.Name(), op, dest, want)
			}
		}
	}
	if pub.SpanKind() != trace.SpanKindProducer {
		t.Errorf("publish span of kind %v; want %v", pub.SpanKind(), trace.SpanKindProducer)
	}
	checkContinues(t, proc, pub.SpanContext())
}

// checkContinues fails the test unless s is a child of the span of sc and
// links to it.
func checkContinues(t *testing.T, s sdktrace.ReadOnlySpan, sc trace.SpanContext) {
	t.Helper()
	if s.Parent().TraceID() != sc.TraceID() || s.Parent().SpanID() != sc.SpanID() {
		t.Errorf("span %q is a child of %s/%s; want %s/%s", s.Name(),
			s.Parent().TraceID(), s.Parent().SpanID(), sc.TraceID(), sc.SpanID())
	}
	for _, l := range s.Links() {
		if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
			return
		}
	}
	t.Errorf("span %q links to %v; want a link to %s/%s", s.Name(), s.Links(), sc.TraceID(), sc.SpanID())
}

func testCreationContext(t *testing.T, b cqrs.EventBus, p *telemetrytest.Providers) {
	topic, group := name(t, "topic"), name(t, "group")
	r := newRecorder()
	mustSubscribe(t, b, topic, group, r.handle)

	// A message that carries a creation context of its own, as the
	// outbox relay's do (their event's append), published in another.
	_, origin := p.TracerProvider.Tracer("bustest").Start(ctx(t), "origin")
	origin.End()
	msg := messages(t, 1)[0]
	otel.GetTextMapPropagator().Inject(trace.ContextWithSpan(ctx(t), origin), propagation.MapCarrier(msg.Metadata))
	traceparent := msg.Metadata["traceparent"]
	pctx, caller := p.TracerProvider.Tracer("bustest").Start(ctx(t), "caller")
	if err := b.Publish(pctx, topic, msg); err != nil {
		t.Fatalf("Publish(%q) = %v; want nil", topic, err)
	}
	caller.End()

	got := r.waitCount(t, 1)[0]
	if tp := got.Metadata["traceparent"]; tp != traceparent {
		t.Errorf("received Metadata[traceparent] = %q; want the message's own creation context, %q", tp, traceparent)
	}
	dest := destination(t, p, topic)
	pub := waitSpans(t, p, "publish "+dest, 1)[0]
	proc := waitSpans(t, p, "process "+dest, 1)[0]
	if pub.Parent().SpanID() != caller.SpanContext().SpanID() {
		t.Errorf("publish span is a child of %s; want the caller's span %s", pub.Parent().SpanID(), caller.SpanContext().SpanID())
	}
	var linked bool
	for _, l := range pub.Links() {
		linked = linked || l.SpanContext.SpanID() == origin.SpanContext().SpanID()
	}
	if !linked {
		t.Errorf("publish span links to %v; want a link to the message's creation context %s", pub.Links(), origin.SpanContext().SpanID())
	}
	if pub.SpanKind() != trace.SpanKindClient {
		t.Errorf("publish span of kind %v; want %v: its context is not the message's creation context", pub.SpanKind(), trace.SpanKindClient)
	}
	checkContinues(t, proc, origin.SpanContext())
}
