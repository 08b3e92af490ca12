package eventsource_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otelpatterns/patterns/eventsource"
)

func ExampleRepository() {
	ctx := context.Background()
	repo, _ := eventsource.NewRepository(&eventsource.MemoryStore{}, newRegistry(), func() *Account { return &Account{} })

	acc := repo.New("acc-1")
	_ = eventsource.Raise(acc, Opened{"ada"})
	_ = eventsource.Raise(acc, Deposited{100})
	_ = repo.Save(ctx, acc)

	// Two requests load the account and both withdraw.
	a, _ := repo.Load(ctx, "acc-1")
	b, _ := repo.Load(ctx, "acc-1")
	_ = a.Withdraw(70)
	_ = b.Withdraw(70)
	fmt.Println(repo.Save(ctx, a))
	err := repo.Save(ctx, b)
	fmt.Println(errors.Is(err, eventsource.ErrConcurrencyConflict))

	// The loser reloads and decides again.
	b, _ = repo.Load(ctx, "acc-1")
	fmt.Println(b.Balance, b.Withdraw(70))
	// Output:
	// <nil>
	// true
	// 30 insufficient funds
}

func ExampleMemoryStore_Append() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	events, _ := store.Append(ctx, "order-7", eventsource.NoStream,
		eventsource.NewEvent{Type: "order.placed.v1", Data: []byte(`{"total":42}`)},
		eventsource.NewEvent{Type: "order.paid.v1", Data: []byte(`{}`)},
	)
	for _, e := range events {
		fmt.Println(e.StreamID, e.Version, e.Position, e.Type)
	}
	_, err := store.Append(ctx, "order-7", eventsource.NoStream, eventsource.NewEvent{Type: "order.placed.v1"})
	fmt.Println(err)
	// Output:
	// order-7 1 1 order.placed.v1
	// order-7 2 2 order.paid.v1
	// eventsource: stream "order-7" is at version 2, expected no stream
}

func ExampleMemoryStore_ReadAll() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	_, _ = store.Append(ctx, "a", eventsource.Any, eventsource.NewEvent{Type: "x"})
	_, _ = store.Append(ctx, "b", eventsource.Any, eventsource.NewEvent{Type: "y"})
	_, _ = store.Append(ctx, "a", eventsource.Any, eventsource.NewEvent{Type: "z"})

	checkpoint := int64(1) // a projection stored the last position it handled
	for e, err := range store.ReadAll(ctx, checkpoint) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Position, e.StreamID, e.Type)
	}
	// Output:
	// 2 b y
	// 3 a z
}

func ExampleMemoryStore_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	store := &eventsource.MemoryStore{}
	_, _ = store.Append(ctx, "a", eventsource.Any, eventsource.NewEvent{Type: "first"})
	go func() {
		_, _ = store.Append(ctx, "a", eventsource.Any, eventsource.NewEvent{Type: "later"})
	}()
	for e, err := range store.Subscribe(ctx, 0) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Position, e.Type)
		if e.Position == 2 {
			cancel() // a real subscriber runs until shutdown
		}
	}
	// Output:
	// 1 first
	// 2 later
}

func ExampleRegistry_Upcast() {
	reg := eventsource.NewRegistry()
	eventsource.Register[Deposited](reg, "account.deposited.v2")
	// Version 1 called the field "Sum".
	reg.Upcast("account.deposited.v1", func(e eventsource.Event) (eventsource.Event, error) {
		e.Type = "account.deposited.v2"
		e.Data = []byte(`{"Amount":` + string(e.Data[len(`{"Sum":`):]))
		return e, nil
	})
	v, err := reg.Decode(eventsource.Event{Type: "account.deposited.v1", Data: []byte(`{"Sum":25}`)})
	fmt.Printf("%+v %v\n", v, err)
	// Output: {Amount:25} <nil>
}
