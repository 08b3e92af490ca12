package eventsource_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/eventsource"
)

// The events of a shopping cart: facts, named in the past tense.
type ItemAdded struct {
	SKU   string
	Price int // cents
}

type CheckedOut struct{}

// Cart is an aggregate: its state is rebuilt from its events.
type Cart struct {
	eventsource.Base
	Items      []string
	Total      int
	CheckedOut bool
}

// Apply changes the state for one event, loaded or raised.
func (c *Cart) Apply(event any) error {
	switch e := event.(type) {
	case ItemAdded:
		c.Items = append(c.Items, e.SKU)
		c.Total += e.Price
	case CheckedOut:
		c.CheckedOut = true
	default:
		return fmt.Errorf("cart: unexpected event %T", event)
	}
	return nil
}

// Add is a command: it checks the rules, then raises the fact.
func (c *Cart) Add(sku string, price int) error {
	if c.CheckedOut {
		return errors.New("cart: checked out already")
	}
	return eventsource.Raise(c, ItemAdded{SKU: sku, Price: price})
}

// CheckOut is a command too.
func (c *Cart) CheckOut() error {
	if len(c.Items) == 0 {
		return errors.New("cart: empty")
	}
	return eventsource.Raise(c, CheckedOut{})
}

// A cart is kept as its events in the in-memory store, loaded back from
// them, changed and saved again; a reader follows the store's global
// order.
func Example() {
	ctx := context.Background()
	reg := eventsource.NewRegistry()
	eventsource.Register[ItemAdded](reg, "cart.item_added.v1")
	eventsource.Register[CheckedOut](reg, "cart.checked_out.v1")
	store := &eventsource.MemoryStore{}
	carts, err := eventsource.NewRepository(store, reg, func() *Cart { return &Cart{} })
	if err != nil {
		panic(err)
	}

	// A new cart: its commands raise events, Save appends them.
	cart := carts.New("cart-1")
	_ = cart.Add("book", 1200)
	_ = cart.Add("pen", 150)
	if err := carts.Save(ctx, cart); err != nil {
		panic(err)
	}

	// Another request loads the cart from its events and checks it out.
	cart, err = carts.Load(ctx, "cart-1")
	if err != nil {
		panic(err)
	}
	fmt.Println("loaded:", cart.Items, cart.Total, "at version", cart.Version())
	_ = cart.CheckOut()
	if err := carts.Save(ctx, cart); err != nil {
		panic(err)
	}
	fmt.Println("add after checkout:", cart.Add("mug", 800))

	// A projection reads every event in the global order.
	for e, err := range store.ReadAll(ctx, 0) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Position, e.StreamID, e.Version, e.Type)
	}
	// Output:
	// loaded: [book pen] 1350 at version 2
	// add after checkout: cart: checked out already
	// 1 cart-1 1 cart.item_added.v1
	// 2 cart-1 2 cart.item_added.v1
	// 3 cart-1 3 cart.checked_out.v1
}
