package cqrs

import (
	"context"
	"time"

	"github.com/otelpatterns/patterns/cqrs/internal/kit"
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
	// Key orders messages: a bus that partitions a topic (cqrs/kafkabus)
	// puts the messages with the same key on one partition, so they are
	// delivered in order, and every bus delivers it as published. The
	// [Relay] sets it to the event's stream ID, so that one aggregate's
	// events stay in order; "" leaves the choice to the bus.
	Key string
	// Metadata are string headers, any keys and values, which every bus
	// delivers exactly as published. They carry the message's creation
	// context, the trace context consumers continue and link to: Publish
	// adds that of its publish span ("traceparent", "tracestate", through
	// the global propagator), unless the message carries one already (an
	// event the [Relay] publishes carries the context of its append).
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
// later. Every implementation honours the options of [SubscribeOption].
//
// Traces follow the messaging semantic conventions: Publish keeps the
// creation context a message's Metadata carries and links its span to it,
// or else makes its span's context the message's creation context; the
// span that processes a delivery is a child of the creation context and
// links to it.
//
// Implementing an EventBus: [github.com/otelpatterns/patterns/cqrs/buskit]
// holds the helpers the buses of this module share (options, trace
// context), and [github.com/otelpatterns/patterns/cqrs/bustest] the
// conformance tests every implementation passes.
type EventBus interface {
	Publish(ctx context.Context, topic string, msgs ...Message) error
	Subscribe(ctx context.Context, topic, group string, handler Handler, opts ...SubscribeOption) (Subscription, error)
}

// Subscription is a running subscription of an [EventBus].
type Subscription interface {
	// Close stops delivery and waits for running handlers to return.
	Close() error
}

// SubscribeOption configures a subscription: [WithMaxDeliver],
// [WithRedeliveryBackoff], [WithDeadLetter] and [WithConcurrency]. Every
// [EventBus] of this module honours them; nil options are ignored.
type SubscribeOption interface {
	applySubscribe(*subscribeConfig)
}

// subscribeConfig is a subscription's resolved options.
type subscribeConfig = kit.SubscribeConfig[Message]

type subscribeOptionFunc func(*subscribeConfig)

func (f subscribeOptionFunc) applySubscribe(c *subscribeConfig) { f(c) }

// ApplySubscribe lets cqrs/buskit apply the option (see
// kit.SubscribeOption); SubscribeOption stays sealed.
func (f subscribeOptionFunc) ApplySubscribe(c *subscribeConfig) { f(c) }

// WithMaxDeliver sets how many times a message is delivered to a consumer
// group before it goes to the dead-letter function ([WithDeadLetter]): 1
// means no redelivery. n must be at least 1. The default is 5.
func WithMaxDeliver(n int) SubscribeOption {
	return subscribeOptionFunc(func(c *subscribeConfig) { c.MaxDeliver = n })
}

// WithRedeliveryBackoff sets the wait before delivery number n+1 of a
// message after delivery n failed; a negative wait counts as 0. f must not
// be nil. The default is [DefaultBackoff], which doubles from 100ms up to
// 30s.
func WithRedeliveryBackoff(f func(n int) time.Duration) SubscribeOption {
	return subscribeOptionFunc(func(c *subscribeConfig) { c.Backoff = f })
}

// WithDeadLetter sets the function that receives a message whose last
// delivery ([WithMaxDeliver]) failed, with the last error; the message is
// then acknowledged. f may store the message elsewhere (publish it to a
// topic of its own, say), alert, or log. f must not be nil. The default
// drops the message without a word: set it.
func WithDeadLetter(f func(ctx context.Context, m Message, err error)) SubscribeOption {
	return subscribeOptionFunc(func(c *subscribeConfig) { c.DeadLetter = f })
}

// WithConcurrency sets how many messages one subscription handles at once.
// n must be at least 1. The default is 1, which keeps publication order.
func WithConcurrency(n int) SubscribeOption {
	return subscribeOptionFunc(func(c *subscribeConfig) { c.Concurrency = n })
}

// DefaultBackoff is the default redelivery backoff
// ([WithRedeliveryBackoff]): 100ms after the first failed delivery,
// doubling with each delivery up to 30s.
func DefaultBackoff(n int) time.Duration { return kit.DefaultBackoff(n) }
