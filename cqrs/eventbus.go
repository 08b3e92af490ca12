package cqrs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Message is an event as an [EventBus] carries it.
type Message struct {
	// ID identifies the message; buses de-duplicate on it where they can,
	// per topic (the same message published to another topic, parked
	// there by a dead-letter function say, is delivered there), and
	// handlers should be idempotent on it, as delivery is at least once.
	// For an event from the event store it is the event's ID.
	ID string
	// Topic is where the message was published.
	Topic string
	// Type names the payload's type (an eventsource type name).
	Type string
	// Data is the encoded payload.
	Data []byte
	// Metadata are string headers, any keys and values, which every bus
	// delivers exactly as published. They carry the message's creation
	// context, the trace context consumers continue and link to: Publish
	// adds that of its publish span ("traceparent", "tracestate", through
	// the global propagator), unless the message carries one already (see
	// [CreationContext]).
	Metadata map[string]string
	// Delivery counts the attempts to deliver this message to this
	// consumer group, from 1; set by the bus on delivery.
	Delivery int
}

// Handler processes one message. Returning nil acknowledges it; an error
// has it delivered again later, up to the subscription's delivery limit.
type Handler func(ctx context.Context, m Message) error

// EventBus carries messages from publishers to named, durable consumer
// groups.
//
// Implementations are safe for concurrent use. Publish returns once the bus
// has accepted every message (for a durable bus: stored it). Subscribe
// starts delivering the messages published to topic to handler: each
// message to one member of the group, at least once, in publication order
// per member as far as redeliveries allow. A message whose handler fails
// is delivered again after the subscription's backoff, up to MaxDeliver
// deliveries, and then given to the DeadLetter function and acknowledged.
// Close on the returned [Subscription] stops delivery and waits for running
// handlers; messages not acknowledged are delivered again to the group
// later. [SubscribeConfig] lists the options every implementation honours;
// cqrs/bustest holds the conformance tests every implementation passes.
//
// Traces follow the messaging semantic conventions: Publish keeps the
// creation context a message carries ([CreationContext]) and links its
// span to it, or else makes its span's context the message's creation
// context ([InjectTrace]); the span that processes a delivery is a child
// of the creation context and links to it.
type EventBus interface {
	Publish(ctx context.Context, topic string, msgs ...Message) error
	Subscribe(ctx context.Context, topic, group string, handler Handler, opts ...SubscribeOption) (Subscription, error)
}

// Subscription is a running subscription of an [EventBus].
type Subscription interface {
	// Close stops delivery and waits for running handlers to return.
	Close() error
}

// SubscribeConfig holds the subscription settings every [EventBus]
// implementation honours; implementations build it with
// [NewSubscribeConfig].
type SubscribeConfig struct {
	// MaxDeliver is how many times a message is delivered before it goes
	// to DeadLetter. The default is 5.
	MaxDeliver int
	// Backoff returns the wait before delivery number n+1 after delivery n
	// failed. The default doubles from 100ms up to 30s.
	Backoff func(n int) time.Duration
	// DeadLetter receives a message whose last delivery failed, with the
	// last error. The default logs nothing and drops it: set it.
	DeadLetter func(ctx context.Context, m Message, err error)
	// Concurrency is how many messages one subscription handles at once.
	// The default is 1, which keeps publication order.
	Concurrency int
}

// SubscribeOption configures a subscription.
type SubscribeOption interface{ applySubscribe(*SubscribeConfig) }

type subscribeOptionFunc func(*SubscribeConfig)

func (f subscribeOptionFunc) applySubscribe(c *SubscribeConfig) { f(c) }

// WithMaxDeliver sets [SubscribeConfig.MaxDeliver].
func WithMaxDeliver(n int) SubscribeOption {
	return subscribeOptionFunc(func(c *SubscribeConfig) { c.MaxDeliver = n })
}

// WithRedeliveryBackoff sets [SubscribeConfig.Backoff].
func WithRedeliveryBackoff(f func(n int) time.Duration) SubscribeOption {
	return subscribeOptionFunc(func(c *SubscribeConfig) { c.Backoff = f })
}

// WithDeadLetter sets [SubscribeConfig.DeadLetter].
func WithDeadLetter(f func(ctx context.Context, m Message, err error)) SubscribeOption {
	return subscribeOptionFunc(func(c *SubscribeConfig) { c.DeadLetter = f })
}

// WithConcurrency sets [SubscribeConfig.Concurrency].
func WithConcurrency(n int) SubscribeOption {
	return subscribeOptionFunc(func(c *SubscribeConfig) { c.Concurrency = n })
}

// DefaultBackoff doubles from 100ms up to 30s.
func DefaultBackoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// NewSubscribeConfig applies opts to the defaults and checks the result,
// returning an error that names every bad setting.
func NewSubscribeConfig(opts ...SubscribeOption) (SubscribeConfig, error) {
	c := SubscribeConfig{MaxDeliver: 5, Backoff: DefaultBackoff, Concurrency: 1,
		DeadLetter: func(context.Context, Message, error) {}}
	for _, o := range opts {
		o.applySubscribe(&c)
	}
	var errs []error
	if c.MaxDeliver < 1 {
		errs = append(errs, fmt.Errorf("WithMaxDeliver(%d): must be at least 1", c.MaxDeliver))
	}
	if c.Backoff == nil {
		errs = append(errs, errors.New("WithRedeliveryBackoff(nil): function must not be nil"))
	}
	if c.DeadLetter == nil {
		errs = append(errs, errors.New("WithDeadLetter(nil): function must not be nil"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("WithConcurrency(%d): must be at least 1", c.Concurrency))
	}
	return c, errors.Join(errs...)
}

// InjectTrace returns a copy of md with the trace context of ctx added
// through the global propagator, for publishing.
func InjectTrace(ctx context.Context, md map[string]string) map[string]string {
	carrier := propagation.MapCarrier{}
	for k, v := range md {
		carrier[k] = v
	}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if len(carrier) == 0 {
		return md
	}
	return carrier
}

// ExtractTrace returns ctx with the remote span context carried in m's
// metadata, for processing: start the process span as its child, and link
// it to that context, as the messaging semantic conventions ask.
func ExtractTrace(ctx context.Context, m Message) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(m.Metadata))
}

// CreationContext returns the span context that m's Metadata carries,
// through the global propagator, or an invalid one. For a message given to
// Publish, a valid one is a creation context of the publisher's own (the
// [Relay] publishes each event with the context of its append): the
// semantic conventions ask that Publish keep it, rather than add its own,
// and link its span to it.
func CreationContext(m Message) trace.SpanContext {
	if len(m.Metadata) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(ExtractTrace(context.Background(), m))
}
