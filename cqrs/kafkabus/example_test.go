package kafkabus_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
)

// A bus on a Kafka cluster (here kfake, in the process): set the topics
// up, subscribe a consumer group, publish an aggregate's events keyed by
// its stream ID.
func Example() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	bus, err := kafkabus.New(cluster.ListenAddrs(), kafkabus.WithTopicPrefix("shop."))
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close() // after the subscription's Close, deferred below
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.Setup(ctx, "orders", "orders-parked"); err != nil {
		log.Fatal(err)
	}

	got := make(chan cqrs.Message)
	sub, err := bus.Subscribe(ctx, "orders", "billing", func(_ context.Context, m cqrs.Message) error {
		got <- m
		return nil
	}, cqrs.WithMaxDeliver(5), cqrs.WithDeadLetter(bus.DeadLetterTo("orders-parked")))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	err = bus.Publish(ctx, "orders",
		cqrs.Message{ID: "e1", Type: "order.placed", Key: "order-42", Data: []byte(`{"total":1200}`)},
		cqrs.Message{ID: "e2", Type: "order.paid", Key: "order-42", Data: []byte(`{}`)})
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		m := <-got
		fmt.Println(m.Topic, m.ID, m.Type, m.Delivery, m.Key)
	}
	// Output:
	// orders e1 order.placed 1 order-42
	// orders e2 order.paid 1 order-42
}

// Bus.Setup is idempotent: every instance of a service may call it at
// start-up; existing topics are left as they are.
func ExampleBus_Setup() {
	cluster, err := kfake.NewCluster()
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	bus, err := kafkabus.New(cluster.ListenAddrs(), kafkabus.WithPartitions(12))
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()
	ctx := context.Background()
	fmt.Println(bus.Setup(ctx, "orders"), bus.Setup(ctx, "orders"), bus.KafkaTopic("orders"))
	// Output: <nil> <nil> cqrs.orders
}

// New names every bad argument at once.
func ExampleNew_badInput() {
	_, err := kafkabus.New(nil, kafkabus.WithPartitions(0), kafkabus.WithTopicPrefix("a b"))
	fmt.Println(err)
	// Output:
	// kafkabus: WithTopicPrefix("a b"): contains " ": Kafka topic names hold ASCII letters, digits, '.', '_' and '-' only
	// WithPartitions(0): must be at least 1
	// brokers: no seed broker
}
