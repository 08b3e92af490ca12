package eventsource_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

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

// A repository ties a store, a registry and the aggregate's constructor
// together; bad arguments are reported all at once.
func ExampleNewRepository() {
	store := &eventsource.MemoryStore{}
	snapshots := &eventsource.MemorySnapshots{}
	accounts, err := eventsource.NewRepository(store, newRegistry(), func() *Account { return &Account{} },
		eventsource.WithSnapshots(snapshots, 100)) // a snapshot every 100 events
	fmt.Println(accounts != nil, err)

	_, err = eventsource.NewRepository[*Account](store, nil, nil, eventsource.WithSnapshots(snapshots, 0))
	fmt.Println(err)
	// Output:
	// true <nil>
	// eventsource: NewRepository: registry is nil
	// constructor newA is nil
	// WithSnapshots(_, 0): interval must be at least 1
}

// Each event type is registered once, under a name that stays in the
// stored data; the registry encodes and decodes events by it.
func ExampleRegister() {
	reg := eventsource.NewRegistry()
	eventsource.Register[Deposited](reg, "account.deposited.v1")

	ne, _ := reg.Encode(Deposited{Amount: 25}, nil)
	fmt.Println(ne.Type, string(ne.Data))
	v, _ := reg.Decode(eventsource.Event{Type: ne.Type, Data: ne.Data})
	fmt.Printf("%T %+v\n", v, v)
	_, err := reg.Encode(Withdrawn{Amount: 5}, nil)
	fmt.Println(errors.Is(err, eventsource.ErrUnknownEventType))
	// Output:
	// account.deposited.v1 {"Amount":25}
	// eventsource_test.Deposited {Amount:25}
	// true
}

// A command method checks its rules against the state and raises the
// facts; Raise applies each at once and keeps it until Save.
func ExampleRaise() {
	acc := &Account{}
	_ = eventsource.Raise(acc, Opened{Owner: "ada"})
	_ = eventsource.Raise(acc, Deposited{Amount: 100})
	fmt.Println(acc.Owner, acc.Balance, acc.Version(), len(acc.Uncommitted()))

	fmt.Println(acc.Withdraw(150)) // Withdraw raises only if the rules allow
	fmt.Println(eventsource.Raise(acc, nil))
	// Output:
	// ada 100 2 2
	// insufficient funds
	// eventsource: invalid argument: Raise(*eventsource_test.Account): event is nil
}

// With snapshots, a load starts from the latest snapshot and replays only
// the events after it.
func ExampleWithSnapshots() {
	ctx := context.Background()
	snapshots := &eventsource.MemorySnapshots{}
	accounts, _ := eventsource.NewRepository(&eventsource.MemoryStore{}, newRegistry(),
		func() *Account { return &Account{} },
		eventsource.WithSnapshots(snapshots, 3)) // a snapshot every 3 events

	acc := accounts.New("acc-1")
	_ = eventsource.Raise(acc, Opened{Owner: "ada"})
	for range 3 {
		_ = eventsource.Raise(acc, Deposited{Amount: 10})
	}
	_ = accounts.Save(ctx, acc) // versions 1 to 4: crosses 3, so a snapshot at 4

	snap, _ := snapshots.LoadSnapshot(ctx, "acc-1")
	fmt.Println("snapshot at version", snap.Version)
	acc, _ = accounts.Load(ctx, "acc-1")
	fmt.Println(acc.Balance, acc.Version())
	// Output:
	// snapshot at version 4
	// 30 4
}

// A projection links the span of its work on an event to the span of the
// request that appended it, from the trace context the store recorded.
func ExampleTraceContext() {
	request := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9},
		SpanID:     trace.SpanID{0x00, 0xf0},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), request)
	store := &eventsource.MemoryStore{}
	_, _ = store.Append(ctx, "order-7", eventsource.NoStream, eventsource.NewEvent{Type: "order.placed.v1"})

	// In the projection, on its own context:
	for e, err := range store.ReadAll(context.Background(), 0) {
		if err != nil {
			panic(err)
		}
		link := trace.LinkFromContext(eventsource.TraceContext(context.Background(), e))
		// tracer.Start(ctx, "project "+e.Type, trace.WithLinks(link))
		fmt.Println(e.Type, "links to trace", link.SpanContext.TraceID())
	}
	// Output: order.placed.v1 links to trace 4bf90000000000000000000000000000
}

// A registry encodes with encoding/json unless told otherwise; a codec of
// the service's choosing (gob here) is set once, for every type.
func ExampleNewRegistry() {
	reg := eventsource.NewRegistry(eventsource.WithCodec(gobCodec{}))
	eventsource.Register[Deposited](reg, "account.deposited.v1")
	ne, _ := reg.Encode(Deposited{Amount: 25}, map[string]string{"tenant": "t1"})
	v, err := reg.Decode(eventsource.Event{Type: ne.Type, Data: ne.Data})
	fmt.Println(ne.Type, ne.Metadata["tenant"], v, err)
	// Output: account.deposited.v1 t1 {25} <nil>
}

// Exact expects the stream's last event to have a version; a version
// computed wrongly (negative) is an error, not an append without a check.
func ExampleExact() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	_, _ = store.Append(ctx, "order-7", eventsource.NoStream, eventsource.NewEvent{Type: "order.placed.v1"})

	_, err := store.Append(ctx, "order-7", eventsource.Exact(1), eventsource.NewEvent{Type: "order.paid.v1"})
	fmt.Println(err)
	_, err = store.Append(ctx, "order-7", eventsource.Exact(1), eventsource.NewEvent{Type: "order.paid.v1"})
	fmt.Println(err)
	_, err = store.Append(ctx, "order-7", eventsource.Exact(-1), eventsource.NewEvent{Type: "order.paid.v1"})
	fmt.Println(errors.Is(err, eventsource.ErrInvalidArgument))
	// Output:
	// <nil>
	// eventsource: stream "order-7" is at version 2, expected version 1
	// true
}
