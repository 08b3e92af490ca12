// Package pg is the PostgreSQL adapter.
package pg

import "database/sql"

// Insert inserts an order.
func Insert(db *sql.DB, id string) error {
	_, err := db.Exec("INSERT INTO orders (id) VALUES ($1)", id)
	return err
}
