// Package domain imports a package of its own module that is in no
// layer: not a standard one, though its path has no dot.
package domain

import "shop/internal/sqlx"

// Save saves.
func Save() error { return sqlx.Exec() }
