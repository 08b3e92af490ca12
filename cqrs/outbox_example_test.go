package cqrs_test

import (
	"context"
	"fmt"
	"log"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
)

// The relay publishes every committed event of the store to the bus, in the
// store's order, with the event's ID as the message ID.
func ExampleRelay() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	bus := cqrs.NewMemoryBus()
	defer bus.Close()

	// Events committed before the relay starts are published too: the
	// relay resumes from its checkpoint (none yet: the start).
	_, err := store.Append(ctx, "order-7", eventsource.NoStream,
		eventsource.NewEvent{Type: "order.placed.v1", Data: []byte(`{"total":42}`)},
		eventsource.NewEvent{Type: "order.paid.v1", Data: []byte(`{}`)},
	)
	if err != nil {
		log.Fatal(err)
	}

	received := make(chan struct{}, 2)
	sub, err := bus.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m cqrs.Message) error {
		fmt.Println(m.Topic, m.Type, string(m.Data))
		received <- struct{}{}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	checkpoints := &cqrs.MemoryCheckpoints{}
	relay, err := cqrs.NewRelay("outbox", store, bus, checkpoints,
		func(e eventsource.Event) string { return "orders" })
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()

	<-received
	<-received
	// Stop once the checkpoint records the last event (position 2), so
	// that a restarted relay would not publish the events again.
	for pos := int64(0); pos < 2; pos, _ = checkpoints.LoadCheckpoint(ctx, "outbox") {
		time.Sleep(time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	pos, _ := checkpoints.LoadCheckpoint(ctx, "outbox")
	fmt.Println("checkpoint:", pos)
	// Output:
	// orders order.placed.v1 {"total":42}
	// orders order.paid.v1 {}
	// checkpoint: 2
}

// streamCounts is a read model: the number of events of each stream.
type streamCounts struct {
	mu     sync.Mutex
	counts map[string]int
}

func (p *streamCounts) Name() string { return "stream-counts" }

func (p *streamCounts) Handle(ctx context.Context, e eventsource.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[e.StreamID]++
	return nil
}

// A runner feeds a projection the events of the store from its checkpoint.
func ExampleRunner() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	for _, stream := range []string{"cart-1", "cart-2", "cart-1"} {
		if _, err := store.Append(ctx, stream, eventsource.Any, eventsource.NewEvent{Type: "cart.item_added.v1"}); err != nil {
			log.Fatal(err)
		}
	}

	checkpoints := &cqrs.MemoryCheckpoints{}
	runner, err := cqrs.NewRunner(store, checkpoints)
	if err != nil {
		log.Fatal(err)
	}
	counts := &streamCounts{counts: map[string]int{}}
	if err := runner.Start(counts); err != nil {
		log.Fatal(err)
	}

	// Wait until the projection has caught up with the store's last
	// position (3), then stop it.
	for pos := int64(0); pos < 3; pos, _ = checkpoints.LoadCheckpoint(ctx, counts.Name()) {
		time.Sleep(time.Millisecond)
	}
	_ = runner.Close()

	for _, stream := range slices.Sorted(maps.Keys(counts.counts)) {
		fmt.Println(stream, counts.counts[stream])
	}
	// Output:
	// cart-1 2
	// cart-2 1
}

// resettableCounts is streamCounts that can be emptied, for Rebuild.
type resettableCounts struct{ streamCounts }

func (p *resettableCounts) Reset(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = map[string]int{}
	return nil
}

func (p *resettableCounts) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.counts {
		n += c
	}
	return n
}

// Rebuild empties a read model and replays every event into it: after a
// bug fix in the projection, say.
func ExampleRunner_Rebuild() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	for _, stream := range []string{"cart-1", "cart-2"} {
		if _, err := store.Append(ctx, stream, eventsource.Any, eventsource.NewEvent{Type: "cart.item_added.v1"}); err != nil {
			log.Fatal(err)
		}
	}
	runner, err := cqrs.NewRunner(store, &cqrs.MemoryCheckpoints{})
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Close()
	counts := &resettableCounts{streamCounts{counts: map[string]int{}}}
	if err := runner.Start(counts); err != nil {
		log.Fatal(err)
	}
	for counts.total() < 2 {
		time.Sleep(time.Millisecond)
	}

	counts.mu.Lock()
	counts.counts["cart-1"] = 99 // a read model gone wrong
	counts.mu.Unlock()
	if err := runner.Rebuild(ctx, counts); err != nil {
		log.Fatal(err)
	}
	for counts.total() != 2 {
		time.Sleep(time.Millisecond)
	}
	counts.mu.Lock()
	defer counts.mu.Unlock()
	fmt.Println(counts.counts["cart-1"], counts.counts["cart-2"])
	// Output: 1 1
}
