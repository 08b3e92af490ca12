package natsbus_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
)

// A publisher and a consumer group on NATS JetStream, at the server of
// PATTERNS_NATS_URL (nats://127.0.0.1:4222, say); without it the example
// does nothing. It works in a stream of its own, which it deletes.
func Example() {
	url := os.Getenv("PATTERNS_NATS_URL")
	if url == "" {
		return // needs a NATS server with JetStream
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}

	stream := "EXAMPLE_" + strings.ToUpper(rand.Text()[:8]) // unique per run
	bus, err := natsbus.New(js, natsbus.WithStream(stream),
		natsbus.WithSubjectPrefix(strings.ToLower(stream)+"."))
	if err != nil {
		log.Fatal(err)
	}
	if err := bus.Setup(ctx); err != nil { // idempotent; safe from every instance
		log.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), stream) }()

	got := make(chan string, 1)
	sub, err := bus.Subscribe(ctx, "placed", "billing", func(ctx context.Context, m cqrs.Message) error {
		got <- fmt.Sprintf("billing got %s %s %s (delivery %d)", m.ID, m.Type, m.Data, m.Delivery)
		return nil
	}, cqrs.WithMaxDeliver(10))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close() // before nc.Close

	msg := cqrs.Message{ID: "order-42-placed", Type: "order.placed.v1", Data: []byte(`{"total":1200}`)}
	for range 2 { // the second publish is dropped: same topic and ID
		if err := bus.Publish(ctx, "placed", msg); err != nil {
			log.Fatal(err)
		}
	}
	select {
	case s := <-got:
		fmt.Println(s)
	case <-ctx.Done():
		log.Fatal("nothing delivered: ", ctx.Err())
	}
	select {
	case s := <-got:
		fmt.Println("unexpected:", s)
	case <-time.After(200 * time.Millisecond):
		fmt.Println("delivered once")
	}
	// With NATS, it prints:
	//
	// billing got order-42-placed order.placed.v1 {"total":1200} (delivery 1)
	// delivered once
}
