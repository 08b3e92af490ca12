// Package domain breaks the rules: it imports a database and an adapter.
package domain

import (
	"database/sql"
	"errors"

	"example.com/violating/adapters/pg"
)

// Order is an order.
type Order struct {
	ID string
	db *sql.DB
}

// Save saves the order through the adapter, which the domain must not
// know.
func (o Order) Save() error {
	if o.db == nil {
		return errors.New("no database")
	}
	return pg.Insert(o.db, o.ID)
}
