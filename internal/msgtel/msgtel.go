// Package msgtel holds the metric instruments that every event bus of the
// module records (cqrs's memory bus, cqrs/natsbus): the semantic
// conventions' four messaging metrics and the two of cqrs, so that the
// buses create them one way, with the same units, descriptions and
// buckets.
package msgtel

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/semconv/v1.40.0/messagingconv"
)

// The names of the cqrs metrics both buses record besides the semantic
// conventions' ones (cqrs exports them as MetricRedeliveries and
// MetricDeadLetters).
const (
	Redeliveries = "cqrs.redeliveries"
	DeadLetters  = "cqrs.dead_letters"
)

// DurationBuckets are the bucket boundaries, in seconds, of the messaging
// duration histograms (messaging.client.operation.duration and
// messaging.process.duration), as the semantic conventions advise.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// Instruments are a bus's messaging instruments.
type Instruments struct {
	OpDuration  metric.Float64Histogram // messaging.client.operation.duration
	Sent        metric.Int64Counter     // messaging.client.sent.messages
	Consumed    metric.Int64Counter     // messaging.client.consumed.messages
	Process     metric.Float64Histogram // messaging.process.duration
	Redelivered metric.Int64Counter     // cqrs.redeliveries
	DeadLetters metric.Int64Counter     // cqrs.dead_letters
}

// New creates the instruments from m, handing errors to otel.Handle (the
// instruments are then no-ops).
func New(m metric.Meter) Instruments {
	check := func(err error) {
		if err != nil {
			otel.Handle(err)
		}
	}
	buckets := metric.WithExplicitBucketBoundaries(DurationBuckets...)
	opDuration, err := messagingconv.NewClientOperationDuration(m, buckets)
	check(err)
	sent, err := messagingconv.NewClientSentMessages(m)
	check(err)
	consumed, err := messagingconv.NewClientConsumedMessages(m)
	check(err)
	process, err := messagingconv.NewProcessDuration(m, buckets)
	check(err)
	t := Instruments{OpDuration: opDuration.Inst(), Sent: sent.Inst(), Consumed: consumed.Inst(), Process: process.Inst()}
	t.Redelivered, err = m.Int64Counter(Redeliveries, metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries of a message to a consumer group after its first."))
	check(err)
	t.DeadLetters, err = m.Int64Counter(DeadLetters, metric.WithUnit("{message}"),
		metric.WithDescription("Messages given to the dead-letter function after their last delivery failed."))
	check(err)
	return t
}
