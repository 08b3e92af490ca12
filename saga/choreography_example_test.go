package saga_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/saga"
)

// An order saga without an orchestrator: the payment service charges on
// order.placed, the inventory service reserves on payment.charged and,
// being out of stock, publishes a compensating event; the payment service
// refunds on it, and the order service cancels the order. Each service
// would build its own Choreography on a shared durable bus (cqrs/natsbus);
// here one process plays them all on a MemoryBus.
func ExampleChoreography() {
	ctx := context.Background()
	bus := cqrs.NewMemoryBus()
	defer bus.Close()
	c, err := saga.NewChoreography("order", bus)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})

	step := func(name, on string, h func(m cqrs.Message) saga.Outcome) saga.Reaction {
		return saga.Reaction{Name: name, On: on, Handle: func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
			fmt.Printf("%-8s saga %s, %s phase: %s\n", name, saga.CorrelationID(m), phaseName(m), m.Data)
			return h(m), nil
		}}
	}
	reactions := []saga.Reaction{
		step("charge", "order.placed", func(m cqrs.Message) saga.Outcome {
			return saga.Next("payment.charged", cqrs.Message{Type: "payment.charged", Data: []byte("charged 12.00")})
		}),
		step("reserve", "payment.charged", func(m cqrs.Message) saga.Outcome {
			return saga.Compensation("inventory.failed", cqrs.Message{Type: "inventory.failed", Data: []byte("out of stock")})
		}),
		step("refund", "inventory.failed", func(m cqrs.Message) saga.Outcome {
			return saga.Next("payment.refunded", cqrs.Message{Type: "payment.refunded", Data: []byte("refunded 12.00")})
		}),
		step("cancel", "payment.refunded", func(m cqrs.Message) saga.Outcome {
			close(done)
			return saga.Outcome{} // the compensation ends here
		}),
	}
	for _, r := range reactions {
		if err := c.React(ctx, r); err != nil {
			log.Fatal(err)
		}
	}

	// The event that starts the saga: its ID becomes the saga's ID.
	err = bus.Publish(ctx, "order.placed", cqrs.Message{ID: "order-42", Type: "order.placed", Data: []byte("2 books")})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// charge   saga order-42, forward phase: 2 books
	// reserve  saga order-42, forward phase: charged 12.00
	// refund   saga order-42, compensate phase: out of stock
	// cancel   saga order-42, compensate phase: refunded 12.00
}

func phaseName(m cqrs.Message) string {
	if p := m.Metadata[saga.MetadataPhase]; p != "" {
		return p
	}
	return "forward"
}

// A participant whose dependency stays down gives up after the
// subscription's last delivery and compensates, rather than leaving the
// saga hanging.
func ExampleReaction_giveUp() {
	ctx := context.Background()
	bus := cqrs.NewMemoryBus()
	defer bus.Close()
	c, err := saga.NewChoreography("order", bus)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})

	err = c.React(ctx, saga.Reaction{
		Name: "reserve",
		On:   "payment.charged",
		Handle: func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
			fmt.Println("reserve: delivery", m.Delivery, "failed")
			return saga.Outcome{}, errors.New("inventory database unavailable")
		},
		GiveUp: func(_ context.Context, m cqrs.Message, err error) saga.Outcome {
			fmt.Println("reserve: giving up:", err)
			return saga.Compensation("inventory.failed", cqrs.Message{Type: "inventory.failed"})
		},
		Options: []cqrs.SubscribeOption{
			cqrs.WithMaxDeliver(3),
			cqrs.WithRedeliveryBackoff(func(int) time.Duration { return 10 * time.Millisecond }),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	err = c.React(ctx, saga.Reaction{
		Name: "refund",
		On:   "inventory.failed",
		Handle: func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
			fmt.Println("refund: saga", saga.CorrelationID(m))
			close(done)
			return saga.Outcome{}, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	err = bus.Publish(ctx, "payment.charged", cqrs.Message{ID: "pay-7",
		Metadata: map[string]string{saga.MetadataSagaID: "order-42"}})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	// Output:
	// reserve: delivery 1 failed
	// reserve: delivery 2 failed
	// reserve: delivery 3 failed
	// reserve: giving up: inventory database unavailable
	// refund: saga order-42
}
