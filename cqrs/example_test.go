package cqrs_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/otelpatterns/patterns/cqrs"
)

type OpenAccount struct{ Owner string }

func (c OpenAccount) Validate() error {
	if c.Owner == "" {
		return errors.New("owner is required")
	}
	return nil
}

type CountAccounts struct{}

func ExampleBus() {
	ctx := context.Background()
	bus := cqrs.NewBus()
	if err := bus.Use(cqrs.Validation()); err != nil {
		log.Fatal(err)
	}

	accounts := 0
	_ = cqrs.HandleCommand(bus, func(ctx context.Context, c OpenAccount) error {
		accounts++ // in a real service: load, decide, save through a repository
		return nil
	})
	_ = cqrs.HandleQuery(bus, func(ctx context.Context, q CountAccounts) (int, error) {
		return accounts, nil // in a real service: read a projection
	})

	fmt.Println(bus.Dispatch(ctx, OpenAccount{"ada"}))
	fmt.Println(bus.Dispatch(ctx, OpenAccount{}))
	n, _ := cqrs.Ask[CountAccounts, int](ctx, bus, CountAccounts{})
	fmt.Println(n, "account")
	// Output:
	// <nil>
	// cqrs: invalid cqrs_test.OpenAccount: owner is required
	// 1 account
}
