// Package pg is the PostgreSQL adapter.
package pg

import (
	"context"
	"database/sql"

	"example.com/clean/app"
	"example.com/clean/domain"
)

// Repo stores orders in PostgreSQL.
type Repo struct{ DB *sql.DB }

var _ app.Repository = Repo{}

// Save saves o.
func (r Repo) Save(ctx context.Context, o domain.Order) error {
	_, err := r.DB.ExecContext(ctx, "INSERT INTO orders (id) VALUES ($1)", o.ID)
	return err
}
