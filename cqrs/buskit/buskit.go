package buskit

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/internal/kit"
)

// SubscribeConfig is a subscription's settings, resolved from the
// [cqrs.SubscribeOption] values given to Subscribe, which every
// [cqrs.EventBus] implementation honours.
type SubscribeConfig struct {
	// MaxDeliver is how many times a message is delivered before it goes
	// to DeadLetter ([cqrs.WithMaxDeliver]); at least 1. The default is 5.
	MaxDeliver int
	// Backoff returns the wait before delivery number n+1 after delivery n
	// failed ([cqrs.WithRedeliveryBackoff]); treat a negative wait as 0.
	// The default is [cqrs.DefaultBackoff].
	Backoff func(n int) time.Duration
	// DeadLetter receives a message whose last delivery failed, with the
	// last error ([cqrs.WithDeadLetter]); acknowledge the message after
	// it returns. The default drops the message.
	DeadLetter func(ctx context.Context, m cqrs.Message, err error)
	// Concurrency is how many messages one subscription handles at once
	// ([cqrs.WithConcurrency]); at least 1. The default is 1, which keeps
	// publication order.
	Concurrency int
}

// NewSubscribeConfig applies opts to the defaults and checks the result.
// It returns an error that names every bad option, such as
// "WithMaxDeliver(0): must be at least 1", along with the settings. Nil
// options are ignored.
func NewSubscribeConfig(opts ...cqrs.SubscribeOption) (SubscribeConfig, error) {
	c, err := kit.NewSubscribeConfig[cqrs.Message](opts)
	return SubscribeConfig(c), err
}

// InjectTrace returns md with the trace context of ctx added through the
// global propagator (W3C "traceparent" and "tracestate" when it is a
// trace-context propagator), for publishing a message in ctx. md itself
// is not changed: the result is a copy, or md when the propagator adds
// nothing (the default no-op propagator).
func InjectTrace(ctx context.Context, md map[string]string) map[string]string {
	return kit.Inject(ctx, md)
}

// ExtractTrace returns ctx with the remote span context carried in m's
// metadata, through the global propagator, for processing m: start the
// process span as its child, and link it to that context, as the
// messaging semantic conventions ask.
func ExtractTrace(ctx context.Context, m cqrs.Message) context.Context {
	return kit.Extract(ctx, m.Metadata)
}

// CreationContext returns the span context that m's Metadata carries,
// through the global propagator, or an invalid one. For a message given to
// Publish, a valid one is a creation context of the publisher's own (the
// [cqrs.Relay] publishes each event with the context of its append): the
// semantic conventions ask that Publish keep it, rather than add its own,
// and link its span to it.
func CreationContext(m cqrs.Message) trace.SpanContext {
	return kit.Creation(m.Metadata)
}
