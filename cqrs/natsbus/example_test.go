package natsbus_test

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
)

// A service builds the bus on its NATS connection, creates the stream at
// start-up and publishes events; publishing again with the same IDs after
// an error is safe, as the stream drops duplicates.
func ExampleNew() {
	ctx := context.Background()
	nc, err := nats.Connect("nats://nats:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}

	bus, err := natsbus.New(js, natsbus.WithStream("ORDERS"), natsbus.WithSubjectPrefix("orders."))
	if err != nil {
		log.Fatal(err)
	}
	if err := bus.Setup(ctx); err != nil { // idempotent; safe from every instance
		log.Fatal(err)
	}

	err = bus.Publish(ctx, "placed", cqrs.Message{
		ID:   "0192e4a8-7c1e-7b7a-9d3f-3c0e8f1a2b4c",
		Type: "order.placed.v1",
		Data: []byte(`{"order":"42","total":1200}`),
	})
	if err != nil {
		log.Fatal(err)
	}
}

// A consumer joins the "billing" group of the "placed" topic: every
// instance of the billing service runs the same code and the group's
// messages are shared among them. A message that keeps failing is parked
// after ten deliveries.
func ExampleBus_Subscribe() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect("nats://nats:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	bus, err := natsbus.New(js, natsbus.WithStream("ORDERS"), natsbus.WithSubjectPrefix("orders."),
		natsbus.WithAckWait(time.Minute))
	if err != nil {
		log.Fatal(err)
	}

	sub, err := bus.Subscribe(ctx, "placed", "billing",
		func(ctx context.Context, m cqrs.Message) error {
			// Idempotent on m.ID: a message may arrive more than once.
			fmt.Printf("bill order: %s (delivery %d)\n", m.Data, m.Delivery)
			return nil
		},
		cqrs.WithMaxDeliver(10),
		cqrs.WithDeadLetter(func(ctx context.Context, m cqrs.Message, err error) {
			log.Printf("parking message %s after %d deliveries: %v", m.ID, m.Delivery, err)
			// As it is, with its ID, on a topic of its own, for
			// inspection and replay.
			if err := bus.Publish(ctx, "placed-parked", m); err != nil {
				log.Printf("parking message %s: %v", m.ID, err)
			}
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	<-ctx.Done()
	if err := sub.Close(); err != nil { // waits for the running handler
		log.Print(err)
	}
}

// ConsumerName shows the durable consumer a group gets, for operators
// using the NATS tools.
func ExampleConsumerName() {
	fmt.Println(natsbus.ConsumerName("billing", "placed"))
	// Output: billing-placed
}
