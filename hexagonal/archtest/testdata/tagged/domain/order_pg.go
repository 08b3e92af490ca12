//go:build integration

package domain

import "database/sql"

// DB is the domain's database, in the integration build only.
var DB *sql.DB
