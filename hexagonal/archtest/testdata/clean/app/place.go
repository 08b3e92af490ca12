// Package app holds the use cases.
package app

import (
	"context"

	"example.com/clean/domain"
)

// Repository is the port to the orders' store.
type Repository interface {
	Save(ctx context.Context, o domain.Order) error
}

// Place places an order.
func Place(ctx context.Context, r Repository, o domain.Order) error {
	if len(o.Lines) == 0 {
		return domain.ErrEmpty
	}
	return r.Save(ctx, o)
}
