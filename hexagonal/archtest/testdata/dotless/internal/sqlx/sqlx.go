// Package sqlx wraps database/sql.
package sqlx

import "database/sql"

// Exec executes.
func Exec() error { _ = sql.ErrNoRows; return nil }
