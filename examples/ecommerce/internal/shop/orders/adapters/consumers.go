package adapters

import (
	"context"
	"errors"
	"log/slog"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/app"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
)

// The consumer groups of the order service on the bus.
const (
	// GroupSaga starts the saga of each placed order.
	GroupSaga = "order-saga"
	// GroupViews projects the order's events into the read model.
	GroupViews = "order-views"
)

// Consumers are the order service's driving adapters on the event bus:
// the outbox relay publishes the order's events to Topic, where one
// consumer group starts the saga of each placed order and another
// projects every event into the read model. Delivery is at least once;
// both are idempotent. Start and Stop are for a hexagonal.Component.
type Consumers struct {
	bus    cqrs.EventBus
	topic  string
	app    *app.Orders
	reg    *eventsource.Registry
	logger *slog.Logger
	subs   []cqrs.Subscription
	// opts are extra subscription options (tests shorten the backoff).
	opts []cqrs.SubscribeOption
}

// NewConsumers returns the consumers of topic on bus for a.
func NewConsumers(bus cqrs.EventBus, topic string, a *app.Orders, logger *slog.Logger) *Consumers {
	return &Consumers{bus: bus, topic: topic, app: a, reg: Events(), logger: logger}
}

// Start subscribes both groups.
func (c *Consumers) Start(ctx context.Context) error {
	for _, g := range []struct {
		group string
		h     func(context.Context, any) error
	}{
		{GroupSaga, c.startSaga},
		{GroupViews, c.app.Project},
	} {
		// A message given up (its last delivery failed) is an order
		// whose saga never started, or that the read model never saw:
		// the bus's default drops it without a word, so it is logged for
		// a person to replay.
		group := g.group
		deadLetter := func(ctx context.Context, m cqrs.Message, err error) {
			c.logger.ErrorContext(ctx, "order event given up after its last delivery",
				"group", group, "id", m.ID, "type", m.Type, "deliveries", m.Delivery, "error", err)
		}
		opts := append([]cqrs.SubscribeOption{cqrs.WithMaxDeliver(20), cqrs.WithDeadLetter(deadLetter)}, c.opts...)
		sub, err := c.bus.Subscribe(ctx, c.topic, g.group, c.handler(g.h), opts...)
		if err != nil {
			return errors.Join(err, c.Stop(ctx))
		}
		c.subs = append(c.subs, sub)
	}
	return nil
}

// Stop ends the subscriptions, waiting for the handlers that run.
func (c *Consumers) Stop(context.Context) error {
	var errs []error
	for _, s := range c.subs {
		errs = append(errs, s.Close())
	}
	c.subs = nil
	return errors.Join(errs...)
}

// handler decodes a message into the domain event it carries for h. A
// message of a type this service does not know is logged and dropped: a
// newer producer's, which no redelivery would make readable.
func (c *Consumers) handler(h func(context.Context, any) error) cqrs.Handler {
	return func(ctx context.Context, m cqrs.Message) error {
		event, err := c.reg.Decode(eventsource.Event{Type: m.Type, Data: m.Data, Metadata: m.Metadata})
		if errors.Is(err, eventsource.ErrUnknownEventType) {
			c.logger.WarnContext(ctx, "order event of an unknown type dropped", "type", m.Type, "id", m.ID)
			return nil
		}
		if err != nil {
			return err
		}
		return h(ctx, event)
	}
}

func (c *Consumers) startSaga(ctx context.Context, event any) error {
	placed, ok := event.(domain.OrderPlaced)
	if !ok {
		return nil
	}
	return c.app.StartSaga(ctx, placed)
}
